"""Finance and Operations as a source system: records are keyed by company
(``dataAreaId``) and natural key fields; OData gives them no version, so a snapshot read
through OData is unversioned and the engine confirms it before applying it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent
from bridge.fno.reader import FnoReader
from bridge.sources.base import entity_of, snapshot

COMPANY = "dataAreaId"


class FnoSource:
    """:class:`~bridge.sources.base.SourceSystem` of F&O."""

    def __init__(self, reader: FnoReader) -> None:
        self._reader = reader

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """An F&O record as a SNAPSHOT event (no version: OData gives none)."""
        return record_snapshot(entity, record, capture, header)

    def company(self, event: ChangeEvent, companies: CompanySettings) -> str | None:
        """The record's own company, when it takes part in the sync."""
        return event_company(event, companies)

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record by its key fields, as F&O holds it now."""
        entity = entity_of(event)
        record = await self._reader.read(entity, key_of(entity.key_attributes, event))
        return None if record is None else self.snapshot(entity, record)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Records whose fields equal ``match``, across companies."""
        return await self._reader.children(entity, match)


def record_snapshot(
    entity: SourceEntity,
    record: Mapping[str, Any],
    capture: Capture,
    header: ChangeEvent | None = None,
) -> ChangeEvent:
    """An F&O record as a SNAPSHOT event of its own company, without a version."""
    company = record.get(COMPANY)
    return snapshot(entity, record, header, capture, company=str(company) if company else None)


def key_of(names: tuple[str, ...], event: ChangeEvent) -> dict[str, Any]:
    """An F&O record's key fields, from the event's image, else from its record id (the
    key values joined by ``|``, lower-cased; F&O compares keys without case)."""
    image = event.image
    if all(image.get(name) not in (None, "") for name in names):
        return {name: image[name] for name in names}
    return dict(zip(names, event.source.record_id.split("|"), strict=False))


def event_company(event: ChangeEvent, companies: CompanySettings) -> str | None:
    """The company of an F&O record: its own, when it takes part in the sync."""
    company = event.source.company or event.image.get(COMPANY)
    return str(company) if companies.is_mapped(company) else None
