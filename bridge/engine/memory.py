"""The engine's ports in memory: a log of partitioned topics, consumer groups with range
assignment and rebalances, a sender and a version log.

It behaves like the Kafka adapter where the engine can tell: records of a partition in
offset order, committed offsets per group, pause / seek / resume, revocation callbacks
awaited before partitions move, and a member that crashes leaving without them. Unit and
model tests run the real engine on it; the integration tests run the same engine on Kafka.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from bridge.engine.stream import Headers, Partition, RebalanceListener, StreamRecord
from bridge.errors import PublishFailed, TransientError


class MemoryLog:
    """Topics of partitions of records, and the groups consuming them."""

    def __init__(self, partitions: int = 3) -> None:
        self.default_partitions = partitions
        self.topics: dict[str, list[list[StreamRecord]]] = {}
        self.groups: dict[str, MemoryGroup] = {}

    def create(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` unless it exists."""
        self.topics.setdefault(topic, [[] for _ in range(partitions or self.default_partitions)])

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> StreamRecord:
        """Append one record; without ``partition`` a key picks its partition by hash."""
        self.create(topic)
        partitions = self.topics[topic]
        if partition is None:
            partition = zlib.crc32(key or b"") % len(partitions)
        record = StreamRecord(
            topic, partition, len(partitions[partition]), key, value, tuple(headers)
        )
        partitions[partition].append(record)
        return record

    def records(self, topic: str) -> list[StreamRecord]:
        """Every record of ``topic``, partition by partition."""
        return [r for records in self.topics.get(topic, []) for r in records]

    def group(self, name: str) -> MemoryGroup:
        """The consumer group called ``name``."""
        return self.groups.setdefault(name, MemoryGroup(self, name))


@dataclass
class MemoryGroup:
    """A consumer group: committed offsets and members sharing partitions by range."""

    log: MemoryLog
    name: str
    committed: dict[Partition, int] = field(default_factory=dict)
    members: list[MemoryConsumer] = field(default_factory=list)

    async def join(self, member: MemoryConsumer) -> None:
        """Add ``member`` and rebalance."""
        await self._revoke_all()
        self.members.append(member)
        await self._assign_all()

    async def leave(self, member: MemoryConsumer) -> None:
        """Remove ``member`` cleanly (its revocation callback runs) and rebalance."""
        if member not in self.members:
            return
        await self._revoke_all()
        self.members.remove(member)
        member.owned = frozenset()
        await self._assign_all()

    async def crash(self, member: MemoryConsumer) -> None:
        """Remove ``member`` without its callbacks (a killed process) and rebalance the
        others."""
        if member not in self.members:
            return
        self.members.remove(member)
        member.owned = frozenset()
        member.alive = False
        await self._revoke_all()
        await self._assign_all()

    async def _revoke_all(self) -> None:
        for member in list(self.members):
            if member.owned:
                await member.listener.revoked(member.owned)
                member.owned = frozenset()

    async def _assign_all(self) -> None:
        ranked = sorted(self.members, key=lambda m: m.member_id)
        shares: dict[str, set[Partition]] = {m.member_id: set() for m in ranked}
        for topic in {t for m in ranked for t in m.topics}:
            self.log.create(topic)
            count = len(self.log.topics[topic])
            takers = [m for m in ranked if topic in m.topics]
            for number in range(count):
                # range assignment: contiguous blocks, so partition n of every topic of the
                # same size goes to the same member (the engine relies on it)
                owner = takers[number * len(takers) // count]
                shares[owner.member_id].add(Partition(topic, number))
        for member in ranked:
            member.take(frozenset(shares[member.member_id]))
            if member.owned:
                await member.listener.assigned(member.owned)


class MemoryConsumer:
    """One group member: a :class:`~bridge.engine.stream.RecordStream` over a MemoryLog."""

    def __init__(
        self,
        log: MemoryLog,
        group: str,
        topics: Sequence[str],
        listener: RebalanceListener,
        member_id: str,
        max_records: int = 50,
    ) -> None:
        self.log = log
        self.group = log.group(group)
        self.topics = tuple(topics)
        self.listener = listener
        self.member_id = member_id
        self.max_records = max_records
        self.owned: frozenset[Partition] = frozenset()
        self.alive = True
        self._positions: dict[Partition, int] = {}
        self._paused: set[Partition] = set()

    def take(self, partitions: frozenset[Partition]) -> None:
        """Own ``partitions`` from their committed offsets (called by the group)."""
        self.owned = partitions
        self._positions = {p: self.group.committed.get(p, 0) for p in partitions}
        self._paused = set()

    async def fetch(self, max_wait: float) -> Mapping[Partition, Sequence[StreamRecord]]:
        """Up to ``max_records`` per owned, unpaused partition past its position."""
        batch: dict[Partition, list[StreamRecord]] = {}
        for partition in sorted(self.owned - self._paused):
            position = self._positions[partition]
            records = self.log.topics[partition.topic][partition.number]
            if position < len(records):
                batch[partition] = records[position : position + self.max_records]
                self._positions[partition] = position + len(batch[partition])
        if not batch:
            await asyncio.sleep(min(max_wait, 0.001))
        return batch

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit offsets of owned partitions; like Kafka, a member that no longer owns a
        partition cannot commit it."""
        foreign = [p for p in offsets if p not in self.owned]
        if foreign or not self.alive:
            raise TransientError(f"not the owner of {sorted(foreign)}")
        self.group.committed.update(offsets)

    def seek(self, partition: Partition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""
        if partition in self.owned:
            self._positions[partition] = offset

    def pause(self, partition: Partition) -> None:
        """Stop fetching ``partition``."""
        self._paused.add(partition)

    def resume(self, partition: Partition) -> None:
        """Fetch ``partition`` again."""
        self._paused.discard(partition)

    def assignment(self) -> frozenset[Partition]:
        """The partitions owned now."""
        return self.owned


class MemorySender:
    """A :class:`~bridge.engine.stream.RecordSender` appending to a MemoryLog; can be told
    to fail like a broker that does not acknowledge."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.failing = False

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Append one record, or raise PublishFailed while failing."""
        if self.failing:
            raise PublishFailed("memory broker down")
        self.log.append(topic, value, key, headers, partition)


class MemoryVersionLog:
    """A :class:`~bridge.engine.stream.VersionLog` on one topic of a MemoryLog, compacted
    on read."""

    def __init__(self, log: MemoryLog, topic: str) -> None:
        self.log = log
        self.topic = topic
        log.create(topic)

    async def read(self, partitions: Collection[int]) -> dict[int, dict[bytes, bytes]]:
        """The latest value per key of each partition."""
        result: dict[int, dict[bytes, bytes]] = {}
        for partition in partitions:
            latest: dict[bytes, bytes | None] = {}
            for record in self.log.topics[self.topic][partition]:
                latest[record.key or b""] = record.value
            result[partition] = {k: v for k, v in latest.items() if v is not None}
        return result

    async def write(self, partition: int, key: bytes, value: bytes | None) -> Awaitable[None]:
        """Append now; the returned awaitable is already done."""
        self.log.append(self.topic, value, key, partition=partition)
        return _done()

    def entries(self) -> dict[bytes, dict[str, object]]:
        """Every stored entry, decoded (for assertions)."""
        result: dict[bytes, dict[str, object]] = {}
        for number in range(len(self.log.topics[self.topic])):
            for record in self.log.topics[self.topic][number]:
                if record.value is None:
                    result.pop(record.key or b"", None)
                else:
                    result[record.key or b""] = json.loads(record.value)
        return result


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
