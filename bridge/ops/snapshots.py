"""Paged full reads of a flow's source entity, as SNAPSHOT events (backfill, reconcile).

A :class:`SnapshotSource` yields pages of events plus the cursor of the next page (an
``@odata.nextLink``), so a reader can stop after any page and resume from its cursor. One
implementation per source system; :func:`snapshot_source` picks it.

F&O records carry no version number outside business events, so F&O snapshots have none:
the consumer applies them whatever it applied before, which the read-compare-write sinks
make harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System, now_millis
from bridge.dataverse.delta_poller import record_event
from bridge.dataverse.records import normalize_web_api_record
from bridge.errors import ConfigError
from bridge.fno.reader import normalize_fno_record
from bridge.fno.sink import CROSS_COMPANY
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal

COUNT_LIMIT_EXCEEDED = "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    """One page: its events, the cursor of the next page (``None`` on the last one) and,
    when the source says so, the total number of records."""

    events: list[ChangeEvent] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None


class SnapshotSource(Protocol):
    """Every current record of one source entity, page by page."""

    entity: SourceEntity

    def pages(
        self, cursor: str | None, page_size: int, capture: Capture
    ) -> AsyncIterator[SnapshotPage]:
        """Pages from ``cursor`` (``None``: the first page); events are SNAPSHOTs captured
        as ``capture``. A cursor stays valid across processes (it is a URL)."""
        ...


def with_capture(event: ChangeEvent, capture: Capture) -> ChangeEvent:
    """The same event (same id: capture does not count) labelled with another capture."""
    if event.source.capture is capture:
        return event
    return replace(event, source=replace(event.source, capture=capture))


def _total(body: dict[str, Any]) -> int | None:
    count = body.get("@odata.count")
    if count is None or body.get(COUNT_LIMIT_EXCEEDED):
        return None
    return int(count)


class DataverseSnapshots:
    """Reads a Dataverse entity set ordered by its primary key, with ``$count`` on the
    first page (Dataverse caps that count at 5000; beyond it the total is unknown)."""

    def __init__(self, client: ApiClient, entity: SourceEntity) -> None:
        if not entity.id_attribute:
            raise ConfigError(f"entity {entity.name} has no id attribute to page by")
        self.entity = entity
        self._client = client
        self._id = entity.id_attribute

    async def pages(
        self, cursor: str | None, page_size: int, capture: Capture
    ) -> AsyncIterator[SnapshotPage]:
        """Pages of SNAPSHOT events from ``cursor`` (see :class:`SnapshotSource`)."""
        params = None if cursor else {"$count": "true", "$orderby": f"{self._id} asc"}
        path = cursor or self.entity.entity_set
        async for body in self._client.pages(path, params=params, page_size=page_size):
            yield SnapshotPage(
                events=[self._event(row, capture) for row in body.get("value", [])],
                next_cursor=body.get("@odata.nextLink"),
                total=_total(body),
            )

    def _event(self, row: dict[str, Any], capture: Capture) -> ChangeEvent:
        record = normalize_web_api_record(row)
        return with_capture(record_event(self.entity, record, Operation.SNAPSHOT), capture)


def company_filter(field_name: str, companies: CompanySettings) -> str:
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
        """Pages of SNAPSHOT events from ``cursor`` (see :class:`SnapshotSource`)."""
        params = None if cursor else self._first_query()
        path = cursor or self.entity.entity_set
        async for body in self._client.pages(path, params=params, page_size=page_size):
            yield SnapshotPage(
                events=[self._event(row, capture) for row in body.get("value", [])],
                next_cursor=body.get("@odata.nextLink"),
                total=_total(body),
            )

    def _first_query(self) -> dict[str, str]:
        query = {
            **CROSS_COMPANY,
            "$count": "true",
            "$orderby": ",".join(self.entity.key_attributes),
        }
        if "dataAreaId" in self.entity.key_attributes and self._companies.map:
            query["$filter"] = company_filter("dataAreaId", self._companies)
        return query

    def _event(self, row: dict[str, Any], capture: Capture) -> ChangeEvent:
        record = normalize_fno_record(row)
        source = Source(
            system=System.FNO,
            entity=self.entity.entity,
            record_id=self.entity.record_id(record),
            business_key=str(record.get(self.entity.business_key) or "") or None,
            company=str(record.get("dataAreaId") or "") or None,
            change_time=now_millis(),
            capture=capture,
        )
        return ChangeEvent.create(source, Operation.SNAPSHOT, after=record)


def snapshot_source(
    entity: SourceEntity, clients: Mapping[System, ApiClient], companies: CompanySettings
) -> SnapshotSource:
    """The snapshot reader of ``entity``'s system."""
    if entity.system is System.SALES:
        return DataverseSnapshots(clients[System.SALES], entity)
    return FnoSnapshots(clients[System.FNO], entity, companies)
