"""Routing of Dataverse Web API requests (``/api/data/v9.x/...``) to their handlers.

:meth:`DataverseApi.dispatch` never raises for API errors: every
:class:`~bridge.emulators.common.errors.ApiError` becomes the Dataverse error body with its status,
so ``$batch`` parts and plain requests are answered the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict

from bridge.emulators.common.errors import ApiError, dataverse_body
from bridge.emulators.common.protocol import ODATA_HEADERS, ApiRequest, ApiResponse, json_response
from bridge.emulators.dataverse.bulk import DataverseBulk, bulk_message
from bridge.emulators.dataverse.collections import DataverseCollections, TableSource
from bridge.emulators.dataverse.execution_context import Organization
from bridge.emulators.dataverse.metadata import DataverseMetadata
from bridge.emulators.dataverse.records import DataverseRecords
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.dataverse.virtual_tables import VirtualSource, VirtualTables, read_only
from bridge.emulators.odata.batch import BatchOperation, parse_batch, render_batch, run_batch
from bridge.emulators.odata.csdl import csdl
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.keys import Segment, split_path

MAX_BATCH_OPERATIONS = 1000


def error_response(error: ApiError) -> ApiResponse:
    """A Dataverse error as a response."""
    return json_response(dataverse_body(error), error.status, error.headers)


def _not_found(segment: str) -> ApiError:
    return ApiError(404, f"Resource not found for the segment '{segment}'.", code="0x80060888")


def _not_allowed(method: str) -> ApiError:
    return ApiError(
        405, f"The requested resource does not support http method '{method}'.", code="0x80060888"
    )


class DataverseApi:
    """The Web API of one Dataverse emulator."""

    def __init__(
        self, tables: DataverseTables, organization: Organization, max_page_size: int
    ) -> None:
        self.tables = tables
        self.organization = organization
        self.records = DataverseRecords(tables)
        self.bulk = DataverseBulk(tables)
        self.collections = DataverseCollections(max_page_size)
        self.metadata = DataverseMetadata(tables.registry)
        self.virtual: VirtualTables | None = None

    def connect(self, virtual: VirtualTables) -> None:
        """Serve the finance and operations virtual tables too."""
        self.virtual = virtual
        self.metadata = DataverseMetadata(virtual.registry(self.tables.registry))

    def dispatch(self, request: ApiRequest) -> ApiResponse:
        """Answer one request."""
        try:
            return self._route(request)
        except ApiError as error:
            return error_response(error)

    def _route(self, request: ApiRequest) -> ApiResponse:
        segments = split_path(request.path)
        if not segments:
            return self._service_document(request)
        head = segments[0]
        if head.name == "$batch":
            return self._batch(request)
        if head.name in ("WhoAmI", "$metadata") or head.name == "EntityDefinitions":
            return self._platform(request, segments)
        entity = self.tables.registry.by_set(head.name)
        if entity is None:
            source = self.virtual.by_set(head.name) if self.virtual else None
            if source is None:
                raise _not_found(head.name)
            return self._virtual(request, source, head.key, segments[1:])
        if head.key is None:
            return self._collection(request, entity, segments[1:])
        return self._record(request, entity, head.key, segments[1:])

    def _platform(self, request: ApiRequest, segments: list[Segment]) -> ApiResponse:
        name = segments[0].name
        if name == "EntityDefinitions":
            return self.metadata.handle(request, segments)
        if request.method != "GET":
            raise _not_allowed(request.method)
        if name == "$metadata":
            actions = self.virtual.csdl_actions() if self.virtual else []
            document = csdl(self.metadata.registry, "Microsoft.Dynamics.CRM", "System", actions)
            return ApiResponse(
                200, raw=document, content_type="application/xml", headers=dict(ODATA_HEADERS)
            )
        body = {
            "@odata.context": f"{request.service_root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": self.organization.business_unit_id,
            "UserId": request.principal.systemuser_id,
            "OrganizationId": self.organization.organization_id,
        }
        return json_response(body)

    def _collection(
        self, request: ApiRequest, entity: EntityDef, rest: list[Segment]
    ) -> ApiResponse:
        if rest:
            if len(rest) == 1 and rest[0].name == "$count" and request.method == "GET":
                return self.collections.count(request, TableSource(self.tables, entity))
            message = bulk_message(rest[0].name) if len(rest) == 1 else None
            if message is not None and rest[0].key is None:
                return self.bulk.handle(request, entity, message)
            raise _not_found(rest[0].name)
        if request.method == "GET":
            return self.collections.read(request, TableSource(self.tables, entity))
        if request.method == "POST":
            return self.records.create(request, entity)
        raise _not_allowed(request.method)

    def _virtual(
        self, request: ApiRequest, source: VirtualSource, key: str | None, rest: list[Segment]
    ) -> ApiResponse:
        assert self.virtual is not None
        if rest:
            if key is None and [s.name for s in rest] == ["$count"] and request.method == "GET":
                return self.collections.count(request, source)
            raise _not_found(rest[0].name)
        if key is not None:
            return self.virtual.record(request, source, key)
        if request.method == "GET":
            return self.collections.read(request, source)
        raise read_only()

    def _record(
        self, request: ApiRequest, entity: EntityDef, key: str, rest: list[Segment]
    ) -> ApiResponse:
        if rest:
            return self.records.property(request, entity, key, rest)
        handlers = {
            "GET": self.records.read,
            "PATCH": self.records.upsert,
            "DELETE": self.records.delete,
        }
        handler = handlers.get(request.method)
        if handler is None:
            raise _not_allowed(request.method)
        return handler(request, entity, key)

    def _service_document(self, request: ApiRequest) -> ApiResponse:
        value = [
            {"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set}
            for e in self.metadata.registry
        ]
        return json_response({"@odata.context": f"{request.service_root}$metadata", "value": value})

    def _batch(self, request: ApiRequest) -> ApiResponse:
        if request.method != "POST":
            raise _not_allowed(request.method)
        items = parse_batch(request.headers.get("Content-Type", ""), request.body)
        outcome = run_batch(
            items,
            lambda operation, refs: self._run_part(request, operation, refs),
            self.tables.store.transaction,
            stop_on_error=not request.prefer.continue_on_error,
            max_operations=MAX_BATCH_OPERATIONS,
        )
        body, content_type = render_batch(outcome)
        headers = dict(ODATA_HEADERS)
        if request.prefer.continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return ApiResponse(outcome.status, raw=body, content_type=content_type, headers=headers)

    def _run_part(
        self, parent: ApiRequest, operation: BatchOperation, refs: Mapping[str, str]
    ) -> ApiResponse:
        try:
            part = _part_request(parent, operation, refs)
        except ApiError as error:
            return error_response(error)
        return self.dispatch(part)


def _part_request(
    parent: ApiRequest, operation: BatchOperation, refs: Mapping[str, str]
) -> ApiRequest:
    parts = urlsplit(operation.url)
    path = parts.path
    marker = path.find("/api/data/")
    if marker >= 0:
        path = path[marker + len("/api/data/") :].partition("/")[2]
    if path.startswith("$batch"):
        raise ApiError(400, "Batch requests can't be nested.", code="0x80060888")
    headers: CIMultiDict[str] = CIMultiDict(operation.headers)
    return ApiRequest(
        method=operation.method,
        path=path,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=operation.body,
        principal=parent.principal,
        service_root=parent.service_root,
        content_ids=refs,
    )
