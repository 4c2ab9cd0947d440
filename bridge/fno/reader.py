"""Reads from the F&O OData API: one record by its key fields, or pages of a filtered set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bridge.contract.catalog import SourceEntity
from bridge.fno.sink import CROSS_COMPANY
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal


def normalize_fno_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An F&O record without OData annotations."""
    return {key: value for key, value in raw.items() if "@" not in key}


def filter_expression(values: Mapping[str, Any]) -> str:
    """``a eq 'x' and b eq 2`` for string and number values; dates are left out (F&O keys
    with dates are matched on their other parts, which identify the record as well)."""
    parts = [
        f"{name} eq {odata_literal(value)}"
        for name, value in values.items()
        if isinstance(value, str | int | float) and not _looks_like_date(value)
    ]
    return " and ".join(parts)


def _matched_parts(values: Mapping[str, Any]) -> tuple[str, ...]:
    """What :func:`filter_expression` compares, as F&O compares it (without case)."""
    return tuple(
        f"{name}={str(value).casefold()}"
        for name, value in values.items()
        if isinstance(value, str | int | float) and not _looks_like_date(value)
    )


def _looks_like_date(value: Any) -> bool:
    return isinstance(value, str) and (
        value.startswith("/Date(") or (value[4:5] == "-" and "T" in value)
    )


class FnoReader:
    """Read access to F&O entity sets, across companies."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def read(self, entity: SourceEntity, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record with these key values, or ``None`` when it does not exist."""
        rows = await self.query(entity.entity_set, key, top=2)
        return rows[0] if rows else None

    async def read_many(
        self, entity: SourceEntity, keys: Sequence[Mapping[str, Any]], per_request: int = 40
    ) -> list[dict[str, Any] | None]:
        """The records with these key values, in the order of ``keys`` (``None`` where one
        does not exist): one query per ``per_request`` keys, their filters joined by ``or``
        (kept short enough for a URL)."""
        found: dict[tuple[str, ...], dict[str, Any]] = {}
        for start in range(0, len(keys), per_request):
            chunk = keys[start : start + per_request]
            expression = " or ".join(f"({filter_expression(key)})" for key in chunk)
            params = {**CROSS_COMPANY, "$filter": expression}
            async for row in self.rows(entity.entity_set, params):
                key_values = {name: row.get(name) for name in entity.key_attributes}
                found.setdefault(_matched_parts(key_values), row)
        return [found.get(_matched_parts(key)) for key in keys]

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Every record of ``entity`` whose fields equal ``match`` (e.g. an order's lines)."""
        return await self.query(entity.entity_set, match)

    async def query(
        self, entity_set: str, match: Mapping[str, Any], *, top: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record whose fields equal ``match`` (all pages)."""
        params = {**CROSS_COMPANY, "$filter": filter_expression(match)}
        if top:
            params["$top"] = str(top)
        return [row async for row in self.rows(entity_set, params)]

    async def rows(
        self, entity_set: str, params: Mapping[str, str], page_size: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a query, following ``@odata.nextLink``."""
        async for page in self.client.pages(entity_set, params=params, page_size=page_size):
            for row in page.get("value", []):
                yield normalize_fno_record(row)
