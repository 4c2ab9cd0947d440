"""System query options: parse ``$select/$filter/$orderby/$top/$skip/$count/$expand`` and
apply them to a list of records.

The caller passes a ``schema`` (property name -> field) so every option is validated
against the entity; errors are 400 :class:`~bridge.emulators.common.errors.ApiError`. Records are
accessed through a resolver, so the same code serves Dataverse rows, F&O rows and metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from bridge.emulators.common.errors import bad_request
from bridge.emulators.odata.filter import Dialect, Node, Schema, compile_filter, matches
from bridge.emulators.odata.values import comparable

T = TypeVar("T")

KNOWN_OPTIONS = frozenset(
    {
        "$select",
        "$filter",
        "$orderby",
        "$top",
        "$skip",
        "$count",
        "$expand",
        "$skiptoken",
        "$deltatoken",
        "$format",
    }
)


@dataclass(frozen=True)
class Expand:
    """One ``$expand`` item with its nested options (``$select``, ``$filter``...)."""

    name: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryOptions:
    """Validated query options of one request."""

    select: tuple[str, ...] | None = None
    filter: Node | None = None
    orderby: tuple[tuple[str, bool], ...] = ()
    top: int | None = None
    skip: int | None = None
    count: bool = False
    expand: tuple[Expand, ...] = ()
    raw: Mapping[str, str] = field(default_factory=dict)


def _unknown(name: str, type_name: str) -> Exception:
    return bad_request(f"Could not find a property named '{name}' on type '{type_name}'.")


def split_top_level(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside parentheses and quotes; items are stripped."""
    items: list[str] = []
    depth, quoted, start = 0, False, 0
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif char == separator and depth == 0 and not quoted:
            items.append(text[start:index].strip())
            start = index + 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def parse_select(text: str | None, schema: Schema, type_name: str) -> tuple[str, ...] | None:
    """``$select`` as property names (``None`` = all)."""
    if text is None or text.strip() in ("", "*"):
        return None
    names = tuple(split_top_level(text, ","))
    for name in names:
        if schema(name) is None:
            raise _unknown(name, type_name)
    return names


def parse_orderby(text: str | None, schema: Schema, type_name: str) -> tuple[tuple[str, bool], ...]:
    """``$orderby`` as ``(property, descending)`` pairs."""
    if not text:
        return ()
    order: list[tuple[str, bool]] = []
    for item in split_top_level(text, ","):
        name, _, direction = item.partition(" ")
        direction = direction.strip().lower()
        if direction not in ("", "asc", "desc"):
            raise bad_request(f"Syntax error in $orderby: '{item}'.")
        if schema(name) is None:
            raise _unknown(name, type_name)
        order.append((name, direction == "desc"))
    return tuple(order)


def parse_count(text: str | None) -> bool:
    """``$count=true|false``."""
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise bad_request(f"'{text}' is not a valid count option.")
    return text.lower() == "true"


def parse_int_option(name: str, text: str | None) -> int | None:
    """A non-negative integer option such as ``$top``."""
    if text is None:
        return None
    if not text.isdigit():
        raise bad_request(f"Invalid value '{text}' for {name} query option found.")
    return int(text)


def parse_expand(text: str | None) -> tuple[Expand, ...]:
    """``$expand=a,b($select=x;$filter=y)``."""
    if not text:
        return ()
    items = []
    for item in split_top_level(text, ","):
        name, paren, rest = item.partition("(")
        options: dict[str, str] = {}
        if paren:
            for option in split_top_level(rest.rstrip(")"), ";"):
                key, _, value = option.partition("=")
                options[key.strip()] = value.strip()
        items.append(Expand(name.strip(), options))
    return tuple(items)


def parse_query(
    params: Mapping[str, str],
    schema: Schema,
    type_name: str,
    dialect: Dialect,
    *,
    allow_skip: bool,
    filter_schema: Schema | None = None,
) -> QueryOptions:
    """Validate and parse the system query options of a collection request; ``$filter`` is
    checked against ``filter_schema`` when given (e.g. one that knows navigation paths)."""
    for name in params:
        if name.startswith("$") and name not in KNOWN_OPTIONS:
            raise bad_request(f"The query parameter '{name}' is not supported.")
    if "$skip" in params and not allow_skip:
        raise bad_request("The query parameter $skip is not supported")
    text = params.get("$filter")
    return QueryOptions(
        select=parse_select(params.get("$select"), schema, type_name),
        filter=compile_filter(text, filter_schema or schema, type_name, dialect) if text else None,
        orderby=parse_orderby(params.get("$orderby"), schema, type_name),
        top=parse_int_option("$top", params.get("$top")),
        skip=parse_int_option("$skip", params.get("$skip")),
        count=parse_count(params.get("$count")),
        expand=parse_expand(params.get("$expand")),
        raw=dict(params),
    )


Resolve = Callable[[T, str], Any]


def filter_rows(
    rows: Sequence[T], node: Node | None, resolve: Resolve[T], dialect: Dialect
) -> list[T]:
    """The rows that pass ``node``."""
    if node is None:
        return list(rows)
    return [row for row in rows if matches(node, _bind(resolve, row), dialect)]


def _bind(resolve: Resolve[T], row: T) -> Callable[[str], Any]:
    return lambda name: resolve(row, name)


def sort_key(value: Any) -> tuple[int, Any]:
    """A value as ordered by ``$orderby``: nulls first, text case-insensitively, instants
    as timestamps (JSON-safe, so paging cookies can carry it)."""
    value = comparable(value)
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, datetime):
        return (1, value.timestamp())
    if isinstance(value, date):
        return (1, value.toordinal())
    return (1, value)


def order_rows(
    rows: Sequence[T], orderby: Sequence[tuple[str, bool]], resolve: Resolve[T]
) -> list[T]:
    """Rows sorted by ``orderby`` (nulls first ascending); stable for equal keys."""
    ordered = list(rows)
    for name, descending in reversed(orderby):
        ordered.sort(key=lambda row: sort_key(resolve(row, name)), reverse=descending)
    return ordered
