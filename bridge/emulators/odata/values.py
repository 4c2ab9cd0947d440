"""Internal value types and the conversions shared by both systems.

Stored record values are plain Python: ``str``, ``int``, ``float``, ``bool``, aware
``datetime``, ``date``, ``None`` and :class:`LookupRef` for Dataverse lookups. This module
turns them into comparable values, formats dates the way each API does, and validates
incoming JSON against a :class:`~bridge.emulators.odata.entities.FieldDef`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.odata.entities import FieldDef, FieldKind
from bridge.emulators.odata.lexer import LiteralType, parse_datetime

_EDM: dict[FieldKind, str] = {
    FieldKind.STRING: "Edm.String",
    FieldKind.MEMO: "Edm.String",
    FieldKind.INTEGER: "Edm.Int32",
    FieldKind.BIGINT: "Edm.Int64",
    FieldKind.DECIMAL: "Edm.Decimal",
    FieldKind.MONEY: "Edm.Decimal",
    FieldKind.BOOLEAN: "Edm.Boolean",
    FieldKind.DATETIME: "Edm.DateTimeOffset",
    FieldKind.DATE: "Edm.Date",
    FieldKind.GUID: "Edm.Guid",
    FieldKind.LOOKUP: "Edm.Guid",
    FieldKind.PICKLIST: "Edm.Int32",
    FieldKind.STATE: "Edm.Int32",
    FieldKind.STATUS: "Edm.Int32",
}
_OPERATOR_KINDS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}


@dataclass(frozen=True)
class LookupRef:
    """A Dataverse lookup value: the target table and the referenced record's id."""

    entity: str
    id: str


def edm_type(field: FieldDef) -> str:
    """The OData type name of a field."""
    if field.kind is FieldKind.ENUM:
        return f"Microsoft.Dynamics.DataEntities.{field.enum_type}"
    return _EDM[field.kind]


def type_error(field: FieldDef, literal: LiteralType, op: str) -> ApiError:
    """The OData error for comparing a field with a literal of another type."""
    return bad_request(
        "A binary operator with incompatible types was detected. Found operand types "
        f"'{edm_type(field)}' and '{literal.value}' for operator kind '{_OPERATOR_KINDS.get(op, op)}'."
    )


def comparable(value: Any) -> Any:
    """A value ready for ``==``/``<``: lookups become their id, GUID strings lower-case."""
    if isinstance(value, LookupRef):
        return value.id
    return value


def is_guid(text: str) -> bool:
    """Whether ``text`` is a GUID in the 8-4-4-4-12 form."""
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False


def iso_utc(moment: datetime) -> str:
    """``2024-01-31T12:00:00Z`` (seconds precision, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wcf_date(moment: datetime | date) -> str:
    """WCF JSON date ``/Date(<ms since epoch>)/``."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)})/"


def _fail(field: FieldDef, value: Any) -> ApiError:
    return bad_request(
        f"Cannot convert the literal '{value}' to the expected type '{edm_type(field)}'."
    )


def _number(field: FieldDef, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(field, value)
    if field.kind in (FieldKind.INTEGER, FieldKind.BIGINT):
        if isinstance(value, float) and not value.is_integer():
            raise _fail(field, value)
        return int(value)
    return float(value)


def _moment(field: FieldDef, value: Any) -> datetime | date:
    if not isinstance(value, str):
        raise _fail(field, value)
    try:
        if field.kind is FieldKind.DATE:
            return date.fromisoformat(value[:10])
        return parse_datetime(value)
    except ValueError:
        raise _fail(field, value) from None


def _text(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(field, value)
    if field.kind is FieldKind.GUID:
        if not is_guid(value):
            raise _fail(field, value)
        return value.lower()
    return value


def coerce(field: FieldDef, value: Any) -> Any:
    """Validate one incoming JSON value for ``field`` and convert it to the stored form.

    ``None`` passes through (nullability is the caller's rule). Picklist and enum membership
    are checked by the system-specific writers, not here.
    """
    if value is None:
        return None
    if field.kind in (FieldKind.STRING, FieldKind.MEMO, FieldKind.GUID, FieldKind.ENUM):
        return _text(field, value)
    if field.kind is FieldKind.BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(field, value)
        return value
    if field.kind in (FieldKind.DATETIME, FieldKind.DATE):
        return _moment(field, value)
    if field.kind in (FieldKind.PICKLIST, FieldKind.STATE, FieldKind.STATUS):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(field, value)
        return value
    return _number(field, value)
