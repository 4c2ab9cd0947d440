"""The operator commands' Kafka adapter: topic reads and consumer-group offsets.

The only module of :mod:`bridge.ops` that imports aiokafka. Retriable Kafka errors are
retried with the bridge's one :class:`~bridge.http.retry.RetryPolicy`; what still fails
becomes a :class:`~bridge.errors.TransientError` (the command exits 1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from bridge.config import KafkaSettings, Settings
from bridge.errors import ConfigError, TransientError
from bridge.http.retry import RetryPolicy
from bridge.kafka.clients import (
    close_to_the_end,
    connection_options,
    start_or_close,
    stop_client,
)
from bridge.kafka.stream import stream_record
from bridge.ops.ports import RawRecord

T = TypeVar("T")
log = structlog.get_logger(__name__)

_POLL_MS = 500
_REFUSED_COMMITS = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


async def kafka_call(policy: RetryPolicy, what: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation``; retry retriable Kafka errors; raise :class:`TransientError` after."""

    async def attempt() -> T:
        try:
            return await operation()
        except KafkaError as exc:
            if exc.retriable:
                raise TransientError(f"{what}: {exc.__class__.__name__}") from exc
            raise

    try:
        return await policy.call(attempt, what=what)
    except KafkaError as exc:
        raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc


class KafkaTopics:
    """Reads topics with a group-less consumer (commits nothing) and finds their partitions
    with the admin API (never creating a topic). Async context manager."""

    def __init__(self, settings: KafkaSettings, policy: RetryPolicy) -> None:
        self._policy = policy
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings),
            client_id=f"{settings.client_id}-ops-reader",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._admin = AIOKafkaAdminClient(
            **connection_options(settings),
            client_id=f"{settings.client_id}-ops-metadata",
        )

    async def __aenter__(self) -> Self:
        async def start() -> None:
            await kafka_call(self._policy, "connect to Kafka", self._admin.start)
            await kafka_call(self._policy, "connect to Kafka", self._consumer.start)

        await start_or_close(start, self._close)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        try:
            await stop_client(self._consumer)
        finally:
            await close_to_the_end(self._admin.close)

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition numbers; empty if the topic does not exist."""
        topics = await kafka_call(self._policy, "list topics", self._admin.list_topics)
        if topic not in topics:
            return []
        described = await kafka_call(
            self._policy, f"describe {topic}", lambda: self._admin.describe_topics([topic])
        )
        return sorted(
            int(partition["partition"])
            for found in described
            if found["topic"] == topic
            for partition in found["partitions"]
        )

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition."""
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        if not tps:
            return {}
        ends = await kafka_call(
            self._policy, f"end offsets of {topic}", lambda: self._consumer.end_offsets(tps)
        )
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def offsets_at(self, topic: str, moment: datetime) -> dict[int, int | None]:
        """Per partition, the first offset at or after ``moment`` (``None``: none yet)."""
        millis = int(moment.timestamp() * 1000)
        wanted = {TopicPartition(topic, p): millis for p in await self.partitions(topic)}
        if not wanted:
            return {}
        found = await kafka_call(
            self._policy,
            f"offsets of {topic} by time",
            lambda: self._consumer.offsets_for_times(wanted),
        )
        return {tp.partition: None if at is None else int(at.offset) for tp, at in found.items()}

    async def records(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> AsyncIterator[RawRecord]:
        """The records of ``[start, end)`` per partition, in offset order per partition."""
        remaining = {
            TopicPartition(topic, p): end for p, (start, end) in ranges.items() if end > start
        }
        if not remaining:
            return
        self._consumer.assign(list(remaining))
        for tp in remaining:
            self._consumer.seek(tp, ranges[tp.partition][0])
        while remaining:
            batch = await kafka_call(
                self._policy,
                f"read {topic}",
                lambda: self._consumer.getmany(*remaining, timeout_ms=_POLL_MS),
            )
            for tp, records in batch.items():
                for record in records:
                    if record.offset < remaining.get(tp, -1):
                        yield stream_record(record)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]


class KafkaGroups:
    """Consumer-group offsets through the admin API. Async context manager."""

    def __init__(self, settings: KafkaSettings, policy: RetryPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._admin = AIOKafkaAdminClient(
            **connection_options(settings),
            client_id=f"{settings.client_id}-ops-admin",
        )

    async def __aenter__(self) -> Self:
        await start_or_close(
            lambda: kafka_call(self._policy, "connect to Kafka", self._admin.start),
            self._admin.close,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await close_to_the_end(self._admin.close)

    async def members(self, group: str) -> list[str]:
        """The client ids of the group's active members (DescribeGroups)."""
        responses = await kafka_call(
            self._policy,
            f"describe group {group}",
            lambda: self._admin.describe_consumer_groups([group]),
        )
        return [
            str(member[1])
            for response in responses
            for described in response.groups
            if described[1] == group
            for member in described[5]
        ]

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """The committed offsets of the partitions that have one."""
        tps = [TopicPartition(topic, p) for p in partitions]
        found = await kafka_call(
            self._policy,
            f"offsets of group {group}",
            lambda: self._admin.list_consumer_group_offsets(group, partitions=tps),
        )
        return {tp.partition: int(meta.offset) for tp, meta in found.items() if meta.offset >= 0}

    async def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` for ``group`` without joining it; refused while it has members."""
        consumer = AIOKafkaConsumer(
            **connection_options(self._settings),
            client_id=f"{self._settings.client_id}-ops-commit",
            group_id=group,
            enable_auto_commit=False,
        )
        wanted = {TopicPartition(topic, p): offset for p, offset in offsets.items()}
        await kafka_call(self._policy, "connect to Kafka", consumer.start)
        try:
            consumer.assign(list(wanted))
            await kafka_call(
                self._policy, f"commit offsets of {group}", lambda: consumer.commit(wanted)
            )
        except TransientError as exc:
            if isinstance(exc.__cause__, _REFUSED_COMMITS):
                raise ConfigError(
                    f"consumer group {group} has active members; stop them first"
                ) from None
            raise
        finally:
            await stop_client(consumer)
        log.info("group_offsets_committed", group=group, topic=topic, offsets=dict(offsets))


@asynccontextmanager
async def open_kafka(settings: Settings) -> AsyncIterator[tuple[KafkaTopics, KafkaGroups]]:
    """A topic reader and a group-offsets client for one command, closed on exit."""
    policy = RetryPolicy.from_settings(settings.retry)
    async with (
        KafkaTopics(settings.kafka, policy) as topics,
        KafkaGroups(settings.kafka, policy) as groups,
    ):
        yield topics, groups
