"""F&O data entity semantics over the record store (dynamics-apis.md B.1-B.2).

:class:`FnoTables` validates and applies writes the way F&O answers them: unknown
properties and bad values 400; missing key parts 400; ``dataAreaId`` in the body picks the
company (default: the caller's); keys left empty take the next number from a per-company
number sequence; required fields and references are checked ("Write failed for table row
..."); a duplicate key is a 500 ``AxODataWriteException``. There is no upsert: updating or
deleting a missing record is 404 "No resources were found when selecting for update.".
Strings are never null (``""``); empty dates are stored as ``None`` and shown as
``1900-01-01T12:00:00Z``.

Business logic hangs off the plug-in pipeline (:mod:`bridge.emulators.common.plugins`):
pre-operation steps run after defaults and number sequences and before the checks,
post-operation steps after the store write in the same transaction. Computed fields
(:meth:`FnoTables.add_computed`) are stored on every write and recomputed on every read
(:meth:`FnoTables.view`, :meth:`FnoTables.value_of`), like the computed columns of an F&O
entity view. :meth:`FnoTables.insert` and :meth:`FnoTables.modify` take already validated
values (read-only fields allowed): they are the write path of plug-ins and actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bridge.emulators.common.errors import FNO_WRITE_ERROR_TYPE, ODATA_ERROR_TYPE, ApiError
from bridge.emulators.common.plugins import PluginContext
from bridge.emulators.common.store import RecordKey, RecordStore, StoredRecord
from bridge.emulators.common.tables import TableLayer, is_empty
from bridge.emulators.odata.entities import EntityDef, EntityRegistry, FieldDef, FieldKind
from bridge.emulators.odata.keys import parse_key
from bridge.emulators.odata.values import coerce, edm_type

NOT_FOUND_FOR_UPDATE = "No resources were found when selecting for update."
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_ZERO = {FieldKind.DECIMAL: 0.0, FieldKind.MONEY: 0.0, FieldKind.INTEGER: 0, FieldKind.BIGINT: 0}

Computation = Callable[[Mapping[str, Any]], Any]


def odata_error(message: str, status: int = 400) -> ApiError:
    """An F&O OData-layer error (wrapped in ``innererror``)."""
    return ApiError(status, message, error_type=ODATA_ERROR_TYPE)


def write_failed(entity: EntityDef, detail: str, status: int = 400) -> ApiError:
    """F&O's "Write failed for table row of type ..." error."""
    return ApiError(
        status,
        f"Write failed for table row of type '{entity.write_name}'. Infolog: {detail}",
        error_type=FNO_WRITE_ERROR_TYPE,
    )


def key_part(value: Any) -> Any:
    """A key value as compared: text case-insensitively, instants in UTC."""
    return value.casefold() if isinstance(value, str) else value


def key_label(entity: EntityDef, values: Mapping[str, Any]) -> str:
    """The OData key predicate of a record, e.g. ``dataAreaId='usmf',CustomerAccount='C1'``."""
    return ",".join(
        f"{name}={_literal(entity.fields[name], values.get(name))}" for name in entity.keys
    )


def _literal(field: FieldDef, value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if field.kind is FieldKind.ENUM:
        return f"Microsoft.Dynamics.DataEntities.{field.enum_type}'{value}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _company_value(attribute: str) -> Callable[[Mapping[str, Any]], Any]:
    def index_value(values: Mapping[str, Any]) -> Any:
        return (values.get("dataAreaId"), key_part(values.get(attribute)))

    return index_value


def _default(field: FieldDef) -> Any:
    if field.default is not None:
        return field.default
    if field.kind in (FieldKind.STRING, FieldKind.MEMO):
        return ""
    if field.kind is FieldKind.GUID:
        return EMPTY_GUID
    return _ZERO.get(field.kind)


class FnoTables(TableLayer):
    """Records of every F&O entity of one emulator: company keys, number sequences,
    referential checks, coerced values, computed fields (the write path is
    :class:`TableLayer`'s)."""

    def __init__(
        self, registry: EntityRegistry, store: RecordStore, companies: tuple[str, ...]
    ) -> None:
        super().__init__(registry, store)
        self.companies = tuple(c.casefold() for c in companies)
        self._computed: dict[str, dict[str, Computation]] = {}
        self._defaults: dict[str, dict[str, Any]] = {}
        for entity in registry:
            for reference in entity.references:
                name = f"ref:{reference.target_attribute}"
                store.define_index(
                    reference.target, name, _company_value(reference.target_attribute)
                )

    def record_key(self, entity: EntityDef, values: Mapping[str, Any]) -> RecordKey:
        """The store key of a record with these key values."""
        return tuple(key_part(values.get(name)) for name in entity.keys)

    def parse_address(self, entity: EntityDef, key_text: str) -> dict[str, Any]:
        """Key values of ``Set(<key_text>)``; 400 unless every key is given (and only keys)."""
        predicate = parse_key(key_text)
        if predicate.is_single or set(predicate.named) != set(entity.keys):
            raise odata_error(
                "The number of keys specified in the URI does not match number of key properties "
                f"for the resource '{entity.qualified_type}'."
            )
        return {
            name: self._key_value(entity.fields[name], value)
            for name, value in predicate.named.items()
        }

    def get(self, entity: EntityDef, key_values: Mapping[str, Any]) -> StoredRecord | None:
        """The record with these key values."""
        return self.store.get(entity.name, self.record_key(entity, key_values))

    def add_computed(self, entity: str, name: str, compute: Computation) -> None:
        """Field ``name`` of ``entity`` is ``compute(record values)``: stored on every write
        (after the pre-operation steps) and recomputed on every read."""
        self._computed.setdefault(entity, {})[name] = compute

    def value_of(self, entity: EntityDef, record: StoredRecord, name: str) -> Any:
        """One field of a record as read now (computed fields recomputed)."""
        compute = self._computed.get(entity.name, {}).get(name)
        return compute(record.values) if compute else record.values.get(name)

    def view(self, entity: EntityDef, record: StoredRecord) -> dict[str, Any]:
        """Every field of a record as read now (computed fields recomputed)."""
        values = dict(record.values)
        for name, compute in self._computed.get(entity.name, {}).items():
            values[name] = compute(record.values)
        return values

    def create(
        self, entity: EntityDef, body: Mapping[str, Any], principal: str, default_company: str
    ) -> StoredRecord:
        """Insert a record from a request body (see the module docstring for the rules)."""
        return self.insert(entity, self.coerce_body(entity, body), principal, default_company)

    def insert(
        self,
        entity: EntityDef,
        given: Mapping[str, Any],
        principal: str,
        default_company: str,
        *,
        depth: int = 1,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        """Insert a record from validated values."""
        values = dict(self._defaults_of(entity))
        values.update(given)
        values["dataAreaId"] = self._company(entity, values.get("dataAreaId") or default_company)
        for target, source in entity.copy_defaults:
            if is_empty(values.get(target)):
                values[target] = values.get(source)
        self._number(entity, values)
        written = frozenset(given)
        return self._save(entity, values, written, principal, existing=None, depth=depth, tags=tags)

    def _defaults_of(self, entity: EntityDef) -> dict[str, Any]:
        # built once per entity: an insert starts from every field's default (hundreds)
        defaults = self._defaults.get(entity.name)
        if defaults is None:
            defaults = {name: _default(field) for name, field in entity.fields.items()}
            self._defaults[entity.name] = defaults
        return defaults

    def update(
        self,
        entity: EntityDef,
        record: StoredRecord,
        body: Mapping[str, Any],
        principal: str,
        *,
        replace: bool,
    ) -> StoredRecord:
        """PATCH (merge) or PUT (replace) an existing record from a request body."""
        given = self.coerce_body(entity, body)
        return self.modify(entity, record, given, principal, replace=replace)

    def modify(
        self,
        entity: EntityDef,
        record: StoredRecord,
        given: Mapping[str, Any],
        principal: str,
        *,
        replace: bool = False,
        depth: int = 1,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        """Merge (or replace with) validated values into a record; keys cannot change."""
        values = self._merge(entity, record, given, replace=replace)
        written = frozenset(given)
        return self._save(
            entity, values, written, principal, existing=record, depth=depth, tags=tags
        )

    def _merge(
        self,
        entity: EntityDef,
        record: StoredRecord,
        given: Mapping[str, Any],
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        for name in entity.keys:
            if name in given and key_part(given[name]) != key_part(record.values.get(name)):
                raise write_failed(entity, f"Error: The key field '{name}' cannot be changed.")
        base = {
            n: (record.values.get(n) if n in entity.keys else _default(f))
            for n, f in entity.fields.items()
        }
        values = base if replace else dict(record.values)
        values.update({k: v for k, v in given.items() if k not in entity.keys})
        return values

    def _before_steps(self, context: PluginContext) -> None:
        """Nothing: defaults, company and numbers are set when the record is built, and
        computed fields see what the steps wrote (:meth:`_validate`)."""

    def _validate(self, context: PluginContext) -> None:
        entity, values = context.entity, context.values
        for name, compute in self._computed.get(entity.name, {}).items():
            values[name] = compute(values)
        self._check_filled(entity, values)
        # A create checks every reference; an update only those it writes.
        self._check_references(
            entity, values, None if context.existing is None else context.written
        )
        self._touch(entity, values)

    def _new_key(self, context: PluginContext) -> RecordKey:
        key = self.record_key(context.entity, context.values)
        if self.store.get(context.entity.name, key) is not None:
            raise self._duplicate(context.entity, context.values)
        return key

    def _label(self, entity: EntityDef, key: RecordKey, values: Mapping[str, Any]) -> str:
        return key_label(entity, values)

    def coerce_body(self, entity: EntityDef, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a JSON body into stored values (400 on unknown names or bad values)."""
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@") or "@odata." in name:
                continue
            field = entity.field(name)
            if field is None:
                raise odata_error(
                    f"The property '{name}' does not exist on type '{entity.qualified_type}'. Make sure to only use "
                    "property names that are defined by the type or mark the type as open type."
                )
            if field.writable:
                values[name] = self._value(field, value)
        return values

    def _value(self, field: FieldDef, value: Any) -> Any:
        if value is None:
            if not field.nullable or field.kind is FieldKind.ENUM:
                edm = f"{edm_type(field)}[Nullable=False]"
                raise odata_error(
                    f"A null value was found for the property named '{field.name}', which has the expected type '{edm}'. "
                    f"The expected type '{edm}' does not allow null values."
                )
            return "" if field.kind in (FieldKind.STRING, FieldKind.MEMO) else None
        coerced = coerce(field, value)
        if field.kind is FieldKind.ENUM and field.enum_symbols:
            match = next(
                (s for s in field.enum_symbols if s.casefold() == str(coerced).casefold()), None
            )
            if match is None:
                raise odata_error(f"Requested value '{coerced}' was not found.")
            return match
        return coerced

    def _key_value(self, field: FieldDef, value: Any) -> Any:
        if isinstance(value, str):
            return self._value(field, value)
        if field.kind in (FieldKind.STRING, FieldKind.MEMO):
            raise odata_error(
                f"The key value '{value}' of '{field.name}' must be a string literal."
            )
        return value

    def _company(self, entity: EntityDef, company: Any) -> str:
        normalized = str(company).casefold()
        if normalized not in self.companies:
            raise write_failed(entity, f"Error: Company '{company}' does not exist.")
        return normalized

    def _number(self, entity: EntityDef, values: dict[str, Any]) -> None:
        for sequence in entity.sequences:
            if not is_empty(values.get(sequence.attribute)) and values.get(sequence.attribute) != 0:
                continue
            company = "*" if sequence.shared else values["dataAreaId"]
            counter = (
                "sequence",
                entity.name,
                sequence.attribute,
                company,
                *(key_part(values.get(s)) for s in sequence.scope),
            )
            while True:
                number = self.store.next_counter(counter)
                values[sequence.attribute] = (
                    sequence.pattern.format(n=number) if sequence.pattern else number
                )
                if sequence.attribute not in entity.keys or self.get(entity, values) is None:
                    break

    def _check_filled(self, entity: EntityDef, values: Mapping[str, Any]) -> None:
        for name, field in entity.fields.items():
            if ((name in entity.keys and name != "dataAreaId") or field.required) and is_empty(
                values.get(name)
            ):
                raise write_failed(entity, f"Warning: Field '{name}' must be filled in.")

    def _check_references(
        self, entity: EntityDef, values: Mapping[str, Any], written: frozenset[str] | None
    ) -> None:
        for reference in entity.references:
            value = values.get(reference.attribute)
            skipped = written is not None and reference.attribute not in written
            if skipped or is_empty(value):
                continue
            # the index defined in __init__: (company, key) → records, not a table scan
            index_value = _company_value(reference.target_attribute)(
                {"dataAreaId": values.get("dataAreaId"), reference.target_attribute: value}
            )
            found = bool(
                self.store.find(reference.target, f"ref:{reference.target_attribute}", index_value)
            )
            if not found:
                detail = f"Warning: The value '{value}' in field '{reference.label}' is not found in the relating table '{reference.target}'."
                raise write_failed(entity, detail)

    def _duplicate(self, entity: EntityDef, values: Mapping[str, Any]) -> ApiError:
        shown = ", ".join(str(values.get(name)) for name in entity.keys)
        detail = f"Info: Cannot create a record in {entity.table_label}. {', '.join(entity.keys)}: {shown}.\nThe record already exists.."
        return write_failed(entity, detail, status=500)

    def _touch(self, entity: EntityDef, values: dict[str, Any]) -> None:
        for name, field in entity.fields.items():
            if not field.writable and field.kind is FieldKind.DATETIME:
                values[name] = self.store.now()
