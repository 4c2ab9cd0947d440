"""In-memory fakes of the operator commands' seams: topics, groups, state, sources, targets,
and the Dataverse Web API that Sales targets are read from."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bridge.config import CompanySettings, SalesSettings, Settings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.engine.flow import Flow, resolve_flow
from bridge.engine.stream import Headers
from bridge.errors import ConfigError
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.mapping.template import Template
from bridge.mapping.writes import BindRef, TargetWrite
from bridge.ops.lookup_keys import bound_through
from bridge.ops.ports import RawRecord
from bridge.ops.targets import TargetColumns
from bridge.sources.snapshots import SnapshotPage, with_capture

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
    """Target records in a list; keeps the columns it was asked for."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.rows = list(records)
        self.columns: TargetColumns | None = None

    async def records(
        self,
        template: Template,
        columns: TargetColumns,
        companies: CompanySettings,
        page_size: int,
    ) -> AsyncIterator[dict[str, Any]]:
        self.columns = columns
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


def fno_record(entity: str, company: str = "usmf", **image: Any) -> ChangeEvent:
    """An F&O snapshot of any source entity (``salesorderline``...), keyed as the catalog
    keys it, without a version."""
    source_entity_ = source_entity(System.FNO, entity)
    after = {"dataAreaId": company, **image}
    source = Source(
        system=System.FNO,
        entity=source_entity_.entity,
        record_id=source_entity_.record_id(after),
        change_time=datetime(2026, 1, 1, tzinfo=UTC),
        capture=Capture.BACKFILL,
        business_key=str(after.get(source_entity_.business_key) or "") or None,
        company=company,
    )
    return ChangeEvent.create(source, Operation.SNAPSHOT, after=after)


PRIMARY_IDS = {
    "accounts": "accountid",
    "contacts": "contactid",
    "invoicedetails": "invoicedetailid",
    "invoices": "invoiceid",
    "pricelevels": "pricelevelid",
    "products": "productid",
    "salesorderdetails": "salesorderdetailid",
    "salesorders": "salesorderid",
    "transactioncurrencies": "transactioncurrencyid",
    "uoms": "uomid",
    "uomschedules": "uomscheduleid",
}
_IN = re.compile(r"^Microsoft\.Dynamics\.CRM\.In\(PropertyName='(\w+)',PropertyValues=\[(.*)\]\)$")


class MemoryDataverse:
    """The Dataverse Web API over tables in memory, as an ``httpx.MockTransport`` handler.

    Collections answer ``$select`` (a lookup only as ``_<name>_value``, as Dataverse does),
    ``$orderby`` on the primary key, ``Microsoft.Dynamics.CRM.In`` on the primary key and
    ``odata.maxpagesize`` with ``@odata.nextLink``; ``EntityDefinitions`` answers by entity
    set. :meth:`store` writes a mapped record the way the Dataverse sink leaves it, binding
    lookups by business key. Every request is kept.
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in PRIMARY_IDS}
        self.requests: list[httpx.Request] = []
        self._next = 0

    # --- data -------------------------------------------------------------------------------

    def add(self, entity_set: str, **columns: Any) -> str:
        """Insert a record (lookups as ``_<name>_value`` GUIDs); return its GUID."""
        self._next += 1
        guid = f"00000000-0000-0000-0000-{self._next:012d}"
        self.tables[entity_set][guid] = {PRIMARY_IDS[entity_set]: guid, **columns}
        return guid

    def find(self, entity_set: str, column: str, value: Any) -> str:
        """The GUID of the record whose ``column`` is ``value`` (case-insensitive)."""
        return next(
            guid
            for guid, row in self.tables[entity_set].items()
            if str(row.get(column)).casefold() == str(value).casefold()
        )

    def change(self, entity_set: str, guid: str, **columns: Any) -> None:
        """What a user does in Sales: change some columns of a record."""
        self.tables[entity_set][guid].update(columns)

    def delete(self, entity_set: str, guid: str) -> None:
        """What a user does in Sales: delete a record (nothing cascades)."""
        del self.tables[entity_set][guid]

    def store(self, write: TargetWrite) -> str:
        """Create or update the record ``write`` addresses, as the sink would."""
        values = {**write.body, **write.binds, **write.key}
        row = {
            (f"_{name}_value" if isinstance(value, BindRef) else name): (
                self._bound(value) if isinstance(value, BindRef) else value
            )
            for name, value in values.items()
            if not (value is None and name in write.binds)
            and not (isinstance(value, BindRef) and bound_through(value.candidates))
        }
        key_columns = [f"_{n}_value" if isinstance(v, BindRef) else n for n, v in write.key.items()]
        for guid, existing in self.tables[write.entity_set].items():
            if all(str(existing.get(c)).casefold() == str(row[c]).casefold() for c in key_columns):
                existing.update(row)
                return guid
        return self.add(write.entity_set, **row)

    def _bound(self, ref: BindRef) -> str:
        for candidate in ref.candidates:
            try:
                return self.find(candidate.entity_set, str(candidate.match), ref.value)
            except StopIteration:
                continue
        raise LookupError(f"no record for {ref.value!r}")

    def asked(self, entity_set: str) -> list[httpx.Request]:
        """The requests made of one entity set."""
        path = f"/api/data/v9.2/{entity_set}"
        return [r for r in self.requests if r.url.path == path]

    # --- HTTP -------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        self.requests.append(request)
        name = request.url.path.removeprefix("/api/data/v9.2/")
        if name == "EntityDefinitions":
            return self._definition(request)
        if name not in self.tables:
            return _error(404, f"Resource not found for the segment '{name}'.")
        return self._collection(request, name)

    def _definition(self, request: httpx.Request) -> httpx.Response:
        entity_set = request.url.params["$filter"].split("'")[1]
        primary = PRIMARY_IDS[entity_set]
        row = {
            "LogicalName": primary.removesuffix("id"),
            "EntitySetName": entity_set,
            "PrimaryIdAttribute": primary,
        }
        return httpx.Response(200, json={"value": [row]})

    def _collection(self, request: httpx.Request, entity_set: str) -> httpx.Response:
        params = request.url.params
        rows = sorted(
            self.tables[entity_set].values(), key=lambda r: str(r[PRIMARY_IDS[entity_set]])
        )
        if "$filter" in params:
            match = _IN.match(params["$filter"])
            if match is None or match.group(1) != PRIMARY_IDS[entity_set]:
                return _error(400, f"unsupported filter {params['$filter']}")
            wanted = set(re.findall(r"'([^']*)'", match.group(2)))
            rows = [r for r in rows if r[PRIMARY_IDS[entity_set]] in wanted]
        selected = params.get("$select")
        if selected:
            lookups = {
                k[1:-6]
                for row in self.tables[entity_set].values()
                for k in row
                if k.startswith("_")
            }
            bad = [n for n in selected.split(",") if n in lookups]
            if bad:
                return _error(400, f"Could not find a property named '{bad[0]}'.")
            names = {PRIMARY_IDS[entity_set], *selected.split(",")}
            rows = [{k: v for k, v in row.items() if k in names} for row in rows]
        return self._page(request, rows)

    def _page(self, request: httpx.Request, rows: list[dict[str, Any]]) -> httpx.Response:
        prefer = request.headers.get("Prefer", "")
        size = int(prefer.split("=")[1]) if "maxpagesize" in prefer else 5000
        start = int(request.url.params.get("skip", "0"))
        body: dict[str, Any] = {
            "value": [{"@odata.etag": 'W/"1"', **row} for row in rows[start : start + size]]
        }
        if start + size < len(rows):
            body["@odata.nextLink"] = str(request.url.copy_merge_params({"skip": start + size}))
        return httpx.Response(200, json=body)

    def client(self) -> ApiClient:
        """An API client of the bridge that talks to this fake."""
        settings = SalesSettings(base_url="http://sales")
        policy = RetryPolicy(max_attempts=1, initial_backoff=0.001, max_backoff=0.01)
        transport = httpx.MockTransport(self.handle)
        return ApiClient(settings, settings.api_path, policy, transport=transport)


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": "0x0", "message": message}})
