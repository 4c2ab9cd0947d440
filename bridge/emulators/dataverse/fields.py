"""Short constructors for Dataverse attribute definitions and the per-table builder.

:func:`table` adds what every Dataverse table has: the primary id, ``createdon``,
``modifiedon``, ``versionnumber``, ``createdby``/``modifiedby`` (systemuser lookups),
``ownerid`` unless organization-owned, and ``statecode``/``statuscode`` from a state model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.emulators.dataverse.optionsets import Options, StateModel
from bridge.emulators.odata.entities import (
    AutoNumber,
    EntityDef,
    FieldDef,
    FieldKind,
    NavDef,
    System,
    fields_of,
)


def text(name: str, length: int = 100, *, required: bool = False) -> FieldDef:
    """A single-line text attribute of at most ``length`` characters."""
    return FieldDef(name, FieldKind.STRING, max_length=length, required=required)


def memo(name: str, length: int = 2000) -> FieldDef:
    """A multi-line text attribute."""
    return FieldDef(name, FieldKind.MEMO, max_length=length)


def integer(name: str) -> FieldDef:
    """A whole-number attribute."""
    return FieldDef(name, FieldKind.INTEGER)


def decimal(name: str, *, required: bool = False) -> FieldDef:
    """A decimal-number attribute."""
    return FieldDef(name, FieldKind.DECIMAL, required=required)


def money(name: str, *, writable: bool = True) -> FieldDef:
    """A currency attribute."""
    return FieldDef(name, FieldKind.MONEY, writable=writable)


def flag(name: str) -> FieldDef:
    """A two-option (boolean) attribute."""
    return FieldDef(name, FieldKind.BOOLEAN)


def moment(name: str) -> FieldDef:
    """A date-and-time attribute (UTC)."""
    return FieldDef(name, FieldKind.DATETIME)


def day(name: str) -> FieldDef:
    """A date-only attribute."""
    return FieldDef(name, FieldKind.DATE)


def guid(name: str) -> FieldDef:
    """A unique-identifier attribute."""
    return FieldDef(name, FieldKind.GUID)


def choice(name: str, options: Options) -> FieldDef:
    """A choice (picklist) attribute."""
    return FieldDef(name, FieldKind.PICKLIST, options=options)


def lookup(name: str, *targets: str, required: bool = False) -> FieldDef:
    """A lookup to one target table (nav = ``name``) or several (nav = ``name_<target>``)."""
    return FieldDef(name, FieldKind.LOOKUP, targets=targets, required=required)


def address(prefix: str) -> list[FieldDef]:
    """The composite address attributes ``<prefix>_line1`` ... ``<prefix>_country``."""
    lines = [text(f"{prefix}_line{n}", 250) for n in (1, 2, 3)]
    rest = [
        text(f"{prefix}_name", 200),
        text(f"{prefix}_city", 80),
        text(f"{prefix}_stateorprovince", 50),
        text(f"{prefix}_postalcode", 20),
        text(f"{prefix}_country", 80),
        text(f"{prefix}_county", 50),
        text(f"{prefix}_telephone1", 50),
    ]
    return lines + rest


def _state_fields(model: StateModel | None) -> list[FieldDef]:
    if model is None:
        return []
    states, statuses, status_state = model
    return [
        FieldDef("statecode", FieldKind.STATE, options=states),
        FieldDef("statuscode", FieldKind.STATUS, options=statuses, option_states=status_state),
    ]


def _system_fields(name: str, organization_owned: bool) -> list[FieldDef]:
    audit = [
        FieldDef("createdon", FieldKind.DATETIME, writable=False),
        FieldDef("modifiedon", FieldKind.DATETIME, writable=False),
        FieldDef("versionnumber", FieldKind.BIGINT, writable=False),
        FieldDef("createdby", FieldKind.LOOKUP, targets=("systemuser",), writable=False),
        FieldDef("modifiedby", FieldKind.LOOKUP, targets=("systemuser",), writable=False),
    ]
    owner = [] if organization_owned else [lookup("ownerid", "systemuser")]
    return [FieldDef(f"{name}id", FieldKind.GUID, nullable=False), *audit, *owner]


def table(
    name: str,
    entity_set: str,
    columns: Iterable[FieldDef],
    *,
    primary_name: str,
    object_type_code: int,
    states: StateModel | None = None,
    alternate_keys: tuple[tuple[str, ...], ...] = (),
    change_tracking: bool = True,
    organization_owned: bool = False,
    autonumbers: tuple[AutoNumber, ...] = (),
    navigations: Mapping[str, NavDef] | None = None,
) -> EntityDef:
    """A Dataverse table definition with the platform's standard columns added."""
    return EntityDef(
        system=System.DATAVERSE,
        name=name,
        entity_set=entity_set,
        type_name=name,
        fields=fields_of(_system_fields(name, organization_owned), columns, _state_fields(states)),
        keys=(f"{name}id",),
        primary_id=f"{name}id",
        primary_name=primary_name,
        alternate_keys=alternate_keys,
        change_tracking=change_tracking,
        navigations=dict(navigations or {}),
        autonumbers=autonumbers,
        object_type_code=object_type_code,
        organization_owned=organization_owned,
    )


def children(name: str, target: str, parent_id: str, lookup_name: str) -> dict[str, NavDef]:
    """A collection-valued navigation from a parent's id to a child's lookup."""
    return {name: NavDef(name, target, many=True, pairs=((parent_id, lookup_name),))}
