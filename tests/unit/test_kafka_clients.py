"""Kafka clients: starting several together leaves none open on a failure; an idempotent
producer that Kafka stopped accepting is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.kafka.publisher as publisher_module
from bridge.config import KafkaSettings
from bridge.contract.catalog import source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import System
from bridge.errors import PublishFailed
from bridge.kafka.clients import RenewingProducer, start_clients
from bridge.kafka.publisher import EventPublisher
from tests.support.waiting import until
from tests.unit.test_codec import event_for


class Client:
    """A client that records its lifecycle; ``fails`` makes its start raise."""

    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name, self.log, self.fails = name, log, fails

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fails:
            raise ConnectionError(f"{self.name} cannot connect")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_clients_start_in_order() -> None:
    log: list[str] = []
    await start_clients(Client("a", log), Client("b", log))
    assert log == ["start a", "start b"]


async def test_a_failed_start_stops_every_client_started_or_not() -> None:
    log: list[str] = []
    clients = Client("a", log), Client("b", log, fails=True), Client("c", log)
    with pytest.raises(ConnectionError, match="b cannot connect"):
        await start_clients(*clients)
    assert log[:2] == ["start a", "start b"]
    assert sorted(log[2:]) == ["stop a", "stop b", "stop c"]


async def test_a_start_cancelled_midway_finishes_then_closes() -> None:
    """A shutdown cancelling a start (e.g. the admin page's lag watcher still connecting):
    the start runs to its end (aiokafka holds its bootstrap socket meanwhile), then the
    clients close, then the cancellation goes on."""
    import asyncio

    from bridge.kafka.clients import start_or_close

    log: list[str] = []
    connecting = asyncio.Event()

    async def start() -> None:
        log.append("start")
        connecting.set()
        await asyncio.sleep(0.05)
        log.append("started")

    async def close() -> None:
        log.append("closed")

    task = asyncio.create_task(start_or_close(start, close))
    await connecting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["start", "started", "closed"]


class ScriptedProducer:
    """An aiokafka producer at the seam: ``dead`` raises a fatal error on every send (its
    sender task has ended), ``nack`` fails each acknowledgement with one, else each send
    is acknowledged; ``fails_to_start`` refuses to start once."""

    def __init__(self, mode: str, fails_to_start: bool = False) -> None:
        self.mode = mode
        self.fails_to_start = fails_to_start
        self.sent: list[bytes | None] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.fails_to_start:
            raise KafkaConnectionError("broker not ready")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None, **_: object) -> asyncio.Future[str]:
        if self.mode == "dead":
            raise OutOfOrderSequenceNumber()
        ack: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self.mode == "nack":
            ack.set_exception(OutOfOrderSequenceNumber())
        else:
            self.sent.append(value)
            ack.set_result(f"{topic}@{len(self.sent) - 1}")
        return ack


def producers(*built: ScriptedProducer) -> tuple[list[ScriptedProducer], Callable[[], Any]]:
    """A factory handing out ``built`` in order, and the list of those handed out."""
    handed: list[ScriptedProducer] = []
    queue = list(built)

    def build() -> ScriptedProducer:
        handed.append(queue.pop(0))
        return handed[-1]

    return handed, build


async def test_a_producer_whose_sender_died_is_replaced_and_the_send_made_on_the_new_one() -> None:
    handed, build = producers(ScriptedProducer("dead"), ScriptedProducer("ok"))
    producer = RenewingProducer(build, "test")
    await producer.start()
    assert await producer.send_and_wait("t", b"a") == "t@0"
    assert handed[0].stopped and handed[1].started and handed[1].sent == [b"a"]
    assert producer.renewals == 1


async def test_a_fatal_acknowledgement_fails_that_send_and_renews_before_the_next() -> None:
    handed, build = producers(ScriptedProducer("nack"), ScriptedProducer("ok"))
    producer = RenewingProducer(build, "test")
    await producer.start()
    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send_and_wait("t", b"lost")
    assert producer.renewals == 0  # the caller retries; nothing renews until then
    assert await producer.send_and_wait("t", b"again") == "t@0"
    assert handed[0].stopped and handed[1].sent == [b"again"]


async def test_concurrent_sends_on_a_dead_producer_renew_it_once() -> None:
    handed, build = producers(ScriptedProducer("dead"), ScriptedProducer("ok"))
    producer = RenewingProducer(build, "test")
    await producer.start()
    results = await asyncio.gather(*(producer.send_and_wait("t", bytes([i])) for i in range(10)))
    assert sorted(results) == [f"t@{i}" for i in range(10)]
    assert producer.renewals == 1 and len(handed) == 2


async def test_a_renewal_the_broker_refuses_is_tried_again_on_the_next_send() -> None:
    handed, build = producers(
        ScriptedProducer("dead"),
        ScriptedProducer("ok", fails_to_start=True),
        ScriptedProducer("ok"),
    )
    producer = RenewingProducer(build, "test")
    await producer.start()
    with pytest.raises(KafkaConnectionError):
        await producer.send_and_wait("t", b"a")
    assert handed[1].stopped  # the replacement that failed to start is closed
    assert await producer.send_and_wait("t", b"b") == "t@0"
    assert producer.renewals == 1 and handed[2].sent == [b"b"]


async def test_the_publisher_recovers_after_kafka_rejects_its_sequence_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failure seen after a broker restart: every publish failed with
    OutOfOrderSequenceNumber until the process was restarted."""
    handed, build = producers(ScriptedProducer("nack"), ScriptedProducer("ok"))
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", lambda **_: build())
    entity = source_entity(System.SALES, "account")
    event = event_for(entity)
    async with EventPublisher(KafkaSettings(), EventCodec.from_directory()) as publisher:
        with pytest.raises(PublishFailed, match="OutOfOrderSequenceNumber"):
            await publisher.publish([(entity, event)])
        assert await publisher.publish([(entity, event)]) == 1
    assert len(handed[1].sent) == 1 and handed[1].stopped


class HeldProducer(ScriptedProducer):
    """Acknowledges nothing until the test settles each send's future."""

    def __init__(self) -> None:
        super().__init__("ok")
        self.acks: list[asyncio.Future[str]] = []

    async def send(self, topic: str, value: bytes | None, **_: object) -> asyncio.Future[str]:
        self.sent.append(value)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


async def test_a_change_claimed_by_a_publish_that_fails_is_published_by_the_one_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A webhook and the poller report the same change at once. The second publish must
    not count it as published while the first still waits for Kafka: the first fails, and
    the poller would have moved its token past a change that is on no topic."""
    held = HeldProducer()
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", lambda **_: held)
    entity = source_entity(System.SALES, "account")
    event = event_for(entity)
    async with EventPublisher(KafkaSettings(), EventCodec.from_directory()) as publisher:
        webhook = asyncio.create_task(publisher.publish([(entity, event)]))
        await until(lambda: len(held.acks) == 1)
        poller = asyncio.create_task(publisher.publish([(entity, event)]))
        await asyncio.sleep(0.01)
        assert not poller.done()  # waits for the webhook's outcome
        held.acks[0].set_exception(KafkaConnectionError("broker gone"))
        with pytest.raises(PublishFailed):
            await webhook
        await until(lambda: len(held.acks) == 2)
        held.acks[1].set_result("t@0")
        assert await poller == 1  # the poller published it itself


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_publish_that_returns_leaves_its_version_or_a_newer_one_acknowledged(
    data: st.DataObject,
) -> None:
    """Webhooks and the poller report versions of one record at once and Kafka acknowledges
    or fails each send in any order. Whenever a publish returns — its caller then
    acknowledges its own input (a 2xx to Dataverse, a delta token stored) — Kafka has
    acknowledged the version it reported or a newer one."""
    asyncio.run(_publish_interleaving(data))


async def _publish_interleaving(data: st.DataObject) -> None:
    held = HeldProducer()
    codec = EventCodec.from_directory()
    entity = source_entity(System.SALES, "account")
    reported = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=6), label="versions")
    base = event_for(entity)
    events = [replace(base, source=replace(base.source, record_version=v)) for v in reported]
    acknowledged: list[int] = []
    with patch.object(publisher_module, "AIOKafkaProducer", lambda **_: held):
        async with EventPublisher(KafkaSettings(), codec) as publisher:
            tasks = [asyncio.create_task(publisher.publish([(entity, e)])) for e in events]
            try:
                for _ in range(10_000):
                    await asyncio.sleep(0)
                    if all(task.done() for task in tasks):
                        break
                    pending = [i for i, ack in enumerate(held.acks) if not ack.done()]
                    if not pending:
                        continue
                    index = data.draw(st.sampled_from(pending), label="answered send")
                    if data.draw(st.booleans(), label="acknowledged"):
                        held.acks[index].set_result("ok")
                        version = codec.decode(held.sent[index] or b"").source.record_version
                        acknowledged.append(version or 0)
                    else:
                        held.acks[index].set_exception(KafkaConnectionError("broker gone"))
                else:
                    raise AssertionError("the publishes never finished")
            finally:
                # hypothesis may end an example at any draw: no task outlives it, and a
                # failed publish's error is collected here rather than reported at GC
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    for task, version in zip(tasks, reported, strict=True):
        if task.exception() is None:
            assert any(a >= version for a in acknowledged), (
                f"version {version} reported as published; Kafka acknowledged {acknowledged}"
            )
