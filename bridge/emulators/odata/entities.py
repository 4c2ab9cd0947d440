"""Declarative entity definitions: the only place an emulated table is described.

An :class:`EntityDef` says everything the generic OData engine needs: the system, names,
keys, fields with types, navigation properties, auto-numbering, and whether change tracking
is on. Adding an entity is adding a definition (see :mod:`bridge.emulators.dataverse.entities`
and :mod:`bridge.emulators.fno.entities`), never a new code path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any


class System(StrEnum):
    """Which emulated API an entity belongs to."""

    DATAVERSE = "dataverse"
    FNO = "fno"


class FieldKind(StrEnum):
    """Attribute types. Dataverse and F&O types share one vocabulary."""

    STRING = "String"
    MEMO = "Memo"
    INTEGER = "Integer"
    BIGINT = "BigInt"
    DECIMAL = "Decimal"
    MONEY = "Money"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    DATE = "Date"
    GUID = "Uniqueidentifier"
    PICKLIST = "Picklist"
    STATE = "State"
    STATUS = "Status"
    LOOKUP = "Lookup"
    ENUM = "Enum"


OPTION_KINDS = frozenset({FieldKind.PICKLIST, FieldKind.STATE, FieldKind.STATUS})
TEXT_KINDS = frozenset({FieldKind.STRING, FieldKind.MEMO})
NUMBER_KINDS = frozenset({FieldKind.INTEGER, FieldKind.BIGINT, FieldKind.DECIMAL, FieldKind.MONEY})


@dataclass(frozen=True)
class FieldDef:
    """One attribute.

    ``options`` maps option values to labels (picklist/state/status); ``targets`` lists the
    entities a lookup may point at; ``enum_type``/``enum_symbols`` describe an F&O enum (no
    symbols = any symbol accepted). ``option_states`` maps each status value to its state.
    ``readable`` false makes a write-only attribute (Dataverse
    ``serviceendpoint.authvalue``); ``writable`` false makes writes of it silently ignored.
    ``external_name`` is the source field of a virtual-table column (F&O field name).
    """

    name: str
    kind: FieldKind
    nullable: bool = True
    required: bool = False
    readable: bool = True
    writable: bool = True
    max_length: int | None = None
    options: Mapping[int, str] = field(default_factory=dict)
    option_states: Mapping[int, int] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    enum_type: str = ""
    enum_symbols: tuple[str, ...] = ()
    default: Any = None
    external_name: str = ""

    @property
    def is_lookup(self) -> bool:
        """Whether the attribute references another record."""
        return self.kind is FieldKind.LOOKUP

    @property
    def web_name(self) -> str:
        """The Dataverse Web API property name (``_x_value`` for lookups)."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    def nav_properties(self) -> dict[str, str]:
        """Single-valued navigation properties of a lookup: nav name -> target entity."""
        if len(self.targets) == 1:
            return {self.name: self.targets[0]}
        return {f"{self.name}_{target}": target for target in self.targets}


@dataclass(frozen=True)
class NavDef:
    """A navigation property: ``pairs`` of (local attribute, remote attribute) join it."""

    name: str
    target: str
    many: bool
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AutoNumber:
    """Dataverse auto-number: ``<prefix>-<5 digits>-<6 upper-case letters>`` when empty."""

    attribute: str
    prefix: str
    start: int = 1000


@dataclass(frozen=True)
class NumberSequence:
    """F&O number sequence for a field left empty on create.

    ``pattern`` is a ``str.format`` pattern with ``{n}`` (``None`` = plain integer);
    ``scope`` names fields whose values get their own counter (e.g. lines per order);
    ``shared`` counters span companies (e.g. global party numbers).
    """

    attribute: str
    pattern: str | None = "{n:06d}"
    scope: tuple[str, ...] = ()
    shared: bool = False


@dataclass(frozen=True)
class Reference:
    """F&O referential check: a non-empty ``attribute`` must match ``target_attribute`` of a
    record of ``target`` in the same company."""

    attribute: str
    target: str
    target_attribute: str
    label: str


@dataclass(frozen=True)
class EntityDef:
    """One emulated entity (Dataverse table or F&O data entity).

    ``keys`` identify a record (Dataverse: the primary id; F&O: ``dataAreaId`` + natural
    keys). ``copy_defaults`` pairs ``(target, source)``: an empty target takes the source's
    value on create. ``write_name``/``table_label`` name the F&O AOT entity and table in
    write errors. ``external_name`` marks a Dataverse virtual table: the F&O entity behind it.
    """

    system: System
    name: str
    entity_set: str
    fields: Mapping[str, FieldDef]
    keys: tuple[str, ...]
    type_name: str = ""
    primary_id: str = ""
    primary_name: str = ""
    alternate_keys: tuple[tuple[str, ...], ...] = ()
    change_tracking: bool = False
    navigations: Mapping[str, NavDef] = field(default_factory=dict)
    autonumbers: tuple[AutoNumber, ...] = ()
    sequences: tuple[NumberSequence, ...] = ()
    references: tuple[Reference, ...] = ()
    copy_defaults: tuple[tuple[str, str], ...] = ()
    object_type_code: int = 0
    organization_owned: bool = False
    table_label: str = ""
    write_name: str = ""
    external_name: str = ""

    @cached_property
    def field_kinds(self) -> tuple[tuple[str, FieldKind], ...]:
        """``(name, kind)`` of every field in declaration order (computed once: rendering a
        record walks it)."""
        return tuple((name, each.kind) for name, each in self.fields.items())

    def field(self, name: str) -> FieldDef | None:
        """The attribute called ``name`` (logical name), if any."""
        return self.fields.get(name)

    def web_field(self, web_name: str) -> FieldDef | None:
        """The readable attribute behind a Web API property name (``_x_value`` resolves
        lookups); write-only attributes have none."""
        found = self.fields.get(web_name)
        if found is not None and not found.is_lookup:
            return found if found.readable else None
        if web_name.startswith("_") and web_name.endswith("_value"):
            lookup = self.fields.get(web_name[1:-6])
            if lookup is not None and lookup.is_lookup:
                return lookup
        return None

    def nav_property(self, nav_name: str) -> tuple[FieldDef, str] | None:
        """``(lookup attribute, target entity)`` of a single-valued navigation property."""
        for attribute in self.fields.values():
            target = attribute.nav_properties().get(nav_name) if attribute.is_lookup else None
            if target is not None:
                return attribute, target
        return None

    @property
    def qualified_type(self) -> str:
        """``Microsoft.Dynamics.CRM.<name>`` or ``Microsoft.Dynamics.DataEntities.<Type>``."""
        if self.system is System.DATAVERSE:
            return f"Microsoft.Dynamics.CRM.{self.name}"
        return f"Microsoft.Dynamics.DataEntities.{self.type_name}"


class EntityRegistry:
    """Entities of one system, found by name or entity set name."""

    def __init__(self, entities: Iterable[EntityDef]) -> None:
        self._by_name = {entity.name: entity for entity in entities}
        self._by_set = {entity.entity_set: entity for entity in self._by_name.values()}

    def __iter__(self) -> Iterator[EntityDef]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> EntityDef | None:
        """The entity with logical name (or F&O entity set name) ``name``."""
        return self._by_name.get(name)

    def by_set(self, entity_set: str) -> EntityDef | None:
        """The entity exposed as ``entity_set``."""
        return self._by_set.get(entity_set)

    def require(self, name: str) -> EntityDef:
        """The entity called ``name``; ``KeyError`` if unknown (a programming error)."""
        return self._by_name[name]


def fields_of(*groups: Iterable[FieldDef]) -> dict[str, FieldDef]:
    """An ordered name -> field mapping; later groups override earlier ones."""
    merged: dict[str, FieldDef] = {}
    for group in groups:
        for item in group:
            merged[item.name] = item
    return merged
