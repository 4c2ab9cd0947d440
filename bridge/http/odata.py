"""OData URL pieces shared by every client of the Dynamics APIs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_GUID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


class Guid(str):
    """A GUID value: bare in OData literals (``_parentcustomerid_value eq 1f...``)."""

    __slots__ = ()


def odata_literal(value: Any) -> str:
    """An OData key or filter literal: strings quoted with ``'`` doubled, numbers and GUIDs
    bare."""
    if isinstance(value, Guid):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_path(entity_set: str, key: Mapping[str, Any]) -> str:
    """``Set(k1='v1',k2='v2')``: an entity addressed by every key field."""
    parts = ",".join(f"{name}={odata_literal(value)}" for name, value in key.items())
    return f"{entity_set}({parts})"


def entity_id_from_header(value: str) -> str | None:
    """The GUID at the end of an ``OData-EntityId`` header, lower-case; ``None`` if absent."""
    match = _GUID.search(value or "")
    return match.group(1).lower() if match else None
