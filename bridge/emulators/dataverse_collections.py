"""Dataverse collection reads: queries with server paging, and change tracking.

Paging (dynamics-apis.md A.5): ``Prefer: odata.maxpagesize=N`` (default and cap from
settings, 5000) pages with an opaque ``$skiptoken`` cookie in ``@odata.nextLink``; ``$top``
is ignored with maxpagesize; ``$skip`` is rejected.

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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from bridge.emulators.dataverse_json import DataverseRenderer
from bridge.emulators.dataverse_tables import DataverseTables
from bridge.emulators.entities import EntityDef
from bridge.emulators.errors import ApiError, bad_request
from bridge.emulators.odata_filter import DATAVERSE
from bridge.emulators.protocol import ApiRequest, ApiResponse, json_response
from bridge.emulators.query import filter_rows, order_rows, parse_query, parse_select
from bridge.emulators.store import Op, StoredRecord

EXPIRED_CODE = "0x80044352"
EXPIRED_MESSAGE = (
    "Version stamp associated with the client has expired. Please perform a full sync."
)
_TRACKING_REJECTED = ("$filter", "$orderby", "$expand", "$top")
_TOKEN = re.compile(r"^(\d+)!(\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2})$")
_COOKIE = re.compile(r'mode="(\w+)" offset="(\d+)" from="(\d+)" upto="(\d+)"')
_LINK_SAFE = "$(),'=:/@!"


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts; carried inside the ``$skiptoken`` cookie."""

    mode: str
    offset: int
    after: int = 0
    upto: int = 0

    def encode(self) -> str:
        """The Dataverse-style paging cookie."""
        inner = f'<cookie page="{self.offset}" mode="{self.mode}" offset="{self.offset}" from="{self.after}" upto="{self.upto}" />'
        tracking = "True" if self.mode != "query" else "False"
        return f'<cookie pagenumber="2" pagingcookie="{quote(inner, safe="")}" istracking="{tracking}" />'

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Parse a ``$skiptoken``; 400 if it was not issued by this emulator."""
        match = _COOKIE.search(unquote(unquote(token)))
        if match is None:
            raise bad_request("The $skiptoken value is not valid.")
        return cls(match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4)))


def delta_token(version: int, moment: datetime) -> str:
    """``<version>!<MM/dd/yyyy HH:mm:ss>``."""
    return f"{version}!{moment.astimezone(UTC):%m/%d/%Y %H:%M:%S}"


def _link(root: str, entity: EntityDef, params: Mapping[str, str], **extra: str) -> str:
    kept = {k: v for k, v in params.items() if k not in ("$skiptoken", "$deltatoken")}
    kept.update(extra)
    safe = {"$deltatoken": "", "$skiptoken": "="}
    query = "&".join(f"{k}={quote(v, safe=safe.get(k, _LINK_SAFE))}" for k, v in kept.items())
    return f"{root}{entity.entity_set}?{query}"


class DataverseCollections:
    """GET on an entity set (and its ``$count``)."""

    def __init__(self, tables: DataverseTables, max_page_size: int) -> None:
        self.tables = tables
        self.max_page_size = max_page_size

    def read(self, request: ApiRequest, entity: EntityDef) -> ApiResponse:
        """Answer ``GET /<entityset>``."""
        cursor = (
            PageCursor.decode(request.query["$skiptoken"])
            if "$skiptoken" in request.query
            else None
        )
        token = request.query.get("$deltatoken")
        if request.prefer.track_changes or token is not None or (cursor and cursor.mode != "query"):
            return self._tracked(request, entity, cursor, token)
        return self._query(request, entity, cursor)

    def count(self, request: ApiRequest, entity: EntityDef) -> ApiResponse:
        """Answer ``GET /<entityset>/$count`` (changes since a token with ``$deltatoken``)."""
        token = request.query.get("$deltatoken")
        if token is not None:
            after = self._token_version(token)
            upserts, deletes = self._changes(entity, after, self.tables.store.version)
            return ApiResponse(
                200, text=str(len(upserts) + len(deletes)), headers={"OData-Version": "4.0"}
            )
        options = parse_query(
            request.query, entity.web_field, entity.qualified_type, DATAVERSE, allow_skip=False
        )
        rows = filter_rows(
            self.tables.store.records(entity.name),
            options.filter,
            self.tables.resolver(entity),
            DATAVERSE,
        )
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
        self, request: ApiRequest, entity: EntityDef, cursor: PageCursor | None
    ) -> ApiResponse:
        params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        options = parse_query(
            params, entity.web_field, entity.qualified_type, DATAVERSE, allow_skip=False
        )
        resolve = self.tables.resolver(entity)
        rows = filter_rows(
            self.tables.store.records(entity.name), options.filter, resolve, DATAVERSE
        )
        rows = order_rows(rows, options.orderby, resolve)
        total = len(rows)
        if options.top is not None and not request.prefer.max_page_size:
            rows = rows[: options.top]
        size, offset = self._page_size(request), cursor.offset if cursor else 0
        renderer = DataverseRenderer(self.tables, request.service_root, request.prefer)
        body: dict[str, Any] = {"@odata.context": renderer.context(entity, options.select)}
        if options.count:
            body["@odata.count"] = total
        page = rows[offset : offset + size]
        body["value"] = [
            renderer.record(entity, row, options.select, options.expand) for row in page
        ]
        if offset + size < len(rows):
            skip = PageCursor("query", offset + size).encode()
            body["@odata.nextLink"] = _link(
                request.service_root, entity, request.query, **{"$skiptoken": skip}
            )
        return json_response(body, headers=self._applied(request, tracking=False))

    def _tracked(
        self, request: ApiRequest, entity: EntityDef, cursor: PageCursor | None, token: str | None
    ) -> ApiResponse:
        if not entity.change_tracking:
            raise bad_request(f"Change tracking is not enabled for entity '{entity.name}'.")
        for option in _TRACKING_REJECTED:
            if option in request.query:
                raise bad_request(
                    f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
                )
        select = parse_select(request.query.get("$select"), entity.web_field, entity.qualified_type)
        if cursor is None:
            after = self._token_version(token) if token is not None else 0
            cursor = PageCursor(
                "delta" if token is not None else "initial", 0, after, self.tables.store.version
            )
        renderer = DataverseRenderer(self.tables, request.service_root, request.prefer)
        items = self._tracked_items(renderer, entity, cursor, select)
        size = self._page_size(request)
        suffix = "/$delta" if cursor.mode == "delta" else ""
        body: dict[str, Any] = {"@odata.context": renderer.context(entity, select, suffix)}
        last = cursor.offset + size >= len(items)
        if last:
            new_token = delta_token(cursor.upto, self.tables.store.now())
            body["@odata.deltaLink"] = _link(
                request.service_root, entity, request.query, **{"$deltatoken": new_token}
            )
        body["value"] = items[cursor.offset : cursor.offset + size]
        if not last:
            skip = PageCursor(cursor.mode, cursor.offset + size, cursor.after, cursor.upto).encode()
            body["@odata.nextLink"] = _link(
                request.service_root, entity, request.query, **{"$skiptoken": skip}
            )
        return json_response(body, headers=self._applied(request, tracking=True))

    def _tracked_items(
        self, renderer: DataverseRenderer, entity: EntityDef, cursor: PageCursor, select: Any
    ) -> list[dict[str, Any]]:
        if cursor.mode == "initial":
            rows = sorted(
                (r for r in self.tables.store.records(entity.name) if r.version <= cursor.upto),
                key=lambda r: r.version,
            )
            return [renderer.record(entity, row, select) for row in rows]
        upserts, deletes = self._changes(entity, cursor.after, cursor.upto)
        deleted_context = f"{renderer.service_root}$metadata#{entity.entity_set}/$deletedEntity"
        return [renderer.record(entity, row, select) for row in upserts] + [
            {"@odata.context": deleted_context, "id": str(key), "reason": "deleted"}
            for key in deletes
        ]

    def _changes(
        self, entity: EntityDef, after: int, upto: int
    ) -> tuple[list[StoredRecord], list[Any]]:
        last_op: dict[Any, Op] = {}
        for change in self.tables.store.changes_between(entity.name, after, upto):
            last_op[change.key] = change.op
        upserts = []
        deletes = []
        for key, op in last_op.items():
            record = self.tables.store.get(entity.name, key)
            if op is Op.DELETE or record is None:
                deletes.append(key[0])
            else:
                upserts.append(record)
        return sorted(upserts, key=lambda r: r.version), deletes

    def _token_version(self, token: str) -> int:
        match = _TOKEN.match(unquote(token))
        if match is None:
            raise bad_request("The $deltatoken value is not valid.")
        issued = datetime.strptime(match.group(2), "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC)
        version = int(match.group(1))
        if self.tables.store.is_expired(version, issued):
            raise ApiError(400, EXPIRED_MESSAGE, code=EXPIRED_CODE)
        return version
