"""What a flow knows about each source record: the newest version it applied and the last
offset of each topic it settled for the record.

One entry per record key, kept in memory for the partitions this process owns and written
to the flow's compacted versions topic (same partition number as the record). An entry is
changed only by the one task that applies the record's events, so checking a version and
storing the new one happen as one step per record (see :mod:`bridge.engine.runner`).

Ordering rule (:func:`staleness`): events of a record carry a comparable version (the
source system's row version, set by its package: ``bridge.dataverse``, ``bridge.fno``). An
older version than the one applied is stale; an equal one is stale unless an operator forces
it; a delete with the version it deleted is not stale (its pre-image carries that version).
Events without a version are not compared at all: the engine confirms them against the
source first (:mod:`bridge.engine.runner`). A stored version never goes down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.contract.envelope import ChangeEvent, Operation
from bridge.engine.stream import VersionLog
from bridge.errors import BridgeError, PublishFailed


@dataclass(frozen=True, slots=True)
class RecordState:
    """One record's entry: ``version`` and ``deleted`` describe the newest change applied
    (``None`` if none was); ``settled`` maps a topic to the last offset settled for the
    record there (applied, skipped, dead-lettered or moved to the retry topic)."""

    version: int | None = None
    deleted: bool = False
    event_id: str | None = None
    business_key: str | None = None
    settled: dict[str, int] = field(default_factory=dict)

    def has_settled(self, topic: str, offset: int) -> bool:
        """Whether the record at ``offset`` of ``topic`` was settled before (a redelivery)."""
        return offset <= self.settled.get(topic, -1)

    def after_settling(self, topic: str, offset: int) -> RecordState:
        """This entry with ``offset`` of ``topic`` settled."""
        return replace(self, settled={**self.settled, topic: offset})

    def after_applying(self, event: ChangeEvent) -> RecordState:
        """This entry after ``event`` was applied; the version never goes down."""
        versions = [v for v in (self.version, event.source.record_version) if v is not None]
        return replace(
            self,
            version=max(versions) if versions else None,
            deleted=event.operation is Operation.DELETE,
            event_id=event.event_id,
            business_key=event.source.business_key or self.business_key,
        )

    def to_json(self) -> bytes:
        """The entry as stored in the versions topic."""
        return json.dumps(
            {
                "version": self.version,
                "deleted": self.deleted,
                "event_id": self.event_id,
                "business_key": self.business_key,
                "settled": self.settled,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RecordState:
        """Read a stored entry; unknown fields are ignored."""
        data: dict[str, Any] = json.loads(raw)
        return cls(
            version=data.get("version"),
            deleted=bool(data.get("deleted")),
            event_id=data.get("event_id"),
            business_key=data.get("business_key"),
            settled={str(k): int(v) for k, v in (data.get("settled") or {}).items()},
        )


def staleness(event: ChangeEvent, state: RecordState | None, *, forced: bool) -> str | None:
    """Why ``event`` is older than what was applied for its record, or ``None``.

    Only versioned events are judged; an unversioned one returns ``None`` here.
    """
    version = event.source.record_version
    if state is None or state.version is None or version is None:
        return None
    if version < state.version:
        return f"version {version} is older than the applied {state.version}"
    if version > state.version:
        return None
    if event.operation is Operation.DELETE:
        return "record already deleted" if state.deleted else None
    if state.deleted:
        return f"version {version} was deleted"
    return None if forced else f"version {version} already applied"


class VersionTable:
    """The entries of one flow's owned partitions, written through to its version log."""

    def __init__(self, log: VersionLog) -> None:
        self._log = log
        self._entries: dict[int, dict[bytes, RecordState]] = {}
        self._pending: list[tuple[int, bytes, Awaitable[None]]] = []
        self._loading = asyncio.Lock()

    async def load(self, partitions: Iterable[int]) -> int:
        """Read the entries of newly owned partitions (those not loaded yet); return how
        many entries were read."""
        async with self._loading:
            missing = sorted(set(partitions) - set(self._entries))
            if not missing:
                return 0
            stored = await self._log.read(missing)
            for partition in missing:
                raw = stored.get(partition, {})
                self._entries[partition] = {k: RecordState.from_json(v) for k, v in raw.items()}
            return sum(len(v) for v in stored.values())

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions no longer owned (their new owner loads them)."""
        for partition in partitions:
            self._entries.pop(partition, None)

    def owns(self, partition: int) -> bool:
        """Whether the entries of ``partition`` are loaded."""
        return partition in self._entries

    def get(self, partition: int, key: bytes) -> RecordState | None:
        """The entry of one record, or ``None``."""
        return self._entries.get(partition, {}).get(key)

    async def put(self, partition: int, key: bytes, state: RecordState) -> None:
        """Replace one entry now and queue its write; :meth:`flush` makes it durable."""
        self._entries.setdefault(partition, {})[key] = state
        await self._write(partition, key)

    async def _write(self, partition: int, key: bytes) -> None:
        value = self._entries[partition][key].to_json()
        self._pending.append((partition, key, await self._log.write(partition, key, value)))

    async def flush(self) -> None:
        """Wait until every entry put so far is durable. If a write fails, the entries not
        yet durable are written again and :class:`~bridge.errors.PublishFailed` is raised;
        a later flush retries them."""
        pending, self._pending = self._pending, []
        failed: set[tuple[int, bytes]] = set()
        error: BaseException | None = None
        for partition, key, write in pending:
            try:
                await write
            except BridgeError as exc:
                failed.add((partition, key))
                error = exc
        for partition, key in sorted(failed):
            if key in self._entries.get(partition, {}):
                await self._write(partition, key)
        if error is not None:
            raise PublishFailed(f"versions not stored: {error}") from error
