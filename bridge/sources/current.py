"""The engine's view of a source record as it is now (for events without a version)."""

from __future__ import annotations

from typing import Any

from bridge.contract.catalog import source_entity
from bridge.contract.envelope import ChangeEvent, System
from bridge.flows.processor import snapshot_event
from bridge.sources.dataverse_reader import DataverseReader
from bridge.sources.fno_reader import FnoReader


class SourceRecords:
    """Reads the record an event is about from its own system (Dataverse by GUID, F&O by
    its key fields) and returns it as a snapshot event, or ``None`` when it is gone."""

    def __init__(self, sales: DataverseReader, fno: FnoReader) -> None:
        self._sales = sales
        self._fno = fno

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record as the source holds it now."""
        entity = source_entity(event.source.system, event.source.entity)
        record: dict[str, Any] | None
        if event.source.system is System.SALES:
            record = await self._sales.read(entity, event.source.record_id)
        else:
            record = await self._fno.read(entity, fno_key(entity.key_attributes, event))
        return None if record is None else snapshot_event(entity, record)


def fno_key(names: tuple[str, ...], event: ChangeEvent) -> dict[str, Any]:
    """An F&O record's key fields, from the event's image, else from its record id (the
    key values joined by ``|``, lower-cased; F&O compares keys without case)."""
    image = event.image
    if all(image.get(name) not in (None, "") for name in names):
        return {name: image[name] for name in names}
    parts = event.source.record_id.split("|")
    return dict(zip(names, parts, strict=False))
