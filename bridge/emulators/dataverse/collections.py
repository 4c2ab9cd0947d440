"""Dataverse collection reads: queries with server paging, and change tracking.

One algorithm for every table kind: the handlers read rows through a :class:`RowSource`
(a Dataverse table, or a finance and operations virtual table backed by the F&O store).

Paging (dynamics-apis.md A.5): ``Prefer: odata.maxpagesize=N`` (default and cap from
settings, 5000) pages with an opaque ``$skiptoken`` cookie in ``@odata.nextLink``; ``$top``
is ignored with maxpagesize; ``$skip`` is rejected. Pages continue from a stable position
(:mod:`bridge.emulators.odata.paging`), so writes between pages lose and repeat nothing.

Change tracking (A.6): ``Prefer: odata.track-changes`` returns every row plus an
``@odata.deltaLink`` whose ``$deltatoken`` is ``<version>!<MM/dd/yyyy HH:mm:ss>``. Following
it returns rows created/updated since (oldest first), then ``$deletedEntity`` rows. Each
response covers changes up to the version current when its first page was served, so
changes made while paging land in the next delta. Intermediate pages carry only a nextLink,
the last page the deltaLink. ``$filter/$orderby/$expand/$top`` are rejected; an expired
token is 400 ``0x80044352``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, json_response
from bridge.emulators.common.store import ChangeEntry, RecordStore, StoredRecord
from bridge.emulators.dataverse.json import DataverseRenderer, select_context
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.odata.ast import Binary, Literal, Node, Prop
from bridge.emulators.odata.entities import EntityDef, FieldDef
from bridge.emulators.odata.filter import DATAVERSE, Schema
from bridge.emulators.odata.lexer import LiteralType
from bridge.emulators.odata.paging import (
    DELTA,
    INITIAL,
    QUERY,
    UPSERTS,
    Change,
    PageCursor,
    latest_changes,
    ordered,
    position_of,
    rows_after,
)
from bridge.emulators.odata.query import Expand, filter_rows, parse_query, parse_select
from bridge.emulators.odata.values import LookupRef

EXPIRED_CODE = "0x80044352"
EXPIRED_MESSAGE = (
    "Version stamp associated with the client has expired. Please perform a full sync."
)
_TRACKING_REJECTED = ("$filter", "$orderby", "$expand", "$top")
_TOKEN = re.compile(r"^(\d+)!(\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2})$")
_LINK_SAFE = "$(),'=:/@!"


class RowSource(Protocol):
    """The rows of one table as the Web API reads them."""

    @property
    def entity(self) -> EntityDef:
        """The table (its attributes are Web API property names)."""

    @property
    def store(self) -> RecordStore:
        """The store holding the rows, their versions and change log."""

    @property
    def stored_as(self) -> str:
        """The entity name the store keeps the rows under."""

    def rows(self) -> list[StoredRecord]:
        """Every row now."""

    def resolve(self, record: StoredRecord, web_name: str) -> Any:
        """One property of a row as ``$filter``/``$orderby`` see it."""

    def render(
        self,
        request: ApiRequest,
        record: StoredRecord,
        select: Sequence[str] | None,
        expand: Sequence[Expand] = (),
    ) -> dict[str, Any]:
        """One row as JSON for ``request``."""

    def record_id(self, entry: ChangeEntry) -> str:
        """The primary id (GUID) of the record a change-log row is about."""


@dataclass(frozen=True)
class TableSource:
    """A Dataverse table as a :class:`RowSource`."""

    tables: DataverseTables
    entity: EntityDef

    @property
    def store(self) -> RecordStore:
        """The organization's store."""
        return self.tables.store

    @property
    def stored_as(self) -> str:
        """The table's logical name."""
        return self.entity.name

    def rows(self) -> list[StoredRecord]:
        """Every row now."""
        return self.tables.store.records(self.entity.name)

    def resolve(self, record: StoredRecord, web_name: str) -> Any:
        """A property by Web API name (``_x_value`` for lookups), or a single-valued
        navigation path ``<nav>/<property>`` (the related record's property)."""
        nav, slash, rest = web_name.partition("/")
        if slash:
            related = self._related(nav)
            if related is None:
                return None
            lookup, target = related
            ref = record.values.get(lookup.name)
            found = self.tables.get(target, ref.id) if isinstance(ref, LookupRef) else None
            return TableSource(self.tables, target).resolve(found, rest) if found else None
        field = self.entity.web_field(web_name)
        return self.tables.value_of(self.entity, record, field.name) if field else None

    def filter_field(self, web_name: str) -> FieldDef | None:
        """The attribute a ``$filter`` property names, through navigation paths too
        (``sdkmessageid/name eq 'CreateMultiple'``)."""
        nav, slash, rest = web_name.partition("/")
        if not slash:
            return self.entity.web_field(web_name)
        related = self._related(nav)
        return TableSource(self.tables, related[1]).filter_field(rest) if related else None

    def _related(self, nav: str) -> tuple[FieldDef, EntityDef] | None:
        found = self.entity.nav_property(nav)
        target = self.tables.registry.get(found[1]) if found else None
        return (found[0], target) if found and target else None

    def render(
        self,
        request: ApiRequest,
        record: StoredRecord,
        select: Sequence[str] | None,
        expand: Sequence[Expand] = (),
    ) -> dict[str, Any]:
        """The record as Web API JSON."""
        renderer = DataverseRenderer(self.tables, request.service_root, request.prefer)
        return renderer.record(self.entity, record, select, expand)

    def record_id(self, entry: ChangeEntry) -> str:
        """Dataverse records are keyed by their GUID."""
        return str(entry.key[0])


def _candidates(source: RowSource, node: Node | None) -> list[StoredRecord]:
    """The rows that can pass ``node``: when it only pins primary ids
    (``accountid eq <guid> or ...``, as a client reading many records by id sends), the rows
    at those ids, read from the store by key as Dataverse's SQL would; otherwise every row.
    The filter is still applied to what this returns, and rows are ordered afterwards."""
    if isinstance(source, TableSource) and source.entity.primary_id:
        ids = _pinned_ids(node, source.entity.primary_id)
        if ids is not None:
            found = (source.tables.get(source.entity, record_id) for record_id in set(ids))
            return [record for record in found if record is not None]
    return source.rows()


def _pinned_ids(node: Node | None, primary_id: str) -> list[str] | None:
    """The GUIDs each ``or`` branch of ``node`` pins with ``<primary id> eq <guid>``, or
    ``None`` when the filter is anything else."""
    if isinstance(node, Binary) and node.op == "or":
        left, right = _pinned_ids(node.left, primary_id), _pinned_ids(node.right, primary_id)
        return None if left is None or right is None else left + right
    if (
        isinstance(node, Binary)
        and node.op == "eq"
        and isinstance(node.left, Prop)
        and node.left.name == primary_id
        and isinstance(node.right, Literal)
        and node.right.type is LiteralType.GUID
    ):
        return [str(node.right.value)]
    return None


def _filter_schema(source: RowSource) -> Schema:
    """Tables filter through navigation paths too; virtual tables have none."""
    return source.filter_field if isinstance(source, TableSource) else source.entity.web_field


def delta_token(version: int, moment: datetime) -> str:
    """``<version>!<MM/dd/yyyy HH:mm:ss>``."""
    return f"{version}!{moment.astimezone(UTC):%m/%d/%Y %H:%M:%S}"


def _context(request: ApiRequest, entity: EntityDef, select: Any, suffix: str = "") -> str:
    return f"{request.service_root}$metadata#{select_context(entity, select)}{suffix}"


def _link(root: str, entity: EntityDef, params: Mapping[str, str], **extra: str) -> str:
    kept = {k: v for k, v in params.items() if k not in ("$skiptoken", "$deltatoken")}
    kept.update(extra)
    safe = {"$deltatoken": "", "$skiptoken": "="}
    query = "&".join(f"{k}={quote(v, safe=safe.get(k, _LINK_SAFE))}" for k, v in kept.items())
    return f"{root}{entity.entity_set}?{query}"


class DataverseCollections:
    """GET on an entity set (and its ``$count``)."""

    def __init__(self, max_page_size: int) -> None:
        self.max_page_size = max_page_size

    def read(self, request: ApiRequest, source: RowSource) -> ApiResponse:
        """Answer ``GET /<entityset>``."""
        cursor = (
            PageCursor.decode(request.query["$skiptoken"])
            if "$skiptoken" in request.query
            else None
        )
        token = request.query.get("$deltatoken")
        if request.prefer.track_changes or token is not None or (cursor and cursor.mode != QUERY):
            return self._tracked(request, source, cursor, token)
        return self._query(request, source, cursor)

    def count(self, request: ApiRequest, source: RowSource) -> ApiResponse:
        """Answer ``GET /<entityset>/$count`` (changes since a token with ``$deltatoken``)."""
        entity = source.entity
        token = request.query.get("$deltatoken")
        if token is not None:
            after = self._token_version(source.store, token)
            changes = self._changes(source, after, source.store.version)
            return ApiResponse(200, text=str(len(changes)), headers={"OData-Version": "4.0"})
        options = parse_query(
            request.query,
            entity.web_field,
            entity.qualified_type,
            DATAVERSE,
            allow_skip=False,
            filter_schema=_filter_schema(source),
        )
        rows = filter_rows(source.rows(), options.filter, source.resolve, DATAVERSE)
        return ApiResponse(200, text=str(len(rows)), headers={"OData-Version": "4.0"})

    def _page_size(self, request: ApiRequest) -> int:
        wanted = request.prefer.max_page_size
        return min(wanted, self.max_page_size) if wanted else self.max_page_size

    def _applied(self, request: ApiRequest, tracking: bool) -> dict[str, str]:
        applied = []
        if request.prefer.max_page_size:
            applied.append(f"odata.maxpagesize={self._page_size(request)}")
        if tracking and request.prefer.track_changes:
            applied.append("odata.track-changes")
        if request.prefer.include_annotations:
            applied.append(
                f'odata.include-annotations="{",".join(request.prefer.include_annotations)}"'
            )
        return {"Preference-Applied": ",".join(applied)} if applied else {}

    def _query(
        self, request: ApiRequest, source: RowSource, cursor: PageCursor | None
    ) -> ApiResponse:
        entity = source.entity
        params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        options = parse_query(
            params,
            entity.web_field,
            entity.qualified_type,
            DATAVERSE,
            allow_skip=False,
            filter_schema=_filter_schema(source),
        )
        rows = filter_rows(
            _candidates(source, options.filter), options.filter, source.resolve, DATAVERSE
        )
        rows = ordered(rows, options.orderby, source.resolve)
        total = len(rows)
        limit = (
            options.top if options.top is not None and not request.prefer.max_page_size else None
        )
        if cursor is not None:
            rows = rows_after(rows, options.orderby, source.resolve, cursor.keys)
            limit = cursor.remaining
        if limit is not None:
            rows = rows[:limit]
        size = self._page_size(request)
        body: dict[str, Any] = {"@odata.context": _context(request, entity, options.select)}
        if options.count:
            body["@odata.count"] = total
        page = rows[:size]
        body["value"] = [
            source.render(request, row, options.select, options.expand) for row in page
        ]
        if len(rows) > size:
            skip = PageCursor(
                QUERY,
                keys=position_of(page[-1], options.orderby, source.resolve),
                remaining=None if limit is None else limit - size,
                page=(cursor.page + 1) if cursor else 2,
            )
            body["@odata.nextLink"] = _link(
                request.service_root, entity, request.query, **{"$skiptoken": skip.encode()}
            )
        return json_response(body, headers=self._applied(request, tracking=False))

    def _tracked(
        self,
        request: ApiRequest,
        source: RowSource,
        cursor: PageCursor | None,
        token: str | None,
    ) -> ApiResponse:
        entity = source.entity
        if not entity.change_tracking:
            raise bad_request(f"Change tracking is not enabled for entity '{entity.name}'.")
        for option in _TRACKING_REJECTED:
            if option in request.query:
                raise bad_request(
                    f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
                )
        select = parse_select(request.query.get("$select"), entity.web_field, entity.qualified_type)
        if cursor is None:
            after = self._token_version(source.store, token) if token is not None else 0
            mode = DELTA if token is not None else INITIAL
            cursor = PageCursor(mode, after=after, upto=source.store.version, page=1)
        size = self._page_size(request)
        items, next_cursor = (
            self._initial_page(request, source, cursor, select, size)
            if cursor.mode == INITIAL
            else self._delta_page(request, source, cursor, select, size)
        )
        suffix = "/$delta" if cursor.mode == DELTA else ""
        body: dict[str, Any] = {"@odata.context": _context(request, entity, select, suffix)}
        if next_cursor is None:
            new_token = delta_token(cursor.upto, source.store.now())
            body["@odata.deltaLink"] = _link(
                request.service_root, entity, request.query, **{"$deltatoken": new_token}
            )
        body["value"] = items
        if next_cursor is not None:
            body["@odata.nextLink"] = _link(
                request.service_root,
                entity,
                request.query,
                **{"$skiptoken": next_cursor.encode()},
            )
        return json_response(body, headers=self._applied(request, tracking=True))

    def _initial_page(
        self,
        request: ApiRequest,
        source: RowSource,
        cursor: PageCursor,
        select: Sequence[str] | None,
        size: int,
    ) -> tuple[list[dict[str, Any]], PageCursor | None]:
        rows = sorted(
            (r for r in source.rows() if cursor.last < r.version <= cursor.upto),
            key=lambda r: r.version,
        )
        page = rows[:size]
        items = [source.render(request, row, select) for row in page]
        if len(rows) <= size:
            return items, None
        return items, PageCursor(
            INITIAL,
            after=cursor.after,
            upto=cursor.upto,
            last=page[-1].version,
            page=cursor.page + 1,
        )

    def _delta_page(
        self,
        request: ApiRequest,
        source: RowSource,
        cursor: PageCursor,
        select: Sequence[str] | None,
        size: int,
    ) -> tuple[list[dict[str, Any]], PageCursor | None]:
        changes = [
            change
            for change in self._changes(source, cursor.after, cursor.upto)
            if change.position > (cursor.phase, cursor.last)
        ]
        page = changes[:size]
        items = [self._change_item(request, source, change, select) for change in page]
        if len(changes) <= size:
            return items, None
        phase, last = page[-1].position
        return items, PageCursor(
            DELTA,
            after=cursor.after,
            upto=cursor.upto,
            phase=phase,
            last=last,
            page=cursor.page + 1,
        )

    def _change_item(
        self,
        request: ApiRequest,
        source: RowSource,
        change: Change,
        select: Sequence[str] | None,
    ) -> dict[str, Any]:
        entry = change.entry
        current = source.store.get(source.stored_as, entry.key)
        if change.phase == UPSERTS and current is not None and current.row_id == entry.row_id:
            return source.render(request, current, select)
        context = f"{request.service_root}$metadata#{source.entity.entity_set}/$deletedEntity"
        return {"@odata.context": context, "id": str(change.identity), "reason": "deleted"}

    def _changes(self, source: RowSource, after: int, upto: int) -> list[Change]:
        entries = source.store.changes_between(source.stored_as, after, upto)
        return latest_changes(entries, source.record_id)

    def _token_version(self, store: RecordStore, token: str) -> int:
        match = _TOKEN.match(unquote(token))
        if match is None:
            raise bad_request("The $deltatoken value is not valid.")
        issued = datetime.strptime(match.group(2), "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC)
        version = int(match.group(1))
        if store.is_expired(version, issued):
            raise ApiError(400, EXPIRED_MESSAGE, code=EXPIRED_CODE)
        return version
