"""Resolve the source record's Dataverse lookups to the business keys a template maps.

A Sales record names related records by GUID (``_customerid_value``); F&O needs their
business keys (the customer's account number). Each template lookup reads the named record
(the first of its possible tables that has it) and adds the wanted columns to a copy of the
image as ``<lookup>.<alias>``. Reads are not cached: header state such as a quote's status
must be current when its lines are filtered on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.dataverse.metadata import DataverseMetadata
from bridge.errors import DependencyMissing, NotFound
from bridge.http.client import ApiClient
from bridge.mapping.template import Lookup


class LookupResolver:
    """Adds resolved lookup columns to Sales images."""

    def __init__(self, client: ApiClient, metadata: DataverseMetadata) -> None:
        self._client = client
        self._metadata = metadata

    async def enrich(self, lookups: Sequence[Lookup], image: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``image`` with every lookup's columns; raises :class:`DependencyMissing`
        when a lookup names a record that none of its tables has."""
        enriched = dict(image)
        for lookup in lookups:
            guid = image.get(lookup.field)
            if not guid:
                continue
            enriched.update(await self._resolve(lookup, str(guid), image))
        return enriched

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
