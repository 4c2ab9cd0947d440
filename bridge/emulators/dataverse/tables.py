"""Dataverse table semantics over the record store: keys, defaults, validation, writes.

:class:`DataverseTables` is what the Web API handlers call; it knows nothing about HTTP.
Writes are validated first and stored whole (so a failing write changes nothing). Every
write runs the plug-in pipeline (:mod:`bridge.emulators.common.plugins`): pre-operation steps
before validation of required columns and keys, post-operation steps after the store write
in the same transaction. The platform columns (``createdon``, ``modifiedon``,
``versionnumber``, ``createdby``, ``modifiedby``) are not stored: :meth:`DataverseTables.view`
derives them from the stored record's metadata. Errors are
:class:`~bridge.emulators.common.errors.ApiError` with Dataverse codes.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.plugins import PluginContext
from bridge.emulators.common.principals import SYSTEM, PrincipalDirectory
from bridge.emulators.common.store import RecordKey, RecordStore, StoredRecord
from bridge.emulators.common.tables import TableLayer, is_empty
from bridge.emulators.odata.entities import (
    OPTION_KINDS,
    TEXT_KINDS,
    EntityDef,
    EntityRegistry,
    FieldDef,
)
from bridge.emulators.odata.values import LookupRef

NOT_FOUND_CODE = "0x80040217"
KEY_NOT_FOUND_CODE = "0x80060891"
DUPLICATE_CODE = "0x80040237"
DUPLICATE_KEY_CODE = "0x80060892"
VALIDATION_CODE = "0x80044331"
INVALID_ARGUMENT_CODE = "0x80040203"
CONCURRENCY_CODE = "0x80060882"

_PLATFORM_COLUMNS = frozenset(
    {"createdon", "modifiedon", "versionnumber", "createdby", "modifiedby"}
)
"""Columns derived from the stored record's metadata, never stored."""
WriteHook = Callable[[EntityDef, dict[str, Any], StoredRecord | None], None]


@dataclass(frozen=True)
class WriteSet:
    """Validated values of one write body; ``written`` names every attribute it set."""

    values: Mapping[str, Any]
    written: frozenset[str]


def not_found(entity: EntityDef, record_id: str) -> ApiError:
    """404 for a missing record addressed by id."""
    return ApiError(404, f"{entity.name} With Id = {record_id} Does Not Exist", code=NOT_FOUND_CODE)


def key_not_found(entity: EntityDef) -> ApiError:
    """404 for a missing record addressed by alternate key."""
    message = f"A record with the specified key values does not exist in {entity.name} entity"
    return ApiError(404, message, code=KEY_NOT_FOUND_CODE)


def normalized(value: Any) -> Any:
    """A value as compared in keys: case-insensitive text, lookup ids."""
    if isinstance(value, LookupRef):
        return value.id
    if isinstance(value, str):
        return value.casefold()
    return value


class DataverseTables(TableLayer):
    """Records of every Dataverse table of one emulator: GUID ids, owner and state defaults,
    autonumbers, alternate keys, platform columns (the write path is :class:`TableLayer`'s)."""

    def __init__(
        self, registry: EntityRegistry, store: RecordStore, directory: PrincipalDirectory
    ) -> None:
        super().__init__(registry, store)
        self.directory = directory
        self._hooks: dict[str, list[WriteHook]] = {}
        self._rng = random.Random()
        for entity in registry:
            for key in entity.alternate_keys:
                store.define_index(entity.name, _index_name(key), _key_function(key))

    def add_hook(self, entity: str, hook: WriteHook) -> None:
        """Run ``hook(entity, new values, existing)`` before every write to ``entity``; it
        may adjust the values or raise :class:`ApiError` to refuse the write."""
        self._hooks.setdefault(entity, []).append(hook)

    def get(self, entity: EntityDef, record_id: str) -> StoredRecord | None:
        """The record with primary id ``record_id``."""
        return self.store.get(entity.name, (record_id.lower(),))

    def find_by_key(self, entity: EntityDef, key_values: Mapping[str, Any]) -> StoredRecord | None:
        """The record whose alternate-key attributes equal ``key_values``."""
        wanted = {name: normalized(value) for name, value in key_values.items()}
        for key in entity.alternate_keys:
            if set(key) == set(wanted):
                found = self.store.find(
                    entity.name, _index_name(key), tuple(wanted[name] for name in key)
                )
                return found[0] if found else None
        for record in self.store.records(entity.name):
            if all(normalized(record.values.get(name)) == value for name, value in wanted.items()):
                return record
        return None

    def record_id(self, record: StoredRecord) -> str:
        """The primary id of a stored record."""
        return str(record.key[0])

    def view(self, entity: EntityDef, record: StoredRecord) -> dict[str, Any]:
        """Every attribute of a record, platform columns included."""
        values = record.values
        view = {name: values.get(name) for name in entity.fields}
        for name in _PLATFORM_COLUMNS & view.keys():
            view[name] = self._platform_value(record, name)
        if entity.primary_id in view:
            view[entity.primary_id] = self.record_id(record)
        return view

    def value_of(self, entity: EntityDef, record: StoredRecord, name: str) -> Any:
        """One attribute of a record (logical name), platform columns included."""
        if name == entity.primary_id:
            return self.record_id(record)
        if name in _PLATFORM_COLUMNS:
            return self._platform_value(record, name)
        return record.values.get(name)

    def _platform_value(self, record: StoredRecord, name: str) -> Any:
        if name == "createdon":
            return record.created_at
        if name == "modifiedon":
            return record.modified_at
        if name == "versionnumber":
            return record.version
        return self._user_ref(record.created_by if name == "createdby" else record.modified_by)

    def resolver(self, entity: EntityDef) -> Callable[[StoredRecord, str], Any]:
        """Property access by Web API name (``_x_value`` for lookups), for ``$filter``."""

        def resolve(record: StoredRecord, web_name: str) -> Any:
            field = entity.web_field(web_name)
            return self.value_of(entity, record, field.name) if field else None

        return resolve

    def primary_name(self, ref: LookupRef) -> str | None:
        """The primary name of the record a lookup points at, if it exists."""
        entity = self.registry.get(ref.entity)
        record = self.get(entity, ref.id) if entity else None
        if entity is None or record is None:
            return None
        name = self.view(entity, record).get(entity.primary_name)
        return name if isinstance(name, str) else None

    def create(
        self,
        entity: EntityDef,
        writes: WriteSet,
        principal: str,
        *,
        depth: int = 1,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        """Create a record; 412 if the id or an alternate key already exists."""
        record_id = str(writes.values.get(entity.primary_id) or uuid.uuid4()).lower()
        if self.get(entity, record_id) is not None:
            raise ApiError(
                412, "A record with matching key values already exists.", code=DUPLICATE_CODE
            )
        values = self._defaults(entity, principal)
        values.update(writes.values)
        values[entity.primary_id] = record_id
        self._assign_autonumbers(entity, values)
        return self._save(
            entity, values, writes.written, principal, existing=None, depth=depth, tags=tags
        )

    def update(
        self,
        entity: EntityDef,
        record: StoredRecord,
        writes: WriteSet,
        principal: str,
        *,
        depth: int = 1,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        """Apply ``writes`` to an existing record."""
        values = self._merge(entity, record, writes.values)
        return self._save(
            entity, values, writes.written, principal, existing=record, depth=depth, tags=tags
        )

    def seed(self, entity_name: str, values: Mapping[str, Any]) -> StoredRecord:
        """Insert reference data as SYSTEM without counting it as a write."""
        entity = self.entity(entity_name)
        record_id = str(values[entity.primary_id]).lower()
        full = {**self._defaults(entity, SYSTEM.client_id), **values, entity.primary_id: record_id}
        return self.store.write(
            entity.name,
            (record_id,),
            full,
            principal=SYSTEM.client_id,
            changed=frozenset(full),
            label=record_id,
            count=False,
        )

    def _merge(
        self, entity: EntityDef, record: StoredRecord, given: Mapping[str, Any]
    ) -> dict[str, Any]:
        values = dict(record.values)
        values.update({k: v for k, v in given.items() if k != entity.primary_id})
        return values

    def _new_key(self, context: PluginContext) -> RecordKey:
        # The id was taken from the body (or generated) and checked free before any step ran.
        return (context.values[context.entity.primary_id],)

    def _label(self, entity: EntityDef, key: RecordKey, values: Mapping[str, Any]) -> str:
        return str(key[0])

    def _changed(self, context: PluginContext) -> frozenset[str]:
        return context.written | {context.entity.primary_id}

    def _user_ref(self, client_id: str) -> LookupRef:
        principal = self.directory.get(client_id) or SYSTEM
        return LookupRef("systemuser", principal.systemuser_id)

    def _defaults(self, entity: EntityDef, principal: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: f.default for name, f in entity.fields.items() if f.default is not None
        }
        state, status = entity.field("statecode"), entity.field("statuscode")
        if state is not None and status is not None:
            first_state = min(state.options)
            values["statecode"] = first_state
            values["statuscode"] = _status_for(status, first_state)
        if entity.field("ownerid") is not None:
            values["ownerid"] = self._user_ref(principal)
        return values

    def _assign_autonumbers(self, entity: EntityDef, values: dict[str, Any]) -> None:
        for auto in entity.autonumbers:
            while is_empty(values.get(auto.attribute)):
                number = self.store.next_counter(
                    ("autonumber", entity.name, auto.attribute), auto.start
                )
                suffix = "".join(self._rng.choices(string.ascii_uppercase, k=6))
                candidate = f"{auto.prefix}-{number:05d}-{suffix}"
                if self.find_by_key(entity, {auto.attribute: candidate}) is None:
                    values[auto.attribute] = candidate

    def _before_steps(self, context: PluginContext) -> None:
        entity, values = context.entity, context.values
        _derive(entity, values)
        _normalize_state(entity, values, context.written)
        for hook in self._hooks.get(entity.name, []):
            hook(entity, values, context.existing)

    def _validate(self, context: PluginContext) -> None:
        entity, values = context.entity, context.values
        for name, field in entity.fields.items():
            if field.required and is_empty(values.get(name)):
                raise ApiError(
                    400,
                    f"The '{name}' attribute of the '{entity.name}' entity is required.",
                    code=INVALID_ARGUMENT_CODE,
                )
        self._check_unique_keys(entity, values, context.existing)

    def _check_unique_keys(
        self, entity: EntityDef, values: Mapping[str, Any], existing: StoredRecord | None
    ) -> None:
        for key in entity.alternate_keys:
            key_values = {name: values.get(name) for name in key}
            if any(is_empty(v) for v in key_values.values()):
                continue
            other = self.find_by_key(entity, key_values)
            if other is not None and (existing is None or other.key != existing.key):
                shown = ", ".join(str(normalized(v)) for v in key_values.values())
                message = (
                    f"A record that has the attribute values {shown} already exists. The entity key "
                    f"{'_'.join(key)} requires that this set of attributes contains unique values. "
                    "Select unique values and try again."
                )
                raise ApiError(412, message, code=DUPLICATE_KEY_CODE)


def _index_name(key: tuple[str, ...]) -> str:
    return "altkey:" + ",".join(key)


def _key_function(key: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    def index_value(values: Mapping[str, Any]) -> Any:
        parts = tuple(normalized(values.get(name)) for name in key)
        return None if any(is_empty(p) for p in parts) else parts

    return index_value


def _status_for(status: FieldDef, state: int) -> int:
    return next(value for value, owner in status.option_states.items() if owner == state)


def _normalize_state(entity: EntityDef, values: dict[str, Any], written: frozenset[str]) -> None:
    status_field = entity.field("statuscode")
    if status_field is None or entity.field("statecode") is None:
        return
    state, status = values.get("statecode"), values.get("statuscode")
    if "statuscode" in written and "statecode" not in written and status is not None:
        values["statecode"] = status_field.option_states[status]
    elif (
        "statecode" in written
        and ("statuscode" not in written or status is None)
        and state is not None
    ):
        values["statuscode"] = _status_for(status_field, state)
    elif status is not None and status_field.option_states.get(status) != state:
        message = f"{status} is not a valid status code for state code {entity.name}State.{state} on {entity.name}."
        raise ApiError(400, message, code="0x8004431a")


def _derive(entity: EntityDef, values: dict[str, Any]) -> None:
    if entity.name == "contact":
        parts = [values.get("firstname"), values.get("lastname")]
        values["fullname"] = " ".join(p for p in parts if p) or None


def check_value(entity: EntityDef, field: FieldDef, value: Any) -> None:
    """Validate option membership and text length of one coerced value (400 if invalid)."""
    if value is None:
        return
    if field.kind in OPTION_KINDS and value not in field.options:
        message = (
            f"A validation error occurred.  The value {value} of '{field.name}' on record of type "
            f"'{entity.name}' is outside the valid range."
        )
        raise ApiError(400, message, code=VALIDATION_CODE)
    if field.kind in TEXT_KINDS and field.max_length is not None and len(value) > field.max_length:
        message = (
            f"A validation error occurred.  The length of the '{field.name}' attribute of the "
            f"'{entity.name}' entity exceeded the maximum allowed length of '{field.max_length}'."
        )
        raise ApiError(400, message, code=VALIDATION_CODE)


def invalid_property(entity: EntityDef, name: str) -> ApiError:
    """400 for a body property the table does not have."""
    return bad_request(f"Invalid property '{name}' was found in entity '{entity.qualified_type}'.")
