"""F&O data entities as Dataverse virtual tables (``mserp_*``): names, keys, columns, values.

Pure definitions and conversions, no I/O. Per FOD power-platform/entity-modeling.md and the
examples in the Human Resources virtual-entity articles (see docs/emulators.md for sources):

- Table: logical name ``mserp_<physical entity name, lower-case>`` (e.g.
  ``mserp_salesorderheadercdsentity``), entity set the logical name pluralised
  (``mserp_salesorderheadercdsentities``).
- Primary key ``mserp_<entity>id``: a GUID of the data entity id (first 4 bytes, the first
  group) and the root data source's ``RecId`` (last 8 bytes, little-endian), e.g.
  ``00003a07-0000-0000-0000-005001000000`` for RecId 5637144576 of data entity 0x3a07.
- Primary field ``mserp_primaryfield``: the entity key values except ``dataAreaId``, as
  text (dates ``M/d/yyyy``) joined by ``" | "``, at most 255 characters.
- Columns ``mserp_<field, lower-case>``. Types: Int32 → Integer, Int64 and Decimal →
  Decimal, DateTimeOffset → DateTime (the empty date 1900-01-01 → null), String → String
  (``""`` stays ``""``), enums → Picklist on one global option set per enum type whose
  values are 200000000 + the symbol's position (symbols the emulator does not know are
  numbered as they appear: the values are not stable, match on the label = symbol).
- ``versionnumber``: the record's ``SysRowVersion`` (the F&O store's version of the root
  row), so F&O changes can be ordered; it is the ETag too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bridge.emulators.common.store import StoredRecord
from bridge.emulators.odata.entities import EntityDef, EntityRegistry, FieldDef, FieldKind, System

DATA_EVENT_MESSAGES = ("OnExternalCreated", "OnExternalUpdated", "OnExternalDeleted")
OPTION_BASE = 200_000_000
PRIMARY_FIELD = "mserp_primaryfield"
VERSION_NUMBER = "versionnumber"
MAX_PRIMARY_FIELD = 255

DATA_ENTITY_IDS: Mapping[str, int] = {
    "CustomersV3": 0x3A01,
    "ContactPersons": 0x3A02,
    "CDSContactPersonsV2": 0x3A03,
    "CDSReleasedDistinctProducts": 0x3A04,
    "ReleasedProductsV2": 0x3A05,
    "CDSSalesQuotationHeaders": 0x3A06,
    "CDSSalesQuotationLines": 0x3A07,
    "CDSSalesOrderHeaders": 0x3A08,
    "CDSSalesOrderLines": 0x3A09,
    "SalesInvoiceHeadersV2": 0x3A0A,
    "SalesInvoiceV2Lines": 0x3A0B,
}

_KINDS = {
    FieldKind.STRING: FieldKind.STRING,
    FieldKind.MEMO: FieldKind.MEMO,
    FieldKind.INTEGER: FieldKind.INTEGER,
    FieldKind.BIGINT: FieldKind.DECIMAL,
    FieldKind.DECIMAL: FieldKind.DECIMAL,
    FieldKind.DATETIME: FieldKind.DATETIME,
    FieldKind.ENUM: FieldKind.PICKLIST,
}


class OptionSets:
    """The global option sets of F&O enums: value = 200000000 + position of the symbol.

    Each enum's option mapping is one live dict shared by every column of that enum, so a
    symbol first seen at run time (an enum the emulator has no symbol list for) appears in
    the metadata of every table using it.
    """

    def __init__(self) -> None:
        self._options: dict[str, dict[int, str]] = {}

    def options(self, enum_type: str, symbols: tuple[str, ...] = ()) -> dict[int, str]:
        """The (live) value -> symbol mapping of ``enum_type``."""
        options = self._options.setdefault(enum_type, {})
        for symbol in symbols:
            self.value_of(enum_type, symbol)
        return options

    def value_of(self, enum_type: str, symbol: str) -> int | None:
        """The option value of a symbol (numbered on first sight); ``None`` for ``""``."""
        if not symbol:
            return None
        options = self._options.setdefault(enum_type, {})
        for value, known in options.items():
            if known.casefold() == symbol.casefold():
                return value
        value = OPTION_BASE + len(options)
        options[value] = symbol
        return value


def record_guid(data_entity_id: int, rec_id: int) -> str:
    """The virtual-table primary key of a record: entity id, then RecId (little-endian)."""
    tail = rec_id.to_bytes(8, "little", signed=False).hex()
    return f"{data_entity_id:08x}-0000-0000-{tail[:4]}-{tail[4:]}"


def rec_id_of(data_entity_id: int, guid: str) -> int | None:
    """The RecId inside a virtual-table GUID of this data entity, else ``None``."""
    parts = guid.lower().split("-")
    if len(parts) != 5 or parts[0] != f"{data_entity_id:08x}" or parts[1:3] != ["0000", "0000"]:
        return None
    try:
        return int.from_bytes(bytes.fromhex(parts[3] + parts[4]), "little")
    except ValueError:
        return None


def _plural(name: str) -> str:
    if name.endswith("y"):
        return name[:-1] + "ies"
    return name + ("es" if name.endswith(("s", "x")) else "s")


def _empty_date(value: Any) -> bool:
    return isinstance(value, datetime | date) and (value.year, value.month, value.day) == (
        1900,
        1,
        1,
    )


def _key_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return f"{value.month}/{value.day}/{value.year}"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class VirtualTable:
    """One F&O data entity as a Dataverse virtual table; ``columns`` maps F&O field names to
    column names, ``sources`` the other way."""

    fno: EntityDef
    entity: EntityDef
    data_entity_id: int
    columns: Mapping[str, str]
    sources: Mapping[str, str]
    options: OptionSets

    @property
    def primary_id(self) -> str:
        """``mserp_<entity>id``."""
        return self.entity.primary_id

    def record_id(self, rec_id: int) -> str:
        """The GUID of the record with root ``RecId`` ``rec_id``."""
        return record_guid(self.data_entity_id, rec_id)

    def rec_id(self, guid: str) -> int | None:
        """The RecId a GUID of this table carries (``None``: not a GUID of this table)."""
        return rec_id_of(self.data_entity_id, guid)

    def row(self, record: StoredRecord, view: Mapping[str, Any]) -> dict[str, Any]:
        """Every column of a record: ``view`` is the F&O record as read now."""
        values: dict[str, Any] = {self.primary_id: self.record_id(record.row_id)}
        for name, column in self.columns.items():
            values[column] = self.value(self.fno.fields[name], view.get(name))
        values[PRIMARY_FIELD] = self.primary_field(view)
        values[VERSION_NUMBER] = record.version
        return values

    def cell(self, record: StoredRecord, read: Callable[[str], Any], column: str) -> Any:
        """One column of a record; ``read(field)`` reads an F&O field as read now."""
        if column == self.primary_id:
            return self.record_id(record.row_id)
        if column == VERSION_NUMBER:
            return record.version
        if column == PRIMARY_FIELD:
            return self.primary_field({name: read(name) for name in self.fno.keys})
        source = self.sources.get(column)
        return self.value(self.fno.fields[source], read(source)) if source else None

    def value(self, field: FieldDef, value: Any) -> Any:
        """An F&O value as the virtual column shows it."""
        if field.kind is FieldKind.ENUM:
            return self.options.value_of(field.enum_type, str(value or ""))
        if _empty_date(value):
            return None
        return value

    def primary_field(self, view: Mapping[str, Any]) -> str:
        """``mserp_primaryfield``: key values but ``dataAreaId``, joined by ``" | "``."""
        parts = [_key_text(view.get(name)) for name in self.fno.keys if name != "dataAreaId"]
        return " | ".join(parts)[:MAX_PRIMARY_FIELD]


def _column(field: FieldDef, options: OptionSets) -> FieldDef:
    kind = _KINDS[field.kind]
    choices = options.options(field.enum_type, field.enum_symbols) if field.enum_type else {}
    return FieldDef(
        f"mserp_{field.name.lower()}",
        kind,
        writable=field.writable,
        options=choices,
        enum_type=field.enum_type,
        external_name=field.name,
    )


def virtual_table(fno: EntityDef, options: OptionSets) -> VirtualTable:
    """The virtual table of one F&O data entity."""
    name = f"mserp_{fno.write_name.lower()}"
    primary_id = f"{name}id"
    supported = [f for f in fno.fields.values() if f.kind in _KINDS]
    columns = {f.name: _column(f, options) for f in supported}
    fields: dict[str, FieldDef] = {
        primary_id: FieldDef(primary_id, FieldKind.GUID, nullable=False, writable=False)
    }
    fields.update({column.name: column for column in columns.values()})
    fields[PRIMARY_FIELD] = FieldDef(PRIMARY_FIELD, FieldKind.STRING, max_length=255)
    fields[VERSION_NUMBER] = FieldDef(VERSION_NUMBER, FieldKind.BIGINT, writable=False)
    entity = EntityDef(
        system=System.DATAVERSE,
        name=name,
        entity_set=_plural(name),
        type_name=name,
        fields=fields,
        keys=(primary_id,),
        primary_id=primary_id,
        primary_name=PRIMARY_FIELD,
        change_tracking=True,
        organization_owned=True,
        external_name=fno.write_name,
    )
    return VirtualTable(
        fno=fno,
        entity=entity,
        data_entity_id=DATA_ENTITY_IDS.get(fno.entity_set, 0x3A00),
        columns={name: column.name for name, column in columns.items()},
        sources={column.name: name for name, column in columns.items()},
        options=options,
    )


def virtual_tables(registry: EntityRegistry, options: OptionSets) -> list[VirtualTable]:
    """A virtual table for every F&O entity of ``registry``."""
    return [virtual_table(entity, options) for entity in registry]
