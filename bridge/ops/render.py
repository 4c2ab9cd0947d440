"""Rich tables for the operator commands. Pure: builds renderables, prints nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from bridge.engine.dead_letters import HEADER_PREFIX
from bridge.engine.stream import Headers

MAX_CELL = 80


def clip(value: Any, limit: int = MAX_CELL) -> str:
    """``value`` as one line of at most ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(value: Any) -> str:
    """A target or source value as a table cell: JSON-like, ``∅`` for null."""
    if value is None:
        return "∅"
    if isinstance(value, str):
        return clip(repr(value))
    return clip(json.dumps(value, default=str))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A titled table with one header row; every cell is plain text (no markup)."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*(Text(value) for value in row))
    return result


def headers_table(headers: Headers) -> Table:
    """Every header of a record, ``dlq.*`` context first."""
    ordered = sorted(headers, key=lambda h: (not h[0].startswith(HEADER_PREFIX), h[0]))
    return table(
        "headers",
        ("name", "value"),
        [(name, clip(value.decode(errors="replace"), 400)) for name, value in ordered],
    )


def mapping_table(title: str, values: Mapping[str, Any]) -> Table:
    """A two-column table of names and values."""
    return table(title, ("field", "value"), [(k, cell(v)) for k, v in sorted(values.items())])
