"""Dataverse entity metadata the bridge needs, read once from ``EntityDefinitions``."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import DependencyMissing
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal


@dataclass(frozen=True, slots=True)
class EntityNames:
    """The names one Dataverse table goes by."""

    logical_name: str
    entity_set: str
    primary_id: str


class DataverseMetadata:
    """Resolves logical names and entity sets to each other, cached for the process."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._by_logical: dict[str, EntityNames] = {}
        self._by_set: dict[str, EntityNames] = {}

    async def by_logical_name(self, logical_name: str) -> EntityNames:
        """Names of the table with this logical name."""
        if logical_name not in self._by_logical:
            await self._load(f"LogicalName eq {odata_literal(logical_name)}", logical_name)
        return self._by_logical[logical_name]

    async def by_entity_set(self, entity_set: str) -> EntityNames:
        """Names of the table behind this entity set."""
        if entity_set not in self._by_set:
            await self._load(f"EntitySetName eq {odata_literal(entity_set)}", entity_set)
        return self._by_set[entity_set]

    async def _load(self, filter_: str, what: str) -> None:
        body = await self._client.get_json(
            "EntityDefinitions",
            params={"$filter": filter_, "$select": "LogicalName,EntitySetName,PrimaryIdAttribute"},
        )
        rows = body.get("value", [])
        if not rows:
            raise DependencyMissing(f"Dataverse has no table {what!r}")
        names = EntityNames(
            str(rows[0]["LogicalName"]),
            str(rows[0]["EntitySetName"]),
            str(rows[0]["PrimaryIdAttribute"]),
        )
        self._by_logical[names.logical_name] = names
        self._by_set[names.entity_set] = names
