"""Dataverse change tracking: the fallback and catch-up path beside webhooks.

The delta link is stored in the state topic only after the events of its pages were
acknowledged by Kafka, so a crash re-reads changes rather than skipping them. A first run
(no stored link) or an expired link triggers a full resync: every current record is
published as a SNAPSHOT event. Deletes that happened while a link was expired cannot be
seen by change tracking; ``bridge reconcile`` finds them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from bridge.config import PollerSettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.reader import DataverseReader, DeltaPage, DeltaTokenExpired
from bridge.dataverse.records import parse_iso
from bridge.kafka.publisher import Publisher
from bridge.kafka.state import StateStore
from bridge.sources.base import poll_forever

log = structlog.get_logger(__name__)


def delta_state_key(entity: SourceEntity) -> str:
    """The state-store key of an entity's delta link."""
    return f"delta|{entity.system.lower()}|{entity.name}"


def record_event(entity: SourceEntity, record: dict[str, Any], operation: Operation) -> ChangeEvent:
    """The change event of a record read from the Web API."""
    version = record.get("versionnumber")
    source = Source(
        system=System.SALES,
        entity=entity.entity,
        record_id=str(record[entity.id_attribute or ""]).lower(),
        business_key=entity.business_key_of(record),
        record_version=int(version) if version is not None else None,
        change_time=parse_iso(record.get("modifiedon")) or datetime.now(UTC),
        changed_by=record.get("_modifiedby_value"),
        capture=Capture.POLL if operation is not Operation.SNAPSHOT else Capture.BACKFILL,
    )
    return ChangeEvent.create(source, operation, after=record)


def delete_event(entity: SourceEntity, record_id: str) -> ChangeEvent:
    """The change event of a ``$deletedEntity`` row (no image, no version)."""
    source = Source(
        system=System.SALES,
        entity=entity.entity,
        record_id=record_id,
        change_time=datetime.now(UTC),
        capture=Capture.POLL,
    )
    return ChangeEvent.create(source, Operation.DELETE)


def _operation(record: dict[str, Any], initial: bool) -> Operation:
    if initial:
        return Operation.SNAPSHOT
    created, modified = record.get("createdon"), record.get("modifiedon")
    return Operation.CREATE if created and created == modified else Operation.UPDATE


class DeltaPoller:
    """Polls one entity's changes and publishes them; run it as a task."""

    def __init__(
        self,
        settings: PollerSettings,
        entity: SourceEntity,
        reader: DataverseReader,
        publisher: Publisher,
        state: StateStore,
    ) -> None:
        self._settings = settings
        self._entity = entity
        self._reader = reader
        self._publisher = publisher
        self._state = state
        self._key = delta_state_key(entity)

    async def run(self) -> None:
        """Poll until cancelled; transient failures are logged and retried next interval."""
        await poll_forever(
            f"delta:{self._entity.name}", self.poll_once, self._settings.interval_seconds
        )

    async def poll_once(self) -> int:
        """One round: publish every change since the stored link; return how many."""
        link = self._state.get(self._key)
        try:
            return await self._poll_from(link)
        except DeltaTokenExpired:
            log.warning("delta_token_expired", entity=self._entity.name, action="full_resync")
            await self._state.put(self._key, None)
            return await self._poll_from(None)

    async def _poll_from(self, link: str | None) -> int:
        initial = link is None
        published = 0
        async for page in self._reader.changes(
            self._entity.entity_set, link, self._settings.page_size
        ):
            published += await self._publish_page(page, initial)
            if page.delta_link:
                await self._state.put(self._key, page.delta_link)
        if published:
            log.info("poll_published", entity=self._entity.name, events=published, initial=initial)
        return published

    async def _publish_page(self, page: DeltaPage, initial: bool) -> int:
        events = [record_event(self._entity, r, _operation(r, initial)) for r in page.changed]
        events += [delete_event(self._entity, record_id) for record_id in page.deleted_ids]
        return await self._publisher.publish([(self._entity, event) for event in events])
