"""F&O records as OData JSON: every field (or ``$select``), enums as symbol strings, empty
strings as ``""``, empty dates as ``1900-01-01T12:00:00Z``, and the opaque weak ETag
``W/"<base64 of '0,<RecVersion>'>"``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bridge.emulators.common.store import StoredRecord
from bridge.emulators.fno.entities import EMPTY_DATE
from bridge.emulators.odata.entities import EntityDef, FieldKind
from bridge.emulators.odata.values import iso_utc


def fno_etag(version: int) -> str:
    """The ETag of a record version."""
    return 'W/"' + base64.b64encode(f"'0,{version}'".encode()).decode() + '"'


def fno_value(kind: FieldKind, value: Any) -> Any:
    """A stored value as F&O JSON."""
    if value is None:
        return (
            EMPTY_DATE
            if kind is FieldKind.DATETIME
            else ("" if kind in (FieldKind.STRING, FieldKind.MEMO) else None)
        )
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def record_json(
    entity: EntityDef,
    record: StoredRecord,
    select: Sequence[str] | None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One record with its ``@odata.etag``; ``values`` (default: the stored values) are the
    record as read, computed fields included."""
    shown = record.values if values is None else values
    body: dict[str, Any] = {"@odata.etag": fno_etag(record.version)}
    for name, field in entity.fields.items():
        if select is None or name in select:
            body[name] = fno_value(field.kind, shown.get(name))
    return body


def context_url(root: str, entity: EntityDef, select: Sequence[str] | None, single: bool) -> str:
    """``<root>$metadata#CustomersV3(A,B)/$entity``."""
    selected = f"({','.join(select)})" if select else ""
    return f"{root}$metadata#{entity.entity_set}{selected}{'/$entity' if single else ''}"
