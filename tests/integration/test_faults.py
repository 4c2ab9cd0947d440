"""Faults while changes flow: the target throttles and fails, the broker restarts, webhooks
arrive twice. After each, every change is in F&O exactly once (the write counters), and the
test prints what it checked and how long convergence took."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console

from bridge.config import PollerSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import System
from bridge.errors import FlowBlocked, TransientError
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.ops.commands import list_dead_letters, reconcile_flow
from bridge.sources.registration import register_dataverse_webhooks
from tests.integration.conftest import Stack, eventually, running_bridge
from tests.integration.test_accounts_flow import create_account, customer_named, read_topic
from tests.support.kafka_broker import start_broker, stop_broker

CHANGES = int(os.environ.get("P2C_FAULT_CHANGES", "300"))


async def create_accounts(
    stack: Stack, count: int, prefix: str, created: list[dict[str, Any]]
) -> None:
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> None:
        async with limit:
            created.append(await create_account(stack, name=f"{prefix} {index}"))

    await asyncio.gather(*(one(i) for i in range(count)))


async def converged(stack: Stack, created: list[dict[str, Any]]) -> bool:
    """Whether F&O shows every account; while a fault is injected our own reads may fail
    too, which only means "not yet"."""
    try:
        for account in created:
            if not await customer_named(stack, account["accountnumber"], account["name"]):
                return False
    except (TransientError, FlowBlocked):
        return False
    return True


async def assert_no_drift(stack: Stack) -> int:
    """Reconcile the accounts flow; return how many records it compared."""
    report = await reconcile_flow(stack.settings, "accounts", console=Console(file=io.StringIO()))
    assert not report.drifted, report.summary()
    return report.checked


async def assert_each_created_once(stack: Stack, created: list[dict[str, Any]]) -> int:
    writes = await stack.fno_writes("CustomersV3")
    numbers = {a["accountnumber"] for a in created}
    mine = {label: c for label, c in writes.items() if any(n in label for n in numbers)}
    assert len(mine) == len(created)
    assert {c["creates"] for c in mine.values()} == {1}, "a customer was created twice"
    return sum(c["creates"] + c["updates"] for c in mine.values())


async def test_target_throttles_and_fails_for_a_while(stack: Stack) -> None:
    faults = f"{stack.emulators.fno_url}/_emulator/faults"
    await stack.admin.post(
        faults,
        json={
            "status": 429,
            "retry_after": 1,
            "fraction": 0.4,
            "duration_seconds": 12,
            "path_prefix": "/data/CustomersV3",
        },
    )
    await stack.admin.post(
        faults,
        json={"status": 503, "fraction": 0.2, "duration_seconds": 12, "path_prefix": "/data/"},
    )
    started = time.monotonic()
    created: list[dict[str, Any]] = []
    async with running_bridge(stack.settings):
        await create_accounts(stack, CHANGES, "Throttled", created)
        await eventually(lambda: converged(stack, created), timeout=180, interval=0.5)
    await stack.admin.delete(faults)  # the checks below read F&O themselves
    elapsed = time.monotonic() - started
    writes = await assert_each_created_once(stack, created)
    print(
        f"429/503 for 12 s: {CHANGES} accounts, {writes} F&O writes, each customer created once, "
        f"reconcile checked {await assert_no_drift(stack)}: no drift; converged in {elapsed:.1f} s"
    )


async def test_broker_stopped_and_restarted_mid_stream(stack: Stack) -> None:
    settings = stack.with_settings(poller=PollerSettings(interval_seconds=0.5))
    started = time.monotonic()
    created: list[dict[str, Any]] = []
    async with running_bridge(settings):
        writer = asyncio.create_task(create_accounts(stack, CHANGES, "Broker", created))
        await eventually(lambda: asyncio.sleep(0, len(created) >= CHANGES // 3), timeout=60)
        stop_broker()
        stopped_at = len(created)
        await asyncio.sleep(3)
        start_broker()
        await writer
        await eventually(lambda: converged(stack, created), timeout=180, interval=0.5)
    elapsed = time.monotonic() - started
    writes = await assert_each_created_once(stack, created)
    print(
        f"broker down after {stopped_at}/{CHANGES} creates: {writes} F&O writes, each customer once, "
        f"reconcile checked {await assert_no_drift(stack)}: no drift; converged in {elapsed:.1f} s"
    )


async def test_webhooks_delivered_twice_publish_once(stack: Stack) -> None:
    created: list[dict[str, Any]] = []
    async with running_bridge(stack.with_settings(poller=PollerSettings(enabled=False))):
        bridge_identity = ApiClient(
            stack.settings.sales, stack.settings.sales.api_path, RetryPolicy()
        )
        async with bridge_identity as sales:
            # a second, identical registration: Dataverse now calls the receiver twice per change
            await register_dataverse_webhooks(
                sales,
                stack.settings.webhook,
                [source_entity(System.SALES, "account")],
                endpoint_name="p2c-bridge-copy",
            )
        await create_accounts(stack, 100, "Twice", created)
        await eventually(lambda: converged(stack, created), timeout=120, interval=0.5)
        await stack.emulators.wait_for_deliveries()
    deliveries = (await stack.admin.get(f"{stack.emulators.sales_url}/_emulator/deliveries")).json()
    delivered = (
        deliveries.get("deliveries", deliveries) if isinstance(deliveries, dict) else deliveries
    )
    topic = f"{stack.settings.kafka.topic_prefix}.sales.account"
    events = await read_topic(stack.settings, topic, lambda evs: len(evs) >= len(created))
    per_version = Counter((e.source.record_id, e.source.record_version) for e in events)
    assert max(per_version.values()) == 1, "a record version was published twice"
    writes = await assert_each_created_once(stack, created)
    print(
        f"{len(delivered)} webhook deliveries for {len(created)} creates: {len(events)} events on the topic, "
        f"{writes} F&O writes, reconcile checked {await assert_no_drift(stack)}: no drift"
    )


async def test_refused_credentials_pause_the_flow_until_the_target_accepts_again(
    stack: Stack,
) -> None:
    faults = f"{stack.emulators.fno_url}/_emulator/faults"
    await stack.admin.post(
        faults,
        json={
            "status": 401,
            "fraction": 1.0,
            "duration_seconds": 4,
            "path_prefix": "/data/CustomersV3",
        },
    )
    started = time.monotonic()
    created: list[dict[str, Any]] = []
    async with running_bridge(stack.settings):
        await create_accounts(stack, 50, "Refused", created)
        await asyncio.sleep(5)  # the fault refuses our own checks too; look once it has passed
        await eventually(lambda: converged(stack, created), timeout=120, interval=0.5)
    elapsed = time.monotonic() - started
    writes = await assert_each_created_once(stack, created)
    letters = await list_dead_letters(stack.settings, "accounts")
    assert letters == [], "a refused call pauses the flow; it never dead-letters the event"
    print(
        f"401 for 4 s: 50 accounts, {writes} F&O writes, none dead-lettered, converged in {elapsed:.1f} s"
    )


async def test_a_foreign_message_on_a_topic_is_dead_lettered_and_the_flow_goes_on(
    stack: Stack,
) -> None:
    topic = f"{stack.settings.kafka.topic_prefix}.sales.account"
    async with running_bridge(stack.settings):
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b'{"not": "avro"}', key=b"someone-else")
        finally:
            await producer.stop()
        account = await create_account(stack, name="After the poison")
        await eventually(
            lambda: customer_named(stack, account["accountnumber"], "After the poison")
        )
        letters = await eventually(lambda: list_dead_letters(stack.settings, "accounts"))
    assert letters[0].context["stage"] == "decode"
    assert letters[0].record.value == b'{"not": "avro"}'
    assert letters[0].context["original.topic"] == topic
