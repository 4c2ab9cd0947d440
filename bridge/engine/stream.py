"""The engine's ports: what it needs from a log of records, and nothing more.

``bridge.kafka.stream`` adapts aiokafka to these protocols; ``bridge.engine.memory``
implements them in memory, so the same engine runs in unit and model tests without a
broker. Partitions and offsets are plain values here: nothing in the engine knows Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One partition of one topic."""

    topic: str
    number: int


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record as stored: where it sits, its key, value, headers and timestamp (the
    engine's input and the operator commands' view of a topic alike)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=tuple)
    timestamp_ms: int = 0

    @property
    def where(self) -> Partition:
        """The partition the record was read from."""
        return Partition(self.topic, self.partition)

    @property
    def ref(self) -> str:
        """``partition:offset``, how operators name a record of a topic."""
        return f"{self.partition}:{self.offset}"


class RebalanceListener(Protocol):
    """Told by a stream when the partitions it owns change."""

    async def revoked(self, partitions: Collection[Partition]) -> None:
        """Called before ``partitions`` are taken away; when it returns, nothing more may be
        applied or committed for them."""
        ...

    async def assigned(self, partitions: Collection[Partition]) -> None:
        """Called after ``partitions`` were given and before any of their records are
        fetched."""
        ...


class RecordStream(Protocol):
    """A consumer-group member's view of its topics (a Kafka consumer, or memory).

    Records of one partition arrive in offset order. ``commit`` marks offsets as done for
    the group; it may fail with :class:`~bridge.errors.TransientError` when the partition is
    no longer this member's (the records are then delivered to the new owner again).
    """

    async def fetch(self, max_wait: float) -> Mapping[Partition, Sequence[StreamRecord]]:
        """The next records of the owned, unpaused partitions (empty after ``max_wait`` seconds)."""
        ...

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit, per partition, the offset of the next record to consume."""
        ...

    def seek(self, partition: Partition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""
        ...

    def pause(self, partition: Partition) -> None:
        """Stop fetching ``partition`` until :meth:`resume`."""
        ...

    def resume(self, partition: Partition) -> None:
        """Fetch ``partition`` again."""
        ...

    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns now."""
        ...


class RecordSender(Protocol):
    """Publishes records (dead letters, retry copies, cascades, versions) and returns only
    after they were acknowledged durably."""

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Publish one record; raises :class:`~bridge.errors.PublishFailed` if not
        acknowledged."""
        ...


class VersionLog(Protocol):
    """The durable, compacted log of one flow's per-record state, partitioned like the
    flow's change topic."""

    async def read(self, partitions: Collection[int]) -> dict[int, dict[bytes, bytes]]:
        """Per partition, the latest value of every key (tombstoned keys absent)."""
        ...

    async def write(self, partition: int, key: bytes, value: bytes | None) -> Awaitable[None]:
        """Queue one value (``None`` deletes) and return once it is queued; await the
        result for durability. Values are stored in the order they were queued."""
        ...
