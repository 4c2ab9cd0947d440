"""In-memory record store of one emulator, with versions, a change log and write counters.

Contract:

- Every write takes the next value of ONE monotonic version counter per emulator; the
  record keeps it (Dataverse ``versionnumber``/ETag, F&O ``RecVersion`` and ``SysRowVersion``,
  which like SQL ``rowversion`` is database-wide and grows on every change).
- A record gets a ``row_id`` when it is created and keeps it until it is deleted (F&O's
  ``RecId``): per entity, increasing from :data:`FIRST_ROW_ID` and not reused for
  committed records until a reset, so ``row_id`` order is creation order. Paging positions
  use it.
- Each entity keeps a change log ``(version, key, op)`` for change tracking; tokens older than
  the retention floor are expired (:meth:`RecordStore.is_expired`).
- Records are immutable snapshots (a write replaces the record), so readers and write
  listeners never see a half-applied write.
- Listeners get a :class:`WriteEvent` after the write; inside :meth:`RecordStore.transaction`
  events are held until the transaction commits and dropped on rollback, with every table,
  log and counter restored. Events are emitted in write order, so a plugin's derived writes
  (``depth`` > 1, see :mod:`bridge.emulators.common.plugins`) follow the write that caused them.
- Single event loop, no threads: all methods are synchronous and never await.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

RecordKey = tuple[Hashable, ...]
FIRST_ROW_ID = 5637144576


class Op(StrEnum):
    """What a write did."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class StoredRecord:
    """One record as written: values plus who wrote it and when, and its row id."""

    key: RecordKey
    values: Mapping[str, Any]
    version: int
    created_by: str
    modified_by: str
    created_at: datetime
    modified_at: datetime
    row_id: int = 0


@dataclass(frozen=True)
class WriteEvent:
    """A committed write. ``changed`` lists the attributes the request wrote; ``depth`` is 1
    for a client's write and one more per plugin level for derived writes."""

    entity: str
    op: Op
    key: RecordKey
    label: str
    before: StoredRecord | None
    after: StoredRecord | None
    changed: frozenset[str]
    principal: str
    version: int
    depth: int = 1


@dataclass(frozen=True)
class ChangeEntry:
    """One change-log row; ``row_id`` is the changed record's row id."""

    version: int
    key: RecordKey
    op: Op
    row_id: int = 0


@dataclass
class _Counts:
    creates: int = 0
    updates: int = 0
    deletes: int = 0

    def add(self, op: Op) -> None:
        setattr(self, f"{op.value}s", getattr(self, f"{op.value}s") + 1)

    def merge(self, other: _Counts) -> None:
        self.creates += other.creates
        self.updates += other.updates
        self.deletes += other.deletes

    def as_dict(self) -> dict[str, int]:
        return {"creates": self.creates, "updates": self.updates, "deletes": self.deletes}


@dataclass
class _KeyStats:
    total: _Counts = field(default_factory=_Counts)
    by_principal: dict[str, _Counts] = field(default_factory=lambda: defaultdict(_Counts))

    def add(self, op: Op, principal: str) -> None:
        self.total.add(op)
        self.by_principal[principal].add(op)

    def copy(self) -> _KeyStats:
        clone = _KeyStats()
        clone.total.merge(self.total)
        for principal, counts in self.by_principal.items():
            clone.by_principal[principal].merge(counts)
        return clone

    def as_dict(self) -> dict[str, Any]:
        principals = {name: counts.as_dict() for name, counts in sorted(self.by_principal.items())}
        return {**self.total.as_dict(), "by_principal": principals}


Listener = Callable[[WriteEvent], None]
IndexFunction = Callable[[Mapping[str, Any]], Hashable | None]
IndexName = tuple[str, str]


@dataclass
class _State:
    tables: dict[str, dict[RecordKey, StoredRecord]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    changes: dict[str, list[ChangeEntry]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[str, dict[str, _KeyStats]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[Hashable, int] = field(default_factory=dict)
    indexes: dict[IndexName, dict[Hashable, set[RecordKey]]] = field(
        default_factory=lambda: defaultdict(dict)
    )


@dataclass
class _Journal:
    """What a transaction restores on rollback, saved as it first touches each part: a
    record written (its previous version, or that it was absent), or a whole table when a
    record is deleted (a shallow copy, so a restored record keeps its place in creation
    order), the length of each change log, the write counters of a record and the members of
    an index value. Saving records, not tables, keeps a write's cost independent of the
    table's size."""

    counters: dict[Hashable, int]
    tables: dict[str, dict[RecordKey, StoredRecord]] = field(default_factory=dict)
    records: dict[tuple[str, RecordKey], StoredRecord | None] = field(default_factory=dict)
    change_lengths: dict[str, int] = field(default_factory=dict)
    stats: dict[tuple[str, str], _KeyStats | None] = field(default_factory=dict)
    index_sets: dict[tuple[IndexName, Hashable], set[RecordKey] | None] = field(
        default_factory=dict
    )

    def touch(self, state: _State, entity: str) -> None:
        if entity not in self.tables:
            table = dict(state.tables[entity])
            for (written, key), before in self.records.items():
                if written != entity:
                    continue  # records saved before the copy: the copy shows them as they were
                if before is None:
                    table.pop(key, None)
                else:
                    table[key] = before
            self.tables[entity] = table
        self.change_lengths.setdefault(entity, len(state.changes[entity]))

    def touch_record(self, state: _State, entity: str, key: RecordKey) -> None:
        if entity not in self.tables and (entity, key) not in self.records:
            self.records[(entity, key)] = state.tables[entity].get(key)
        self.change_lengths.setdefault(entity, len(state.changes[entity]))

    def touch_stats(self, state: _State, entity: str, label: str) -> None:
        if (entity, label) not in self.stats:
            existing = state.stats[entity].get(label)
            self.stats[(entity, label)] = existing.copy() if existing else None

    def touch_index(self, state: _State, name: IndexName, value: Hashable) -> None:
        if (name, value) not in self.index_sets:
            existing = state.indexes[name].get(value)
            self.index_sets[(name, value)] = set(existing) if existing is not None else None

    def rollback(self, state: _State) -> None:
        for (entity, key), before in self.records.items():
            if entity in self.tables:
                continue  # the table copy restores it
            if before is None:
                state.tables[entity].pop(key, None)
            else:
                state.tables[entity][key] = before
        state.tables.update(self.tables)
        for entity, length in self.change_lengths.items():
            del state.changes[entity][length:]
        for (entity, label), stats in self.stats.items():
            if stats is None:
                state.stats[entity].pop(label, None)
            else:
                state.stats[entity][label] = stats
        for (name, value), members in self.index_sets.items():
            if members is None:
                state.indexes[name].pop(value, None)
            else:
                state.indexes[name][value] = members
        state.counters = self.counters


class RecordStore:
    """Records of every entity of one emulator. See the module docstring for the contract."""

    def __init__(self, retention: timedelta, clock: Callable[[], datetime] | None = None) -> None:
        self._retention = retention
        self._clock = clock or (lambda: datetime.now(UTC))
        self._state = _State()
        self._version = 0
        self._floor_version = 0
        self._listeners: list[Listener] = []
        self._pending: list[WriteEvent] | None = None
        self._journal: _Journal | None = None
        self._index_functions: dict[IndexName, IndexFunction] = {}

    @property
    def version(self) -> int:
        """The last version handed out (0 before any write)."""
        return self._version

    def now(self) -> datetime:
        """The store's clock (UTC)."""
        return self._clock()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every committed write."""
        self._listeners.append(listener)

    def define_index(self, entity: str, name: str, function: IndexFunction) -> None:
        """Maintain a secondary index of ``entity``: ``function(values)`` gives a record's
        index value (``None`` = not indexed). Define indexes before writing records."""
        self._index_functions[(entity, name)] = function

    def find(self, entity: str, name: str, value: Hashable) -> list[StoredRecord]:
        """Records of ``entity`` whose index ``name`` has ``value``."""
        keys = self._state.indexes[(entity, name)].get(value, set())
        table = self._state.tables[entity]
        return [table[key] for key in keys if key in table]

    def get(self, entity: str, key: RecordKey) -> StoredRecord | None:
        """The record of ``entity`` at ``key``, if it exists."""
        return self._state.tables[entity].get(key)

    def last_change(self, entity: str) -> int:
        """The version of the last change of ``entity`` (0 if none since the last reset)."""
        changes = self._state.changes.get(entity)
        return changes[-1].version if changes else 0

    def records(self, entity: str) -> list[StoredRecord]:
        """All records of ``entity`` in creation order."""
        return list(self._state.tables[entity].values())

    def write(
        self,
        entity: str,
        key: RecordKey,
        values: Mapping[str, Any],
        *,
        principal: str,
        changed: frozenset[str],
        label: str,
        count: bool = True,
        depth: int = 1,
    ) -> StoredRecord:
        """Create or replace the record at ``key`` with ``values`` (a full record)."""
        before = self.get(entity, key)
        if self._journal is not None:
            self._journal.touch_record(self._state, entity, key)
        now = self.now()
        self._version += 1
        record = StoredRecord(
            key=key,
            values=dict(values),
            version=self._version,
            created_by=before.created_by if before else principal,
            modified_by=principal,
            created_at=before.created_at if before else now,
            modified_at=now,
            row_id=before.row_id if before else self._next_row_id(entity),
        )
        self._state.tables[entity][key] = record
        self._reindex(entity, before, record)
        op = Op.UPDATE if before else Op.CREATE
        self._record(entity, key, op, label, principal, count, before, record, changed, depth=depth)
        return record

    def delete(
        self, entity: str, key: RecordKey, *, principal: str, label: str, depth: int = 1
    ) -> StoredRecord:
        """Remove the record at ``key``; ``KeyError`` if it does not exist."""
        if key not in self._state.tables[entity]:
            raise KeyError(key)
        self._touch(entity)
        before = self._state.tables[entity].pop(key)
        self._reindex(entity, before, None)
        self._version += 1
        self._record(
            entity, key, Op.DELETE, label, principal, True, before, None, frozenset(), depth=depth
        )
        return before

    def next_counter(self, name: Hashable, start: int = 1) -> int:
        """The next value of a named counter (number sequences, auto-numbers)."""
        value = self._state.counters.get(name, start - 1) + 1
        self._state.counters[name] = value
        return value

    def _next_row_id(self, entity: str) -> int:
        return self.next_counter(("row_id", entity), FIRST_ROW_ID)

    def changes_between(self, entity: str, after: int, upto: int) -> list[ChangeEntry]:
        """Change-log rows of ``entity`` with ``after < version <= upto``, oldest first."""
        return [c for c in self._state.changes[entity] if after < c.version <= upto]

    def is_expired(self, version: int, issued_at: datetime) -> bool:
        """Whether a change-tracking token (``version``, ``issued_at``) has expired."""
        return version < self._floor_version or issued_at < self.now() - self._retention

    def expire_change_tracking(self) -> None:
        """Expire every change-tracking token issued so far (tokens carry the version current
        when they were issued, so the version moves on to tell old tokens from new ones)."""
        self._version += 1
        self._floor_version = self._version

    def stats(self) -> dict[str, Any]:
        """Write counters per entity and key, with per-principal splits and totals."""
        entities: dict[str, Any] = {}
        grand = _KeyStats()
        for entity, per_key in sorted(self._state.stats.items()):
            totals = _KeyStats()
            for key_stats in per_key.values():
                _merge(totals, key_stats)
                _merge(grand, key_stats)
            records = {label: s.as_dict() for label, s in per_key.items()}
            entities[entity] = {"records": records, "totals": totals.as_dict()}
        return {"entities": entities, "totals": grand.as_dict()}

    def count(self, entity: str, op: Op, principal: str | None = None) -> int:
        """How many ``op`` writes ``principal`` (or anyone) made to ``entity``."""
        total = 0
        for key_stats in self._state.stats.get(entity, {}).values():
            counts = key_stats.total if principal is None else key_stats.by_principal.get(principal)
            total += getattr(counts, f"{op.value}s") if counts else 0
        return total

    def reset(self) -> None:
        """Forget every record, change, counter and token (versions keep increasing)."""
        self._state = _State()
        self.expire_change_tracking()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (OData change sets)."""
        if self._pending is not None:
            yield
            return
        journal = self._journal = _Journal(counters=dict(self._state.counters))
        self._pending = []
        try:
            yield
        except BaseException:
            journal.rollback(self._state)
            self._pending = self._journal = None
            raise
        events, self._pending, self._journal = self._pending, None, None
        for event in events:
            self._emit(event)

    def _touch(self, entity: str) -> None:
        if self._journal is not None:
            self._journal.touch(self._state, entity)

    def _record(
        self,
        entity: str,
        key: RecordKey,
        op: Op,
        label: str,
        principal: str,
        count: bool,
        before: StoredRecord | None,
        after: StoredRecord | None,
        changed: frozenset[str],
        *,
        depth: int,
    ) -> None:
        changed_record = after or before
        row_id = changed_record.row_id if changed_record else 0
        self._state.changes[entity].append(ChangeEntry(self._version, key, op, row_id))
        if count:
            if self._journal is not None:
                self._journal.touch_stats(self._state, entity, label)
            self._state.stats[entity].setdefault(label, _KeyStats()).add(op, principal)
        event = WriteEvent(
            entity, op, key, label, before, after, changed, principal, self._version, depth
        )
        if self._pending is not None:
            self._pending.append(event)
        else:
            self._emit(event)

    def _reindex(
        self, entity: str, before: StoredRecord | None, after: StoredRecord | None
    ) -> None:
        for (indexed, name), function in self._index_functions.items():
            if indexed != entity:
                continue
            index = self._state.indexes[(entity, name)]
            if before is not None and (old := function(before.values)) is not None:
                self._touch_index((entity, name), old)
                index.get(old, set()).discard(before.key)
            if after is not None and (new := function(after.values)) is not None:
                self._touch_index((entity, name), new)
                index.setdefault(new, set()).add(after.key)

    def _touch_index(self, name: IndexName, value: Hashable) -> None:
        if self._journal is not None:
            self._journal.touch_index(self._state, name, value)

    def _emit(self, event: WriteEvent) -> None:
        for listener in self._listeners:
            listener(event)


def _merge(into: _KeyStats, other: _KeyStats) -> None:
    into.total.merge(other.total)
    for principal, counts in other.by_principal.items():
        into.by_principal[principal].merge(counts)
