"""Dataverse request inputs: key predicates, ``@odata.bind`` references and write bodies.

:class:`DataverseInputs` turns URL keys and JSON bodies into stored records and
:class:`~bridge.emulators.dataverse.tables.WriteSet` objects, resolving references
(``accounts(<guid>)``, ``/accounts(accountnumber='A1')``, absolute URLs, ``$1`` Content-IDs)
to existing records. Unknown properties, bad values and dangling references are 400/404.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.emulators.common.errors import bad_request
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.dataverse.tables import (
    DataverseTables,
    WriteSet,
    check_value,
    invalid_property,
    key_not_found,
    not_found,
)
from bridge.emulators.odata.entities import EntityDef, FieldDef
from bridge.emulators.odata.keys import KeyPredicate, parse_key, split_path
from bridge.emulators.odata.values import LookupRef, coerce, is_guid


@dataclass(frozen=True)
class Address:
    """A record address from a URL: by primary id or by alternate key values."""

    entity: EntityDef
    record_id: str | None = None
    key_values: Mapping[str, Any] | None = None

    def describe_missing(self) -> Exception:
        """The 404 for this address when no record exists."""
        if self.record_id is not None:
            return not_found(self.entity, self.record_id)
        return key_not_found(self.entity)


class DataverseInputs:
    """Parses keys and bodies of one request (``content_ids`` maps ``$n`` to URLs)."""

    def __init__(
        self, tables: DataverseTables, service_root: str, content_ids: Mapping[str, str]
    ) -> None:
        self.tables = tables
        self.service_root = service_root
        self.content_ids = content_ids

    def address(self, entity: EntityDef, key_text: str) -> Address:
        """The address of ``entity(<key_text>)``; 400 if the key is not a key of the table."""
        predicate = parse_key(key_text)
        if predicate.is_single:
            return Address(entity, record_id=self._guid(entity, predicate.single))
        if set(predicate.named) == {entity.primary_id}:
            return Address(entity, record_id=self._guid(entity, predicate.named[entity.primary_id]))
        return Address(entity, key_values=self._alternate_key(entity, predicate))

    def find(self, address: Address) -> StoredRecord | None:
        """The record at ``address``, if it exists."""
        if address.record_id is not None:
            return self.tables.get(address.entity, address.record_id)
        assert address.key_values is not None
        return self.tables.find_by_key(address.entity, address.key_values)

    def resolve_url(self, url: str) -> tuple[EntityDef, StoredRecord]:
        """The existing record a reference URL points at (404 if none)."""
        entity, address = self.parse_reference(url)
        record = self.find(address)
        if record is None:
            raise address.describe_missing()
        return entity, record

    def parse_reference(self, url: str) -> tuple[EntityDef, Address]:
        """Entity and address of ``accounts(<key>)`` in any of its URL forms."""
        url = self.content_ids.get(url, url)
        relative = url.split("/api/data/", 1)[-1]
        if relative != url:
            relative = relative.partition("/")[2]
        segments = split_path(relative)
        if len(segments) != 1 or segments[0].key is None:
            raise bad_request(f"The reference '{url}' is not a valid entity reference.")
        entity = self.tables.registry.by_set(segments[0].name)
        if entity is None:
            raise bad_request(f"Resource not found for the segment '{segments[0].name}'.")
        return entity, self.address(entity, segments[0].key)

    def writes(self, entity: EntityDef, body: Mapping[str, Any]) -> WriteSet:
        """Validate a create/update body into stored values."""
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@"):
                continue
            if name.endswith("@odata.bind"):
                attribute, ref = self._bind(entity, name.removesuffix("@odata.bind"), value)
                values[attribute] = ref
                continue
            if "@" in name:
                continue
            field = entity.field(name)
            if field is None or field.is_lookup:
                raise invalid_property(entity, name)
            if not field.writable:
                continue
            coerced = coerce(field, value)
            check_value(entity, field, coerced)
            values[name] = coerced
        return WriteSet(values, frozenset(values))

    def _bind(self, entity: EntityDef, nav: str, value: Any) -> tuple[str, LookupRef | None]:
        found = entity.nav_property(nav)
        if found is None:
            raise bad_request(
                f"An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload."
            )
        field, target = found
        if value is None:
            return field.name, None
        if not isinstance(value, str):
            raise bad_request(f"The value of '{nav}@odata.bind' must be an entity reference URL.")
        referenced, record = self.resolve_url(value)
        if referenced.name != target:
            raise bad_request(f"The reference '{value}' does not point at a '{target}' record.")
        return field.name, LookupRef(target, self.tables.record_id(record))

    def _guid(self, entity: EntityDef, value: Any) -> str:
        if not isinstance(value, str) or not is_guid(value):
            raise bad_request(
                f"The key value '{value}' of '{entity.entity_set}' is not a valid GUID."
            )
        return value.lower()

    def _key_value(self, field: FieldDef, value: Any) -> Any:
        if field.is_lookup:
            return LookupRef(field.targets[0], str(value).lower())
        return coerce(field, value) if isinstance(value, str) else value

    def _alternate_key(self, entity: EntityDef, predicate: KeyPredicate) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for web_name, value in predicate.named.items():
            field = entity.web_field(web_name)
            if field is None:
                raise bad_request(f"Invalid key property '{web_name}' for entity '{entity.name}'.")
            values[field.name] = self._key_value(field, value)
        if tuple(sorted(values)) not in {tuple(sorted(key)) for key in entity.alternate_keys}:
            names = ", ".join(predicate.named)
            raise bad_request(
                f"The key attributes '{names}' do not form an alternate key of entity '{entity.name}'."
            )
        return values
