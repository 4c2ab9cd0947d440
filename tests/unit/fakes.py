"""Fakes at the seams: an in-memory publisher, a Dataverse reader, a sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import ChangeEvent
from bridge.errors import PublishFailed
from bridge.kafka.publisher import PublishedVersions
from bridge.mapping.engine import TargetWrite
from bridge.sinks.base import ApplyOutcome


class MemoryPublisher:
    """Keeps published events; dedupes per version like the real publisher; can fail."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.fail = False
        self._versions = PublishedVersions()

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        if self.fail:
            raise PublishFailed("broker down")
        fresh = [ev for e, ev in items if self._versions.claim(e.name, ev)[0]]
        self.events.extend(fresh)
        return len(fresh)


class StaticReader:
    """Answers ``read`` with a fixed record."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record = record
        self.reads = 0

    async def read(self, entity: SourceEntity, record_id: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.record


class RecordingSink:
    """Applies writes to a dict and counts them."""

    def __init__(self) -> None:
        self.writes: list[TargetWrite] = []

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        self.writes.append(write)
        return ApplyOutcome.CREATED

    async def apply_all(self, writes: Sequence[TargetWrite]) -> list[ApplyOutcome]:
        return [await self.apply(write) for write in writes]
