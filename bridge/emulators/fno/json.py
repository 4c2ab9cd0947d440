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
        return _EMPTY.get(kind)
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


_EMPTY = {FieldKind.DATETIME: EMPTY_DATE, FieldKind.STRING: "", FieldKind.MEMO: ""}
"""How F&O shows an empty field of each kind (kinds not listed: ``null``)."""


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
    for name, kind in entity.field_kinds:
        if select is None or name in select:
            value = shown.get(name)
            # inlined fno_value: this loop runs for every field of every record answered
            if value is None:
                body[name] = _EMPTY.get(kind)
            elif isinstance(value, datetime):
                body[name] = iso_utc(value)
            else:
                body[name] = value
    return body


def context_url(root: str, entity: EntityDef, select: Sequence[str] | None, single: bool) -> str:
    """``<root>$metadata#CustomersV3(A,B)/$entity``."""
    selected = f"({','.join(select)})" if select else ""
    return f"{root}$metadata#{entity.entity_set}{selected}{'/$entity' if single else ''}"
