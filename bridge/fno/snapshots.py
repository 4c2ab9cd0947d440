"""Paged full reads of an F&O entity set across the companies that take part
(:class:`~bridge.sources.snapshots.SnapshotSource`). F&O records carry no version outside
data events, so F&O snapshots have none: the engine confirms them against F&O before
applying them, and the read-compare-write sinks make repeating them harmless."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture
from bridge.fno.reader import normalize_fno_record
from bridge.fno.sink import CROSS_COMPANY
from bridge.fno.source import COMPANY, record_snapshot
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.sources.snapshots import SnapshotPage, page_total


def company_filter(companies: CompanySettings, field_name: str = COMPANY) -> str:
    """``dataAreaId eq 'a' or dataAreaId eq 'b'``: the companies that take part."""
    return " or ".join(f"{field_name} eq {odata_literal(c)}" for c in sorted(companies.map))


class FnoSnapshots:
    """Reads an F&O entity set across companies, only the mapped ones, ordered by its key."""

    def __init__(self, client: ApiClient, entity: SourceEntity, companies: CompanySettings):
        self.entity = entity
        self._client = client
        self._companies = companies

    async def pages(
        self, cursor: str | None, page_size: int, capture: Capture
    ) -> AsyncIterator[SnapshotPage]:
        """Pages of SNAPSHOT events from ``cursor`` (see
        :class:`~bridge.sources.snapshots.SnapshotSource`)."""
        params = None if cursor else self._first_query()
        path = cursor or self.entity.entity_set
        async for body in self._client.pages(path, params=params, page_size=page_size):
            yield SnapshotPage(
                events=[
                    record_snapshot(self.entity, normalize_fno_record(row), capture)
                    for row in body.get("value", [])
                ],
                next_cursor=body.get("@odata.nextLink"),
                total=page_total(body),
            )

    def _first_query(self) -> dict[str, str]:
        query = {
            **CROSS_COMPANY,
            "$count": "true",
            "$orderby": ",".join(self.entity.key_attributes),
        }
        if COMPANY in self.entity.key_attributes and self._companies.map:
            query["$filter"] = company_filter(self._companies)
        return query
