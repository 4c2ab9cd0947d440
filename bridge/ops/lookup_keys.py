"""Resolve Dataverse lookup GUIDs back to the business keys a template binds them by.

The Dataverse sink binds a lookup by business key: it finds the record of the first
candidate table whose ``match`` column holds the mapped value (``products.productnumber =
'P-1'``) and stores that record's GUID in ``_<field>_value``. Reconcile goes the other way,
on its own, so a fault in the sink's resolution is not repeated by the check: it reads the
record a GUID names, in the first candidate table that has it, and takes its ``match``
column (for a ``via`` candidate, the record's ``field`` lookup column, then the
``match`` column of the record it names). GUIDs are read in batches with ``Microsoft.Dynamics.CRM.In`` on the table's
primary key, and every answer, found or not, is cached for the rest of the reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from bridge.dataverse.metadata import DataverseMetadata
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.mapping.template import BindCandidate

BATCH: Final = 50
"""GUIDs per query: 50 keep a request URL near 2 KB, far below Dataverse's limit."""

_ABSENT: Final = object()
"""Cached for a GUID the table does not have (``None`` is a record with an empty column)."""


def lookup_column(name: str) -> str:
    """The Web API column of a lookup attribute: ``productid`` → ``_productid_value``."""
    return f"_{name}_value"


class LookupKeys:
    """Business keys of the records that Dataverse lookup GUIDs name, cached per reconcile."""

    def __init__(self, client: ApiClient, metadata: DataverseMetadata, batch: int = BATCH):
        self._client = client
        self._metadata = metadata
        self._batch = batch
        self._values: dict[tuple[str, str, str], Any] = {}

    async def resolve(
        self, candidates: Sequence[BindCandidate], guids: Iterable[str]
    ) -> dict[str, Any]:
        """The business key of every GUID that names a record of one of ``candidates``
        (tried in order, like the sink); a GUID no candidate table has is left out, and a
        record whose key column is empty gives ``None``. GUIDs are lower-cased."""
        pending = sorted({guid.lower() for guid in guids if guid})
        keys: dict[str, Any] = {}
        for candidate in candidates:
            if not pending:
                break
            found = await self._candidate_keys(candidate, pending)
            keys.update(found)
            pending = [guid for guid in pending if guid not in found]
        return keys

    async def _candidate_keys(self, candidate: BindCandidate, guids: list[str]) -> dict[str, Any]:
        if candidate.match is not None:
            return await self._column(candidate.entity_set, candidate.match, guids)
        via = candidate.via
        if via is None:  # a validated candidate has one of match and via
            return {}
        links = await self._column(candidate.entity_set, via.field, guids)
        linked = sorted({str(link).lower() for link in links.values() if link})
        names = await self._column(via.entity_set, via.match, linked)
        return {
            guid: names.get(str(link).lower()) if link else None for guid, link in links.items()
        }

    async def _column(self, entity_set: str, column: str, guids: list[str]) -> dict[str, Any]:
        """``column`` of each GUID's record in ``entity_set``; GUIDs it lacks are left out."""
        unknown = [guid for guid in guids if (entity_set, column, guid) not in self._values]
        for start in range(0, len(unknown), self._batch):
            await self._read(entity_set, column, unknown[start : start + self._batch])
        values = {guid: self._values[(entity_set, column, guid)] for guid in guids}
        return {guid: value for guid, value in values.items() if value is not _ABSENT}

    async def _read(self, entity_set: str, column: str, guids: list[str]) -> None:
        primary = (await self._metadata.by_entity_set(entity_set)).primary_id
        literals = ",".join(odata_literal(guid) for guid in guids)
        params = {
            "$select": f"{primary},{column}",
            "$filter": f"Microsoft.Dynamics.CRM.In(PropertyName={odata_literal(primary)},"
            f"PropertyValues=[{literals}])",
        }
        for guid in guids:
            self._values[(entity_set, column, guid)] = _ABSENT
        async for body in self._client.pages(entity_set, params=params):
            for row in body.get("value", []):
                guid = str(row.get(primary) or "").lower()
                self._values[(entity_set, column, guid)] = row.get(column)


def bound_through(candidates: Iterable[BindCandidate]) -> bool:
    """Whether a lookup is bound to what another record points at (the invoice's owner is
    the order's owner): reconcile does not compare those, since the value the source names
    (an order number) is not the bound record's key."""
    return all(candidate.through is not None for candidate in candidates)
