"""Routing and handlers of the F&O OData service (``/data/...``, dynamics-apis.md B.1).

- Collections: ``$filter/$select/$top/$skip/$orderby/$count/$expand`` (one level), only the
  caller's default company unless ``cross-company=true``, server paging with
  ``@odata.nextLink`` ``...&$skip=N`` (plus ``&$top=M``, the rest of a client ``$top``; page
  size from settings, or a smaller ``odata.maxpagesize``), ``/<Set>/$count``.
- Records: all keys required; a company other than the default needs ``cross-company=true``
  (else 404). POST 201 + body; PATCH/PUT/DELETE 204; ``If-Match`` ``*`` or the current ETag
  (stale: 412); no upsert.
- ``$batch`` with atomic change sets; the batch answers 200 and each part has its status.
- Actions (:mod:`bridge.emulators.fno.actions`): ``POST /<Set>(<keys>)/Microsoft.Dynamics.
  DataEntities.<Name>`` (record visibility as for GET) and ``POST /Microsoft.Dynamics.
  DataEntities.<Name>``.
- Records are shown and filtered as read now: computed fields are recomputed
  (:meth:`~bridge.emulators.fno.tables.FnoTables.view`).

:meth:`FnoApi.dispatch` turns every :class:`ApiError` into the F&O error body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from multidict import CIMultiDict

from bridge.emulators.common.errors import ApiError, fno_body
from bridge.emulators.common.protocol import (
    ODATA_HEADERS,
    ApiRequest,
    ApiResponse,
    empty_response,
    json_response,
)
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.fno.actions import ActionRegistry, is_action_segment
from bridge.emulators.fno.business_events_api import BUSINESS_EVENT_SETS, BusinessEventsApi
from bridge.emulators.fno.json import context_url, fno_etag, record_json
from bridge.emulators.fno.tables import (
    NOT_FOUND_FOR_UPDATE,
    FnoTables,
    key_label,
    key_part,
    odata_error,
)
from bridge.emulators.odata.ast import Binary, Literal, Node, Prop
from bridge.emulators.odata.batch import (
    BatchOperation,
    ChangeSet,
    parse_batch,
    render_batch,
    run_batch,
)
from bridge.emulators.odata.csdl import csdl
from bridge.emulators.odata.entities import EntityDef, FieldKind
from bridge.emulators.odata.filter import FNO
from bridge.emulators.odata.keys import Segment, split_path
from bridge.emulators.odata.query import (
    Expand,
    QueryOptions,
    Resolve,
    filter_rows,
    order_rows,
    parse_query,
    parse_select,
)

MAX_BATCH_OPERATIONS = 5000
_LINK_SAFE = "$(),'=:/@*"


def error_response(error: ApiError) -> ApiResponse:
    """An F&O error as a response."""
    return json_response(fno_body(error), error.status, error.headers)


def _not_found(segment: str) -> ApiError:
    return odata_error(f"Resource not found for the segment '{segment}'.", 404)


def _cross_company(request: ApiRequest) -> bool:
    return request.query.get("cross-company", "").lower() == "true"


class FnoApi:
    """The OData service of one F&O emulator."""

    def __init__(
        self, tables: FnoTables, default_company: str, page_size: int, events: BusinessEventsApi
    ) -> None:
        self.tables = tables
        self.default_company = default_company.casefold()
        self.page_size = page_size
        self.events = events
        self.actions = ActionRegistry()

    def dispatch(self, request: ApiRequest) -> ApiResponse:
        """Answer one request."""
        try:
            return self._route(request)
        except ApiError as error:
            return error_response(error)

    def _route(self, request: ApiRequest) -> ApiResponse:
        segments = split_path(request.path)
        if not segments:
            value = [
                {"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set}
                for e in self.tables.registry
            ]
            return json_response(
                {"@odata.context": f"{request.service_root}$metadata", "value": value}
            )
        head = segments[0]
        if head.name == "$metadata":
            document = csdl(
                self.tables.registry,
                "Microsoft.Dynamics.DataEntities",
                "Resources",
                self.actions.csdl(),
                self.actions.csdl_imports(),
            )
            return ApiResponse(
                200, raw=document, content_type="application/xml", headers=dict(ODATA_HEADERS)
            )
        if head.name == "$batch":
            return self._batch(request)
        if head.name in BUSINESS_EVENT_SETS:
            return self.events.handle(request, segments)
        if is_action_segment(head.name) and head.key is None and len(segments) == 1:
            return self.actions.run_unbound(request, head.name)
        entity = self.tables.registry.by_set(head.name)
        if entity is None:
            raise _not_found(head.name)
        if head.key is None:
            return self._collection(request, entity, segments[1:])
        if len(segments) == 2 and segments[1].key is None and is_action_segment(segments[1].name):
            record = self._visible_record(request, entity, head.key)
            return self.actions.run_bound(request, entity, record, segments[1].name)
        if len(segments) > 1:
            raise _not_found(segments[1].name)
        return self._record(request, entity, head.key)

    def _collection(
        self, request: ApiRequest, entity: EntityDef, rest: list[Segment]
    ) -> ApiResponse:
        if rest:
            if len(rest) == 1 and rest[0].name == "$count" and request.method == "GET":
                options = self._options(request, entity)
                rows = filter_rows(
                    self._visible(request, entity), options.filter, self._resolver(entity), FNO
                )
                return ApiResponse(200, text=str(len(rows)), headers=dict(ODATA_HEADERS))
            raise _not_found(rest[0].name)
        if request.method == "GET":
            return self._query(request, entity)
        if request.method == "POST":
            record = self.tables.create(
                entity, request.json_object(), request.principal.client_id, self.default_company
            )
            return self._created(request, entity, record)
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )

    def _options(self, request: ApiRequest, entity: EntityDef) -> QueryOptions:
        params = {k: v for k, v in request.query.items() if k != "cross-company"}
        return parse_query(params, entity.fields.get, entity.qualified_type, FNO, allow_skip=True)

    def _visible(self, request: ApiRequest, entity: EntityDef) -> list[StoredRecord]:
        rows = self.tables.store.records(entity.name)
        if _cross_company(request):
            return rows
        return [r for r in rows if r.values.get("dataAreaId") == self.default_company]

    def _filtered(
        self,
        request: ApiRequest,
        entity: EntityDef,
        node: Node | None,
        resolve: Resolve[StoredRecord],
    ) -> list[StoredRecord]:
        """The visible rows that pass ``node``. When it only names full text keys
        (``(k1 eq 'a' and k2 eq 'b') or ...``, as a client reading many records by key
        sends), they are the rows at those keys, read from the key index as a real F&O's SQL
        would: the index compares keys as the filter does (text without case), so the rows
        found pass it and it is not evaluated again (for 40 keys, 40 clauses per row).
        Otherwise the filter is evaluated on every visible row."""
        text_keys = all(entity.fields[k].kind is FieldKind.STRING for k in entity.keys)
        pinned = _key_lookups(node, entity.keys) if text_keys else None
        if pinned is None:
            return filter_rows(self._visible(request, entity), node, resolve, FNO)
        found = {id(r): r for v in pinned if (r := self.tables.get(entity, v)) is not None}
        if _cross_company(request):
            return list(found.values())
        return [r for r in found.values() if r.values.get("dataAreaId") == self.default_company]

    def _query(self, request: ApiRequest, entity: EntityDef) -> ApiResponse:
        options = self._options(request, entity)
        self._check_expand(entity, options.expand)
        resolve = self._resolver(entity)
        rows = self._filtered(request, entity, options.filter, resolve)
        rows = order_rows(rows, options.orderby or [(k, False) for k in entity.keys], resolve)
        body: dict[str, Any] = {
            "@odata.context": context_url(request.service_root, entity, options.select, False)
        }
        if options.count:
            body["@odata.count"] = len(rows)
        skip = options.skip or 0
        page_size = min(request.prefer.max_page_size or self.page_size, self.page_size)
        wanted = (
            len(rows) - skip if options.top is None else min(options.top, max(len(rows) - skip, 0))
        )
        page = rows[skip : skip + min(wanted, page_size)]
        body["value"] = [self._render(entity, row, options.select, options.expand) for row in page]
        remaining = wanted - len(page)
        if remaining > 0:
            next_top = None if options.top is None else remaining
            body["@odata.nextLink"] = self._next_link(request, entity, skip + len(page), next_top)
        return json_response(body)

    def _next_link(self, request: ApiRequest, entity: EntityDef, skip: int, top: int | None) -> str:
        """``...&$skip=N`` (plus ``$top`` = what is left of the client's ``$top``)."""
        kept = {k: v for k, v in request.query.items() if k not in ("$skip", "$top")}
        kept["$skip"] = str(skip)
        if top is not None:
            kept["$top"] = str(top)
        query = "&".join(f"{k}={quote(v, safe=_LINK_SAFE)}" for k, v in kept.items())
        return f"{request.service_root}{entity.entity_set}?{query}"

    def _check_expand(self, entity: EntityDef, expand: tuple[Expand, ...]) -> None:
        for item in expand:
            if item.name not in entity.navigations:
                raise odata_error(
                    f"Could not find a property named '{item.name}' on type '{entity.qualified_type}'."
                )
            if "$expand" in item.options:
                raise odata_error(
                    "The request includes a $expand path which is too deep. The maximum depth allowed is 1."
                )

    def _render(
        self, entity: EntityDef, record: StoredRecord, select: Any, expand: tuple[Expand, ...]
    ) -> dict[str, Any]:
        body = record_json(entity, record, select, self.tables.view(entity, record))
        for item in expand:
            nav = entity.navigations[item.name]
            target = self.tables.registry.require(nav.target)
            related = [
                r
                for r in self.tables.store.records(target.name)
                if all(
                    key_part(r.values.get(remote)) == key_part(record.values.get(local))
                    for local, remote in nav.pairs
                )
            ]
            nested = parse_select(
                item.options.get("$select"), target.fields.get, target.qualified_type
            )
            rendered = [
                record_json(target, r, nested, self.tables.view(target, r)) for r in related
            ]
            body[item.name] = rendered if nav.many else (rendered[0] if rendered else None)
        return body

    def _resolver(self, entity: EntityDef) -> Callable[[StoredRecord, str], Any]:
        def resolve(record: StoredRecord, name: str) -> Any:
            return self.tables.value_of(entity, record, name)

        return resolve

    def _find_visible(
        self, request: ApiRequest, entity: EntityDef, key: str
    ) -> StoredRecord | None:
        key_values = self.tables.parse_address(entity, key)
        record = self.tables.get(entity, key_values)
        visible = (
            _cross_company(request) or key_part(key_values["dataAreaId"]) == self.default_company
        )
        return record if visible else None

    def _visible_record(self, request: ApiRequest, entity: EntityDef, key: str) -> StoredRecord:
        record = self._find_visible(request, entity, key)
        if record is None:
            raise _not_found(entity.entity_set)
        return record

    def _record(self, request: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
        record = self._find_visible(request, entity, key)
        if record is None:
            if request.method == "GET":
                raise _not_found(entity.entity_set)
            raise odata_error(NOT_FOUND_FOR_UPDATE, 404)
        if request.method == "GET":
            options = self._options(request, entity)
            self._check_expand(entity, options.expand)
            body = {
                "@odata.context": context_url(request.service_root, entity, options.select, True)
            }
            body.update(self._render(entity, record, options.select, options.expand))
            return json_response(body, headers={"ETag": fno_etag(record.version)})
        self._check_etag(request, record)
        principal = request.principal.client_id
        if request.method in ("PATCH", "PUT"):
            self.tables.update(
                entity, record, request.json_object(), principal, replace=request.method == "PUT"
            )
            return empty_response()
        if request.method == "DELETE":
            self.tables.delete(entity, record, principal)
            return empty_response()
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )

    def _check_etag(self, request: ApiRequest, record: StoredRecord) -> None:
        expected = request.headers.get("If-Match", "").strip()
        if expected and expected != "*" and expected != fno_etag(record.version):
            raise odata_error(
                "The record has been updated by another user since it was read (ETag mismatch).",
                412,
            )

    def _created(self, request: ApiRequest, entity: EntityDef, record: StoredRecord) -> ApiResponse:
        body = {"@odata.context": context_url(request.service_root, entity, None, True)}
        body.update(record_json(entity, record, None, self.tables.view(entity, record)))
        headers = {
            "Location": f"{request.service_root}{entity.entity_set}({key_label(entity, record.values)})",
            "ETag": fno_etag(record.version),
        }
        return json_response(body, 201, headers)

    def _batch(self, request: ApiRequest) -> ApiResponse:
        if request.method != "POST":
            raise odata_error("The requested resource does not support http method 'GET'.", 405)
        items = parse_batch(request.headers.get("Content-Type", ""), request.body)
        outcome = run_batch(
            items,
            lambda operation, refs: self._run_part(request, operation, refs),
            self.tables.store.transaction,
            stop_on_error=False,
            max_operations=MAX_BATCH_OPERATIONS,
        )
        body, content_type = render_batch(outcome)
        operations = sum(len(i.operations) if isinstance(i, ChangeSet) else 1 for i in items)
        return ApiResponse(
            200,
            raw=body,
            content_type=content_type,
            headers=dict(ODATA_HEADERS),
            cost=max(1, operations),
        )

    def _run_part(
        self, parent: ApiRequest, operation: BatchOperation, refs: Mapping[str, str]
    ) -> ApiResponse:
        parts = urlsplit(operation.url)
        path = parts.path
        marker = path.find("/data/")
        path = path[marker + len("/data/") :] if marker >= 0 else path.lstrip("/")
        if path.startswith("$batch"):
            return error_response(odata_error("Batch requests can't be nested."))
        part = ApiRequest(
            method=operation.method,
            path=path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=CIMultiDict(operation.headers),
            body=operation.body,
            principal=parent.principal,
            service_root=parent.service_root,
            content_ids=refs,
        )
        return self.dispatch(part)


def _key_lookups(node: Node | None, keys: Sequence[str]) -> list[dict[str, str]] | None:
    """The key values each ``or`` branch of ``node`` pins with ``eq`` on text literals
    (every key, nothing else, no wildcard), or ``None`` when the filter is anything else."""
    if isinstance(node, Binary) and node.op == "or":
        left, right = _key_lookups(node.left, keys), _key_lookups(node.right, keys)
        return None if left is None or right is None else left + right
    pinned: dict[str, str] = {}
    if node is None or not _pins(node, pinned) or set(pinned) != set(keys):
        return None
    return [pinned]


def _pins(node: Node, pinned: dict[str, str]) -> bool:
    if not isinstance(node, Binary):
        return False
    if node.op == "and":
        return _pins(node.left, pinned) and _pins(node.right, pinned)
    if node.op != "eq" or not isinstance(node.left, Prop) or not isinstance(node.right, Literal):
        return False
    value = node.right.value
    if not isinstance(value, str) or "*" in value or node.left.name in pinned:
        return False
    pinned[node.left.name] = value
    return True
