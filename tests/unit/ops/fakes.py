"""In-memory fakes of the operator commands' seams: topics, groups, state, sources, targets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.config import CompanySettings, Settings
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.engine.flow import Flow, resolve_flow
from bridge.engine.stream import Headers
from bridge.errors import ConfigError
from bridge.mapping.template import Template
from bridge.ops.ports import RawRecord
from bridge.ops.snapshots import SnapshotPage, with_capture

HUMAN = "22222222-2222-2222-2222-222222222222"


def accounts_flow() -> Flow:
    """The shipped accounts flow with the default settings (prefix ``p2c``)."""
    return resolve_flow(Settings(), "accounts")


def account_event(
    record_id: str,
    version: int = 1,
    *,
    capture: Capture = Capture.BACKFILL,
    operation: Operation = Operation.SNAPSHOT,
    **image: Any,
) -> ChangeEvent:
    """A Sales account event with a valid image unless overridden."""
    after = {
        "accountid": record_id,
        "accountnumber": f"ACC-{record_id}",
        "name": f"Account {record_id}",
        "address1_country": "Germany",
        **image,
    }
    source = Source(
        system=System.SALES,
        entity="account",
        record_id=record_id,
        change_time=datetime(2026, 1, 1, tzinfo=UTC),
        capture=capture,
        business_key=after.get("accountnumber"),
        record_version=version,
        changed_by=HUMAN,
    )
    return ChangeEvent.create(source, operation, after=after)


class MemoryTopics:
    """Topics as lists of records per partition; offsets are list indexes."""

    def __init__(self) -> None:
        self.logs: dict[str, dict[int, list[RawRecord]]] = {}

    def create(self, topic: str, partitions: int = 3) -> None:
        self.logs.setdefault(topic, {p: [] for p in range(partitions)})

    def append(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        *,
        key: bytes | None = b"k",
        headers: Headers = (),
        timestamp_ms: int = 0,
    ) -> RawRecord:
        self.create(topic)
        log = self.logs[topic][partition]
        record = RawRecord(topic, partition, len(log), key, value, tuple(headers), timestamp_ms)
        log.append(record)
        return record

    async def partitions(self, topic: str) -> list[int]:
        return sorted(self.logs.get(topic, {}))

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(log) for p, log in self.logs.get(topic, {}).items()}

    async def offsets_at(self, topic: str, moment: datetime) -> dict[int, int | None]:
        millis = int(moment.timestamp() * 1000)
        return {
            p: next((r.offset for r in log if r.timestamp_ms >= millis), None)
            for p, log in self.logs.get(topic, {}).items()
        }

    async def records(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> AsyncIterator[RawRecord]:
        for partition, (start, end) in sorted(ranges.items()):
            for record in self.logs[topic][partition][start:end]:
                yield record


class MemoryGroups:
    """Committed offsets per (group, topic); a group with members refuses commits."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.offsets: dict[tuple[str, str], dict[int, int]] = {}
        self.running: dict[str, list[str]] = {}
        self.journal = journal if journal is not None else []

    async def members(self, group: str) -> list[str]:
        return list(self.running.get(group, []))

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        stored = self.offsets.get((group, topic), {})
        return {p: o for p, o in stored.items() if p in partitions}

    async def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        if self.running.get(group):
            raise ConfigError(f"consumer group {group} has active members; stop them first")
        self.offsets.setdefault((group, topic), {}).update(offsets)
        self.journal.append(f"commit {group} {dict(offsets)}")


class MemoryState:
    """The state store as a dict; ``put(key, None)`` deletes."""

    def __init__(self, values: dict[str, Any] | None = None, journal: list[str] | None = None):
        self.values = dict(values or {})
        self.writes: list[tuple[str, Any]] = []
        self.journal = journal if journal is not None else []

    def get(self, key: str) -> Any:
        return self.values.get(key)

    async def put(self, key: str, value: Any) -> None:
        self.writes.append((key, value))
        self.journal.append(f"put {key}")
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


class RecordingSender:
    """``send_raw`` that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def __call__(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append((topic, value, key, headers))


class PagedSource:
    """A snapshot source over a list of events; the cursor is the next index as text."""

    def __init__(self, flow: Flow, events: Sequence[ChangeEvent], *, total: bool = True):
        self.entity = flow.entity
        self.events = list(events)
        self.total = total
        self.reads: list[str | None] = []

    async def pages(
        self, cursor: str | None, page_size: int, capture: Capture
    ) -> AsyncIterator[SnapshotPage]:
        start = int(cursor or 0)
        while True:
            self.reads.append(cursor)
            chunk = self.events[start : start + page_size]
            nxt = start + page_size
            cursor = str(nxt) if nxt < len(self.events) else None
            yield SnapshotPage(
                [with_capture(e, capture) for e in chunk],
                cursor,
                len(self.events) if self.total else None,
            )
            if cursor is None:
                return
            start = nxt


class MemoryTargets:
    """Target records in a list."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.rows = list(records)

    async def records(
        self, template: Template, companies: CompanySettings, page_size: int
    ) -> AsyncIterator[dict[str, Any]]:
        for row in self.rows:
            yield row


def fno_event(company: str = "usmf", number: str = "P-1", **image: Any) -> ChangeEvent:
    """An F&O product snapshot without a version (what F&O snapshots carry)."""
    after = {"dataAreaId": company, "ProductNumber": number, **image}
    source = Source(
        system=System.FNO,
        entity="CDSReleasedDistinctProducts",
        record_id=f"{company}|{number}".lower(),
        change_time=datetime(2026, 1, 1, tzinfo=UTC),
        capture=Capture.BACKFILL,
        business_key=number,
        company=company,
    )
    return ChangeEvent.create(source, Operation.SNAPSHOT, after=after)
