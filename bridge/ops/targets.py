"""Paged reads of a flow's target records, for reconcile. Reads only; sinks write.

A reader gives each target record in the terms of the template, so :mod:`bridge.ops.drift`
compares both systems the same way: every mapped field under its target name and, for
Dataverse, every lookup (``_<field>_value``, a GUID) as the business key the template binds
it by (:mod:`bridge.ops.lookup_keys`), under the field's name (``productid`` = ``'P-1'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.config import CompanySettings
from bridge.contract.envelope import System
from bridge.dataverse.metadata import DataverseMetadata
from bridge.dataverse.records import normalize_web_api_record
from bridge.fno.sink import CROSS_COMPANY
from bridge.fno.snapshots import company_filter
from bridge.http.client import ApiClient
from bridge.mapping.template import BindCandidate, Template
from bridge.mapping.writes import BindRef, TargetWrite
from bridge.ops.lookup_keys import LookupKeys, bound_through, lookup_column


@dataclass(frozen=True, slots=True)
class TargetColumns:
    """What reconcile reads of each target record: plain ``fields``, and ``lookups`` (a
    Dataverse lookup attribute and the tables its business key may name)."""

    fields: tuple[str, ...]
    lookups: Mapping[str, tuple[BindCandidate, ...]] = field(default_factory=dict)


def target_columns(template: Template, writes: Iterable[TargetWrite] = ()) -> TargetColumns:
    """The key fields, the company field, every field of the template and every field the
    mapped ``writes`` carry (rules add some, e.g. a line's discount amount); the fields the
    template binds by business key, and key parts that are lookups, are lookups."""
    through = {rule.target for rule in template.fields if rule.bind and bound_through(rule.bind)}
    lookups = {
        rule.target: tuple(rule.bind)
        for rule in template.fields
        if rule.bind and rule.target not in through
    }
    names = [*template.target.key]
    if template.target.company_field:
        names.append(template.target.company_field)
    names += [rule.target for rule in template.fields]
    for write in writes:
        for name, value in {**write.key, **write.binds}.items():
            if isinstance(value, BindRef) and name not in through:
                lookups.setdefault(name, value.candidates)
        names += [*write.key, *write.body, *write.binds]
    fields = tuple(n for n in dict.fromkeys(names) if n not in lookups and n not in through)
    return TargetColumns(fields, lookups)


class TargetRecords(Protocol):
    """Every record of a template's target entity set in the companies that take part."""

    def records(
        self,
        template: Template,
        columns: TargetColumns,
        companies: CompanySettings,
        page_size: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The records, with at least every one of ``columns`` (lookups by business key)."""
        ...


class FnoTargetRecords:
    """Pages through an F&O entity set across companies, filtered to the mapped ones."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def records(
        self,
        template: Template,
        columns: TargetColumns,
        companies: CompanySettings,
        page_size: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The records of ``template``'s entity set (see :class:`TargetRecords`)."""
        params = {**CROSS_COMPANY, "$select": ",".join(columns.fields)}
        company_field = template.target.company_field
        if company_field and companies.map:
            params["$filter"] = company_filter(companies, company_field)
        pages = self._client.pages(template.target.entity_set, params=params, page_size=page_size)
        async for body in pages:
            for row in body.get("value", []):
                yield row


class DataverseTargetRecords:
    """Pages through a Dataverse entity set by primary key and gives each lookup as the
    business key of the record it names: ``None`` for an empty lookup, and for a GUID that
    names no record of the lookup's tables, the GUID with ``(not in <tables>)``, which
    equals no business key."""

    def __init__(self, client: ApiClient, metadata: DataverseMetadata) -> None:
        self._client = client
        self._metadata = metadata
        self._keys = LookupKeys(client, metadata)

    async def records(
        self,
        template: Template,
        columns: TargetColumns,
        companies: CompanySettings,
        page_size: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The records of ``template``'s entity set (see :class:`TargetRecords`)."""
        entity_set = template.target.entity_set
        primary = (await self._metadata.by_entity_set(entity_set)).primary_id
        selected = [*columns.fields, *(lookup_column(name) for name in columns.lookups)]
        params = {"$select": ",".join(selected), "$orderby": f"{primary} asc"}
        async for body in self._client.pages(entity_set, params=params, page_size=page_size):
            rows = [normalize_web_api_record(row) for row in body.get("value", [])]
            for name, candidates in columns.lookups.items():
                await self._resolve(rows, name, candidates)
            for row in rows:
                yield row

    async def _resolve(
        self, rows: list[dict[str, Any]], name: str, candidates: tuple[BindCandidate, ...]
    ) -> None:
        """Set ``row[name]`` to the business key of each row's lookup ``name``."""
        column = lookup_column(name)
        guids = [str(row.get(column) or "").lower() for row in rows]
        keys = await self._keys.resolve(candidates, guids)
        tables = " or ".join(dict.fromkeys(c.entity_set for c in candidates))
        for row, guid in zip(rows, guids, strict=True):
            row[name] = _business_key(guid, keys, tables)


def _business_key(guid: str, keys: Mapping[str, Any], tables: str) -> Any:
    if not guid:
        return None
    return keys.get(guid, f"{guid} (not in {tables})")


def target_records(template: Template, clients: Mapping[System, ApiClient]) -> TargetRecords:
    """The target reader of ``template``'s target system."""
    if template.target.system is System.FNO:
        return FnoTargetRecords(clients[System.FNO])
    sales = clients[System.SALES]
    return DataverseTargetRecords(sales, DataverseMetadata(sales))
