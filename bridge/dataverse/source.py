"""Dataverse as a source system: records carry ``versionnumber`` (a row version increasing
across the organisation), their last modifier, and their owning business unit, which the
company map turns into an F&O company."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent
from bridge.dataverse.reader import DataverseReader
from bridge.dataverse.records import normalize_web_api_record
from bridge.http.odata import Guid
from bridge.sinks.batching import Address, BatchedReads
from bridge.sources.base import entity_of, snapshot

BUSINESS_UNIT = "_owningbusinessunit_value"


class DataverseSource:
    """:class:`~bridge.sources.base.SourceSystem` of Dataverse.

    With ``reads``, the records the engine confirms at the same moment (every first change
    of a backlog) are read in one ``$filter`` query per table instead of one GET each."""

    def __init__(self, reader: DataverseReader, reads: BatchedReads | None = None) -> None:
        self._reader = reader
        self._reads = reads

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """A Dataverse record as a SNAPSHOT event."""
        version = record.get("versionnumber")
        return snapshot(
            entity,
            record,
            header,
            capture,
            version=int(version) if isinstance(version, int) else None,
            # the last modifier: a record the bridge wrote last is its own echo
            changed_by=record.get("_modifiedby_value"),
        )

    def company(self, event: ChangeEvent, companies: CompanySettings) -> str | None:
        """The company of the record's owning business unit."""
        return event_company(event, companies)

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record by its GUID, as Dataverse holds it now."""
        entity = entity_of(event)
        record_id = event.source.record_id
        if self._reads is None or not entity.id_attribute:
            record = await self._reader.read(entity, record_id)
        else:
            address = Address(
                entity.entity_set,
                {entity.id_attribute: Guid(record_id)},
                f"{entity.entity_set}({record_id})",
            )
            raw = await self._reads.read(address)
            record = None if raw is None else normalize_web_api_record(raw)
        return None if record is None else self.snapshot(entity, record)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Records whose columns equal ``match``."""
        return await self._reader.children(entity, match)


def event_company(event: ChangeEvent, companies: CompanySettings) -> str | None:
    """The company of a Dataverse record: its owning business unit's."""
    return companies.for_business_unit(event.image.get(BUSINESS_UNIT))
