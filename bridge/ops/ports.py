"""The seams the operator commands reach Kafka through; fakes implement them in unit tests.

Offsets and partitions are plain ints here, so nothing outside :mod:`bridge.kafka.ops`
depends on aiokafka's types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from bridge.engine.stream import StreamRecord

RawRecord = StreamRecord
"""One Kafka record as stored (the engine's record type; the commands call it raw because
they never decode it on the way)."""


class TopicReading(Protocol):
    """Read-only access to a topic's partitions, offsets and records (no consumer group)."""

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition numbers, sorted; empty if the topic does not exist."""
        ...

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition."""
        ...

    async def offsets_at(self, topic: str, moment: datetime) -> dict[int, int | None]:
        """Per partition, the first offset whose timestamp is at or after ``moment``;
        ``None`` for a partition with no such record."""
        ...

    def records(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> AsyncIterator[RawRecord]:
        """The records of ``[start, end)`` per partition, in offset order per partition."""
        ...


class GroupOffsets(Protocol):
    """A consumer group's committed offsets, changed only while the group has no members."""

    async def members(self, group: str) -> list[str]:
        """The client ids of the group's active members (empty when nobody consumes)."""
        ...

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """The committed offsets of the partitions that have one."""
        ...

    async def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` for ``group`` without joining it.

        Raises :class:`~bridge.errors.ConfigError` if the group has active members (Kafka
        refuses a commit from outside a running group).
        """
        ...


class StateAccess(Protocol):
    """The state store as the commands use it (:class:`bridge.kafka.state.StateStore`)."""

    def get(self, key: str) -> Any:
        """The stored value, or ``None``."""
        ...

    async def put(self, key: str, value: Any) -> None:
        """Store ``value`` durably; ``None`` deletes the key."""
        ...
