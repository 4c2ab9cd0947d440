"""The engine's ports on Kafka: a consumer-group member and a compacted version log.

:class:`KafkaRecordStream` subscribes to a flow's change and retry topics with range
assignment, so partition *n* of both lands on the same member (the engine orders a record's
events across the two), and passes aiokafka's rebalance callbacks to the engine, which
aiokafka awaits before it moves partitions. :class:`KafkaVersionLog` reads one partition of
a flow's versions topic from the start on assignment and writes entries to the partition
numbered like the record's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Self

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from bridge.config import KafkaSettings
from bridge.engine.flow import Flow
from bridge.engine.stream import Partition, RebalanceListener, StreamRecord
from bridge.errors import PublishFailed, TransientError
from bridge.kafka.clients import (
    RenewingProducer,
    connection_options,
    start_client,
    start_clients,
    stop_client,
)

log = structlog.get_logger(__name__)

_REFUSED_COMMITS = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


def stream_record(record: ConsumerRecord) -> StreamRecord:
    """An aiokafka record as the engine's (and the operator commands') record type."""
    return StreamRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
        timestamp_ms=record.timestamp,
    )


def _partition(tp: TopicPartition) -> Partition:
    return Partition(tp.topic, tp.partition)


def _tp(partition: Partition) -> TopicPartition:
    return TopicPartition(partition.topic, partition.number)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's callbacks, translated for the engine."""

    def __init__(self, engine: RebalanceListener) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if revoked:
            await self._engine.revoked([_partition(tp) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        if assigned:
            await self._engine.assigned([_partition(tp) for tp in assigned])


class KafkaRecordStream:
    """A member of a flow's consumer group; async context manager."""

    def __init__(self, settings: KafkaSettings, flow: Flow, listener: RebalanceListener) -> None:
        self._flow = flow
        self._listener = _Listener(listener)
        self._max_records = settings.max_batch_records
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings),
            group_id=flow.group,
            client_id=f"{settings.client_id}-{flow.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_batch_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1_000, settings.session_timeout_ms // 5),
            partition_assignment_strategy=(RangePartitionAssignor,),
            # topics created a moment ago can be missing from the first metadata answer;
            # refresh soon rather than after the default five minutes
            metadata_max_age_ms=5_000,
        )

    async def __aenter__(self) -> Self:
        await start_client(self._consumer)
        self._consumer.subscribe(list(self._flow.consumed_topics), listener=self._listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_client(self._consumer)

    async def fetch(self, max_wait: float) -> Mapping[Partition, Sequence[StreamRecord]]:
        """The next records of the owned, unpaused partitions."""
        batch = await self._consumer.getmany(
            timeout_ms=int(max_wait * 1000), max_records=self._max_records
        )
        return {
            _partition(tp): [stream_record(r) for r in records] for tp, records in batch.items()
        }

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit offsets; a refusal because the partitions moved is a TransientError."""
        try:
            await self._consumer.commit({_tp(p): offset for p, offset in offsets.items()})
        except _REFUSED_COMMITS as exc:
            raise TransientError(f"commit refused: {exc.__class__.__name__}") from exc
        except KafkaError as exc:
            raise TransientError(f"commit failed: {exc.__class__.__name__}") from exc

    def seek(self, partition: Partition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""
        self._consumer.seek(_tp(partition), offset)

    def pause(self, partition: Partition) -> None:
        """Stop fetching ``partition``."""
        self._consumer.pause(_tp(partition))

    def resume(self, partition: Partition) -> None:
        """Fetch ``partition`` again."""
        self._consumer.resume(_tp(partition))

    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now."""
        return frozenset(_partition(tp) for tp in self._consumer.assignment())


class KafkaVersionLog:
    """One flow's versions topic; async context manager owning a producer and one reader.

    The reader is a group-less consumer that lives as long as the log (reassigned on each
    read), so a load cancelled by a shutdown or a rebalance leaves no client behind.
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._topic = topic
        self._producer = RenewingProducer(
            partial(
                AIOKafkaProducer,
                **connection_options(settings),
                client_id=f"{settings.client_id}-versions",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
            ),
            "versions",
        )
        self._reader = AIOKafkaConsumer(
            **connection_options(settings),
            client_id=f"{settings.client_id}-versions-loader",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def __aenter__(self) -> Self:
        await start_clients(self._producer, self._reader)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await stop_client(self._reader)
        finally:
            await stop_client(self._producer)

    async def read(self, partitions: Collection[int]) -> dict[int, dict[bytes, bytes]]:
        """Per partition, every key's latest value, read from the start to the end."""
        tps = [TopicPartition(self._topic, p) for p in partitions]
        latest: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
        reader = self._reader
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                batch = await reader.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        latest[tp.partition][record.key or b""] = record.value
                remaining = {tp for tp in remaining if await reader.position(tp) < ends[tp]}
        except KafkaError as exc:
            raise TransientError(f"versions not loaded: {exc.__class__.__name__}") from exc
        return {
            p: {k: v for k, v in values.items() if v is not None} for p, values in latest.items()
        }

    async def write(self, partition: int, key: bytes, value: bytes | None) -> Awaitable[None]:
        """Queue one entry; await the result for the broker's acknowledgement."""
        try:
            sent = await self._producer.send(self._topic, value, key=key, partition=partition)
        except KafkaError as exc:
            raise PublishFailed(f"version write failed: {exc.__class__.__name__}") from exc
        return _acknowledged(sent)


def _acknowledged(sent: asyncio.Future[object]) -> asyncio.Future[None]:
    """A future of the acknowledgement that fails with :class:`PublishFailed` (a plain
    future, not a coroutine: nothing warns if a shutdown leaves it unawaited)."""
    ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[object]) -> None:
        if ack.done():
            return
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or error is not None:
            name = "cancelled" if error is None else error.__class__.__name__
            ack.set_exception(PublishFailed(f"version write failed: {name}"))
        else:
            ack.set_result(None)

    sent.add_done_callback(settle)
    return ack
