"""Dataverse single-record operations over HTTP semantics (dynamics-apis.md A.4).

- ``POST /set`` creates: 204 + ``OData-EntityId`` (201 + body with
  ``Prefer: return=representation``).
- ``PATCH /set(<key>)`` upserts by id or alternate key: 204 either way (201/200 with
  representation). ``If-Match: *`` = update only (404 if missing); ``If-Match: W/"n"``
  stale = 412 ``0x80060882``; ``If-None-Match: *`` = create only (412 if it exists). With an
  alternate-key URL, key columns in the body are ignored on update and copied from the URL on
  create.
- ``DELETE`` = 204 (404 if missing, 412 on a stale ETag); ``GET`` with
  ``If-None-Match: W/"n"`` unchanged = 304.
- Property paths: ``GET/PUT/DELETE /set(<key>)/<attribute>`` and ``PUT/DELETE
  /set(<key>)/<nav>/$ref``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, empty_response, json_response
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.dataverse.json import DataverseRenderer, etag, json_value
from bridge.emulators.dataverse.tables import (
    CONCURRENCY_CODE,
    DUPLICATE_CODE,
    DataverseTables,
    WriteSet,
)
from bridge.emulators.dataverse.writes import Address, DataverseInputs
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.keys import Segment
from bridge.emulators.odata.query import parse_expand, parse_select

ETAG_MISMATCH = "The version of the existing record doesn't match the RowVersion property provided."
ALREADY_EXISTS = "A record with matching key values already exists."


def _check_etag(request: ApiRequest, record: StoredRecord) -> None:
    expected = request.headers.get("If-Match")
    if expected and expected.strip() != "*" and expected.strip() != etag(record.version):
        raise ApiError(412, ETAG_MISMATCH, code=CONCURRENCY_CODE)


def with_key(entity: EntityDef, address: Address, writes: WriteSet) -> WriteSet:
    """The values of an upsert that creates: the URL's key copied in (body values win for
    alternate-key columns; the primary id always comes from the URL)."""
    if address.key_values is None:
        values = {**writes.values, entity.primary_id: address.record_id}
    else:
        values = {**address.key_values, **writes.values}
    return WriteSet(values, writes.written | frozenset(values))


class DataverseRecords:
    """Handlers for one record at a time."""

    def __init__(self, tables: DataverseTables) -> None:
        self.tables = tables

    def create(self, request: ApiRequest, entity: EntityDef) -> ApiResponse:
        """``POST /<entityset>``."""
        writes = self._inputs(request).writes(entity, request.json_object())
        record = self.tables.create(entity, writes, request.principal.client_id)
        return self._written(request, entity, record, 201)

    def read(self, request: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
        """``GET /<entityset>(<key>)``."""
        record = self._existing(request, entity, key)
        renderer = self._renderer(request)
        select = parse_select(request.query.get("$select"), entity.web_field, entity.qualified_type)
        expand = parse_expand(request.query.get("$expand"))
        unchanged = request.headers.get("If-None-Match", "").strip() == etag(record.version)
        if unchanged and not expand and not request.prefer.include_annotations:
            return empty_response(304, {"ETag": etag(record.version)})
        body = {"@odata.context": renderer.context(entity, select, "/$entity")}
        body.update(renderer.record(entity, record, select, expand))
        return json_response(body, headers={"ETag": etag(record.version)})

    def upsert(self, request: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
        """``PATCH /<entityset>(<key>)``: update, or create when missing."""
        inputs = self._inputs(request)
        address = inputs.address(entity, key)
        existing = inputs.find(address)
        writes = inputs.writes(entity, request.json_object())
        principal = request.principal.client_id
        if existing is None:
            if request.headers.get("If-Match"):
                raise address.describe_missing()
            record = self.tables.create(entity, with_key(entity, address, writes), principal)
            return self._written(request, entity, record, 201)
        if request.headers.get("If-None-Match", "").strip() == "*":
            raise ApiError(412, ALREADY_EXISTS, code=DUPLICATE_CODE)
        _check_etag(request, existing)
        if address.key_values is not None:
            kept = {k: v for k, v in writes.values.items() if k not in address.key_values}
            writes = WriteSet(kept, frozenset(kept))
        record = self.tables.update(entity, existing, writes, principal)
        return self._written(request, entity, record, 200)

    def delete(self, request: ApiRequest, entity: EntityDef, key: str) -> ApiResponse:
        """``DELETE /<entityset>(<key>)``."""
        record = self._existing(request, entity, key)
        _check_etag(request, record)
        self.tables.delete(entity, record, request.principal.client_id)
        return empty_response()

    def property(
        self, request: ApiRequest, entity: EntityDef, key: str, rest: Sequence[Segment]
    ) -> ApiResponse:
        """``/<entityset>(<key>)/<attribute>`` and ``.../<nav>/$ref``."""
        record = self._existing(request, entity, key)
        if len(rest) == 2 and rest[1].name == "$ref":
            return self._reference(request, entity, record, rest[0].name)
        field = entity.field(rest[0].name) if len(rest) == 1 else None
        if field is None or field.is_lookup or not field.readable:
            raise bad_request(f"Resource not found for the segment '{rest[-1].name}'.")
        if request.method == "GET":
            value = self.tables.value_of(entity, record, field.name)
            if value is None:
                return empty_response()
            context = f"{request.service_root}$metadata#{entity.entity_set}({self.tables.record_id(record)})/{field.name}"
            return json_response({"@odata.context": context, "value": json_value(value)})
        if request.method not in ("PUT", "DELETE"):
            raise ApiError(
                405, f"The requested resource does not support http method '{request.method}'."
            )
        body: dict[str, Any] = {
            field.name: request.json_object().get("value") if request.method == "PUT" else None
        }
        writes = self._inputs(request).writes(entity, body)
        self.tables.update(entity, record, writes, request.principal.client_id)
        return empty_response()

    def _reference(
        self, request: ApiRequest, entity: EntityDef, record: StoredRecord, nav: str
    ) -> ApiResponse:
        if request.method not in ("PUT", "DELETE"):
            raise ApiError(
                405, f"The requested resource does not support http method '{request.method}'."
            )
        target = request.json_object().get("@odata.id") if request.method == "PUT" else None
        writes = self._inputs(request).writes(entity, {f"{nav}@odata.bind": target})
        self.tables.update(entity, record, writes, request.principal.client_id)
        return empty_response()

    def _existing(self, request: ApiRequest, entity: EntityDef, key: str) -> StoredRecord:
        inputs = self._inputs(request)
        address = inputs.address(entity, key)
        record = inputs.find(address)
        if record is None:
            raise address.describe_missing()
        return record

    def _written(
        self, request: ApiRequest, entity: EntityDef, record: StoredRecord, status: int
    ) -> ApiResponse:
        renderer = self._renderer(request)
        headers = {
            "OData-EntityId": renderer.entity_url(entity, self.tables.record_id(record)),
            "ETag": etag(record.version),
        }
        if not request.prefer.return_representation:
            return empty_response(204, headers)
        select = parse_select(request.query.get("$select"), entity.web_field, entity.qualified_type)
        body = {"@odata.context": renderer.context(entity, select, "/$entity")}
        body.update(renderer.record(entity, record, select))
        headers["Preference-Applied"] = "return=representation"
        return json_response(body, status, headers)

    def _inputs(self, request: ApiRequest) -> DataverseInputs:
        return DataverseInputs(self.tables, request.service_root, request.content_ids)

    def _renderer(self, request: ApiRequest) -> DataverseRenderer:
        return DataverseRenderer(self.tables, request.service_root, request.prefer)
