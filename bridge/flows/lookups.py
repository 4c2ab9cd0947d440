"""Resolve a source record's lookups to the columns a template maps and filters on.

A Sales record names related records by GUID (``_customerid_value``); F&O needs their
business keys (the customer's account number). Each template lookup reads the named record
(the first of its possible tables that has it) and adds the wanted columns to a copy of the
image as ``<lookup>.<alias>``. An F&O lookup (``fno_lookups``) reads the F&O record whose
fields equal values of the image (an invoice's customer, to see whether the P2C solution
maintains it). Reads are not cached: header state such as a quote's status must be current
when its lines are filtered on it.

Selection comes before lookups (spec §5): before each lookup the template's filter is
judged on what is known so far, so a record the filter leaves out is skipped before a
lookup that would fail for it — a contact whose company is a contact is not a contact
person, and not a missing prerequisite either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.dataverse.metadata import DataverseMetadata
from bridge.errors import DependencyMissing, NotFound
from bridge.fno.reader import FnoReader
from bridge.http.client import ApiClient
from bridge.mapping.engine import lookup_columns, lookup_match, selection_miss
from bridge.mapping.template import Lookup, Template


class LookupResolver:
    """Adds resolved lookup columns to images: Dataverse lookups, then F&O lookups."""

    def __init__(
        self, client: ApiClient, metadata: DataverseMetadata, fno: FnoReader | None = None
    ) -> None:
        self._client = client
        self._metadata = metadata
        self._fno = fno

    async def enrich(
        self, template: Template, image: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """A copy of ``image`` with the template's lookup columns, and why the record is
        outside the template's selection (``None`` if it is not). Stops at the first
        lookup the selection makes unnecessary. Raises :class:`DependencyMissing` when a
        lookup names a record that does not exist."""
        enriched, done = dict(image), list[str]()
        for lookup in template.lookups:
            if miss := selection_miss(template, enriched, done):
                return enriched, miss
            guid = image.get(lookup.field)
            if guid:
                enriched.update(await self._resolve(lookup, str(guid), image))
            done.append(lookup.name)
        for fno_lookup in template.fno_lookups:
            if miss := selection_miss(template, enriched, done):
                return enriched, miss
            match = lookup_match(fno_lookup, enriched)
            record = None
            if match is not None:
                record = await self._fno_record(fno_lookup.entity_set, match)
            enriched.update(lookup_columns(fno_lookup, record))
            done.append(fno_lookup.name)
        return enriched, None

    async def _fno_record(self, entity_set: str, match: Mapping[str, Any]) -> dict[str, Any]:
        if self._fno is None:
            raise DependencyMissing(f"no F&O reader to look up {entity_set}")
        rows = await self._fno.query(entity_set, match, top=1)
        if not rows:
            text = ",".join(f"{k}={v}" for k, v in match.items())
            raise DependencyMissing(f"{entity_set} {text} does not exist in F&O yet")
        return rows[0]

    async def _resolve(self, lookup: Lookup, guid: str, image: Mapping[str, Any]) -> dict[str, Any]:
        hinted = image.get(lookup.type_field) if lookup.type_field else None
        tables = [hinted] if hinted in lookup.targets else list(lookup.targets)
        for table in tables:
            columns = lookup.targets[str(table)]
            record = await self._read(str(table), guid, sorted(set(columns.values())))
            if record is not None:
                return {f"{lookup.name}.{alias}": record.get(col) for alias, col in columns.items()}
        raise DependencyMissing(f"{lookup.field} {guid} names no {' or '.join(map(str, tables))}")

    async def _read(self, table: str, guid: str, columns: list[str]) -> dict[str, Any] | None:
        entity_set = (await self._metadata.by_logical_name(table)).entity_set
        try:
            return await self._client.get_json(
                f"{entity_set}({guid})", params={"$select": ",".join(columns)}
            )
        except NotFound:
            return None
