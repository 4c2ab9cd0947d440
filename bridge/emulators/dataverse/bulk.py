"""Dataverse bulk operation messages (dynamics-apis.md A.11).

``POST /<entityset>/Microsoft.Dynamics.CRM.CreateMultiple`` (and ``UpdateMultiple``,
``UpsertMultiple``) with ``{"Targets": [...]}``:

- Every item carries ``@odata.type`` = ``Microsoft.Dynamics.CRM.<logical name>`` of the
  URL's table (400 otherwise).
- CreateMultiple answers 200 ``{"@odata.context": ...CreateMultipleResponse, "Ids": [...]}``
  in ``Targets`` order; UpdateMultiple and UpsertMultiple answer 204 without
  ``OData-EntityId``.
- UpdateMultiple items name their row by the primary id column; alternate keys (``@odata.id``)
  are not supported (400); a later item with the same id as an earlier one is ignored.
- UpsertMultiple items name their row by ``@odata.id`` (``<set>(<key>)``, alternate or primary
  key) or the primary id column; two items naming one row are a 400. Semantics per item are
  those of a keyed PATCH (create when missing, key columns in the body ignored on update).
- Standard tables: one transaction, so any failing item rolls the whole request back and its
  error is the answer. Each item raises the ordinary ``Create``/``Update`` event, so steps and
  webhooks registered on those messages fire once per record with a single ``Target``.
- Support per table is the ``sdkmessagefilters`` rows of ``CreateMultiple``/``UpdateMultiple``
  (UpsertMultiple needs both; it has no filter rows of its own). An unsupported table is a 400
  (decision: the real answer is unconfirmed). ``DeleteMultiple`` is for elastic tables only, and
  the emulator has none: 400 "DeleteMultiple has not yet been implemented.".
- No fixed record cap (the body size cap of the emulator applies, 413).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, empty_response, json_response
from bridge.emulators.dataverse.records import with_key
from bridge.emulators.dataverse.seeds import message_filter_id
from bridge.emulators.dataverse.tables import (
    INVALID_ARGUMENT_CODE,
    NOT_FOUND_CODE,
    DataverseTables,
    WriteSet,
    normalized,
)
from bridge.emulators.dataverse.webhook_entities import SDK_MESSAGE_FILTER
from bridge.emulators.dataverse.writes import Address, DataverseInputs
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.values import is_guid

NAMESPACE = "Microsoft.Dynamics.CRM."
CREATE_MULTIPLE = "CreateMultiple"
UPDATE_MULTIPLE = "UpdateMultiple"
UPSERT_MULTIPLE = "UpsertMultiple"
DELETE_MULTIPLE = "DeleteMultiple"
BULK_MESSAGES = (CREATE_MULTIPLE, UPDATE_MULTIPLE, UPSERT_MULTIPLE, DELETE_MULTIPLE)
FILTERED_MESSAGES = (CREATE_MULTIPLE, UPDATE_MULTIPLE)
"""The bulk messages with ``sdkmessagefilters`` rows per supporting table."""


def bulk_message(segment: str) -> str | None:
    """The bulk message a bound-action segment names (``Microsoft.Dynamics.CRM.X``), if any."""
    name = segment.removeprefix(NAMESPACE)
    return name if name != segment and name in BULK_MESSAGES else None


def _invalid(message: str) -> ApiError:
    return bad_request(message, code=INVALID_ARGUMENT_CODE)


class DataverseBulk:
    """Handlers of the bulk messages of the Sales tables."""

    def __init__(self, tables: DataverseTables) -> None:
        self.tables = tables

    def supports(self, entity: EntityDef, message: str) -> bool:
        """Whether ``entity`` has ``message``, as its ``sdkmessagefilters`` say."""
        needed = FILTERED_MESSAGES if message == UPSERT_MULTIPLE else (message,)
        filters = self.tables.entity(SDK_MESSAGE_FILTER)
        return all(
            self.tables.get(filters, message_filter_id(entity.name, name)) is not None
            for name in needed
        )

    def handle(self, request: ApiRequest, entity: EntityDef, message: str) -> ApiResponse:
        """``POST /<entityset>/Microsoft.Dynamics.CRM.<message>``."""
        if request.method != "POST":
            raise ApiError(
                405,
                f"The requested resource does not support http method '{request.method}'.",
                code="0x80060888",
            )
        if message == DELETE_MULTIPLE:
            raise _invalid("DeleteMultiple has not yet been implemented.")
        if not self.supports(entity, message):
            raise _invalid(
                f"The '{message}' message is not supported on the '{entity.name}' table."
            )
        targets = self._targets(request, entity)
        inputs = DataverseInputs(self.tables, request.service_root, request.content_ids)
        with self.tables.store.transaction():
            if message == CREATE_MULTIPLE:
                ids = [self._create(inputs, entity, item, request) for item in targets]
            elif message == UPDATE_MULTIPLE:
                self._update_all(inputs, entity, targets, request)
            else:
                self._upsert_all(inputs, entity, targets, request)
        if message != CREATE_MULTIPLE:
            return empty_response(204)
        context = f"{request.service_root}$metadata#{NAMESPACE}CreateMultipleResponse"
        return json_response({"@odata.context": context, "Ids": ids})

    def _targets(self, request: ApiRequest, entity: EntityDef) -> list[dict[str, Any]]:
        targets = request.json_object().get("Targets")
        if not isinstance(targets, list) or not targets:
            raise _invalid("The 'Targets' parameter must be a non-empty collection of records.")
        wanted = f"{NAMESPACE}{entity.name}"
        for index, item in enumerate(targets):
            if not isinstance(item, dict):
                raise _invalid(f"Targets[{index}] is not a record.")
            odata_type = item.get("@odata.type")
            if not isinstance(odata_type, str):
                raise _invalid(f"Targets[{index}] has no '@odata.type' annotation.")
            if odata_type.removeprefix("#") != wanted:
                raise _invalid(
                    f"Targets[{index}] is of type '{odata_type}', but every target must be "
                    f"a '{wanted}' record."
                )
        return targets

    def _create(
        self,
        inputs: DataverseInputs,
        entity: EntityDef,
        item: Mapping[str, Any],
        request: ApiRequest,
    ) -> str:
        writes = inputs.writes(entity, item)
        record = self.tables.create(entity, writes, request.principal.client_id)
        return self.tables.record_id(record)

    def _update_all(
        self,
        inputs: DataverseInputs,
        entity: EntityDef,
        targets: list[dict[str, Any]],
        request: ApiRequest,
    ) -> None:
        seen: set[str] = set()
        for index, item in enumerate(targets):
            if "@odata.id" in item:
                raise _invalid("UpdateMultiple with alternate keys is not supported.")
            record_id = item.get(entity.primary_id)
            if not isinstance(record_id, str) or not is_guid(record_id):
                raise _invalid(f"Targets[{index}] has no valid '{entity.primary_id}'.")
            if record_id.lower() in seen:
                continue  # the first item per key applies, the rest are ignored (A.11)
            seen.add(record_id.lower())
            existing = self.tables.get(entity, record_id)
            if existing is None:
                raise ApiError(
                    404,
                    f"{entity.name} With Ids = {record_id.lower()} Do Not Exist",
                    code=NOT_FOUND_CODE,
                )
            writes = inputs.writes(entity, item)
            self.tables.update(entity, existing, writes, request.principal.client_id)

    def _upsert_all(
        self,
        inputs: DataverseInputs,
        entity: EntityDef,
        targets: list[dict[str, Any]],
        request: ApiRequest,
    ) -> None:
        addresses = [
            self._address(inputs, entity, index, item) for index, item in enumerate(targets)
        ]
        seen: set[Hashable] = set()
        for address in addresses:
            identity = _identity(address)
            if identity in seen:
                raise _invalid(
                    "The Targets collection contains more than one record with the same key."
                )
            seen.add(identity)
        principal = request.principal.client_id
        for address, item in zip(addresses, targets, strict=True):
            existing = inputs.find(address)
            writes = inputs.writes(entity, item)
            if existing is None:
                self.tables.create(entity, with_key(entity, address, writes), principal)
                continue
            if address.key_values is not None:
                kept = {k: v for k, v in writes.values.items() if k not in address.key_values}
                writes = WriteSet(kept, frozenset(kept))
            self.tables.update(entity, existing, writes, principal)

    def _address(
        self, inputs: DataverseInputs, entity: EntityDef, index: int, item: Mapping[str, Any]
    ) -> Address:
        reference = item.get("@odata.id")
        if isinstance(reference, str):
            referenced, address = inputs.parse_reference(reference)
            if referenced.name != entity.name:
                raise _invalid(f"Targets[{index}] '@odata.id' does not name a '{entity.name}' row.")
            return address
        record_id = item.get(entity.primary_id)
        if isinstance(record_id, str) and is_guid(record_id):
            return Address(entity, record_id=record_id.lower())
        raise _invalid(
            f"Targets[{index}] needs '@odata.id' (the row's key) or '{entity.primary_id}'."
        )


def _identity(address: Address) -> Hashable:
    if address.record_id is not None:
        return address.record_id.lower()
    assert address.key_values is not None
    return tuple(sorted((k, normalized(v)) for k, v in address.key_values.items()))
