"""Finance and operations virtual tables served by the Dataverse emulator, read live from
the F&O emulator's store (the Power Platform integration of dynamics-apis.md B.4).

:class:`VirtualTables` holds one :class:`~bridge.emulators.fno.virtual_entities.VirtualTable`
per F&O entity and answers the Web API requests on them:

- ``GET /<set>`` through the shared collection code (:class:`VirtualSource` is its
  :class:`~bridge.emulators.dataverse.collections.RowSource`): ``$select``, ``$filter``,
  ``$orderby``, ``$top``, ``$count``, paging, and Dataverse change tracking over the F&O
  change log (row-version change tracking: the token's version is the F&O
  ``SysRowVersion``, its lifetime ``fno_change_tracking_retention_seconds``, 10 days).
- ``GET /<set>(<guid>)`` (``$select``, ``If-None-Match`` 304).
- Writes are not emulated: POST/PATCH/DELETE answer 405 (write through the F&O OData API).

Rows are the F&O records as read now (computed fields recomputed), in ``RecId`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, empty_response, json_response
from bridge.emulators.common.store import ChangeEntry, RecordStore, StoredRecord
from bridge.emulators.dataverse.json import FORMATTED, etag, formatted_value, json_value
from bridge.emulators.fno.tables import FnoTables
from bridge.emulators.fno.virtual_entities import (
    DATA_EVENT_MESSAGES,
    OptionSets,
    VirtualTable,
    virtual_tables,
)
from bridge.emulators.odata.entities import EntityDef, EntityRegistry
from bridge.emulators.odata.keys import parse_key
from bridge.emulators.odata.query import Expand, parse_select
from bridge.emulators.odata.values import is_guid

NOT_FOUND_CODE = "0x80040217"
READ_ONLY_MESSAGE = (
    "The emulator serves finance and operations virtual tables read-only; "
    "write through the finance and operations OData service."
)


@dataclass(frozen=True)
class VirtualSource:
    """A virtual table as a row source: F&O records converted to virtual rows."""

    table: VirtualTable
    tables: FnoTables

    @property
    def entity(self) -> EntityDef:
        """The virtual table's definition."""
        return self.table.entity

    @property
    def store(self) -> RecordStore:
        """The F&O store: its versions are ``SysRowVersion``, its log the tracking log."""
        return self.tables.store

    @property
    def stored_as(self) -> str:
        """The F&O entity set the records belong to."""
        return self.table.fno.name

    def rows(self) -> list[StoredRecord]:
        """Every F&O record of the entity now."""
        return self.tables.store.records(self.stored_as)

    def row(self, record: StoredRecord) -> dict[str, Any]:
        """Every column of a record as read now."""
        return self.table.row(record, self.tables.view(self.table.fno, record))

    def resolve(self, record: StoredRecord, web_name: str) -> Any:
        """One column of a record (for ``$filter``/``$orderby``)."""
        fno = self.table.fno
        return self.table.cell(
            record, lambda name: self.tables.value_of(fno, record, name), web_name
        )

    def render(
        self,
        request: ApiRequest,
        record: StoredRecord,
        select: Sequence[str] | None,
        expand: Sequence[Expand] = (),
    ) -> dict[str, Any]:
        """A record as Web API JSON (annotations when preferred)."""
        if expand:
            raise bad_request(
                f"Could not find a property named '{expand[0].name}' on type "
                f"'{self.entity.qualified_type}'."
            )
        row = self.row(record)
        body: dict[str, Any] = {"@odata.etag": etag(record.version)}
        for field in self.entity.fields.values():
            if (
                select is not None
                and field.name not in select
                and field.name != self.table.primary_id
            ):
                continue
            value = row.get(field.name)
            body[field.name] = json_value(value)
            text = (
                formatted_value(field, value)
                if value is not None and request.prefer.wants_annotation(FORMATTED)
                else None
            )
            if text is not None:
                body[f"{field.name}@{FORMATTED}"] = text
        return body

    def record_id(self, entry: ChangeEntry) -> str:
        """The GUID of the record a change-log row is about (entity id + RecId)."""
        return self.table.record_id(entry.row_id)

    def find(self, guid: str) -> StoredRecord | None:
        """The record with this primary key, if it exists."""
        rec_id = self.table.rec_id(guid)
        if rec_id is None:
            return None
        return next((r for r in self.rows() if r.row_id == rec_id), None)


class VirtualTables:
    """The F&O virtual tables of one Dataverse organization."""

    def __init__(self, tables: FnoTables) -> None:
        self.fno = tables
        self.options = OptionSets()
        self.tables = virtual_tables(tables.registry, self.options)
        self._by_set = {t.entity.entity_set: t for t in self.tables}
        self._by_fno = {t.fno.name: t for t in self.tables}

    @property
    def entities(self) -> list[EntityDef]:
        """The virtual tables' definitions."""
        return [table.entity for table in self.tables]

    def registry(self, base: EntityRegistry) -> EntityRegistry:
        """``base`` plus the virtual tables (for metadata)."""
        return EntityRegistry([*base, *self.entities])

    def csdl_actions(self) -> list[str]:
        """The ``OnExternal*`` actions bound to each virtual table's entity set."""
        return [
            f'<Action Name="{message}" IsBound="true">'
            f'<Parameter Name="entityset" Type="Collection(Microsoft.Dynamics.CRM.{entity.name})" '
            'Nullable="false" /><Parameter Name="Target" Type="Microsoft.Dynamics.CRM.crmbaseentity" '
            'Nullable="false" /></Action>'
            for entity in self.entities
            for message in DATA_EVENT_MESSAGES
        ]

    def by_set(self, entity_set: str) -> VirtualSource | None:
        """The virtual table exposed as ``entity_set``."""
        table = self._by_set.get(entity_set)
        return VirtualSource(table, self.fno) if table else None

    def for_fno(self, fno_entity: str) -> VirtualSource | None:
        """The virtual table of an F&O entity (by entity set name)."""
        table = self._by_fno.get(fno_entity)
        return VirtualSource(table, self.fno) if table else None

    def record(self, request: ApiRequest, source: VirtualSource, key: str) -> ApiResponse:
        """``GET /<set>(<guid>)``; writes answer 405."""
        if request.method != "GET":
            raise read_only()
        guid = _guid(source.entity, key)
        record = source.find(guid)
        if record is None:
            raise ApiError(
                404, f"{source.entity.name} With Id = {guid} Does Not Exist", code=NOT_FOUND_CODE
            )
        entity = source.entity
        select = parse_select(request.query.get("$select"), entity.web_field, entity.qualified_type)
        tag = etag(record.version)
        if request.headers.get("If-None-Match", "").strip() == tag and not (
            request.prefer.include_annotations
        ):
            return empty_response(304, {"ETag": tag})
        selected = f"({','.join(select)})" if select else ""
        body: dict[str, Any] = {
            "@odata.context": f"{request.service_root}$metadata#{entity.entity_set}{selected}/$entity"
        }
        body.update(source.render(request, record, select))
        return json_response(body, headers={"ETag": tag})


def read_only() -> ApiError:
    """405 for a write to a virtual table (not emulated)."""
    return ApiError(405, READ_ONLY_MESSAGE, code="0x80060888")


def _guid(entity: EntityDef, key: str) -> str:
    predicate = parse_key(key)
    value = predicate.single if predicate.is_single else predicate.named.get(entity.primary_id)
    if not isinstance(value, str) or not is_guid(value):
        raise bad_request(f"The key value '{key}' of '{entity.entity_set}' is not a valid GUID.")
    return value.lower()
