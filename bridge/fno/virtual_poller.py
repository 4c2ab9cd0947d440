"""F&O catch-up through Dataverse change tracking on the virtual tables (spec B.4: row-version
change tracking is read through Dataverse change tracking on ``mserp_`` tables, 10-day token).

Data events are pushed once, and F&O retries a failed delivery only three times, one second
apart: a receiver or broker outage longer than that loses them. This poller, run by the
leader beside the Dataverse pollers, reads the virtual table's changes since its delta link
(kept in the state topic like Sales's) and publishes each as a change event on the entity's
F&O topic, reading the record from F&O OData by the key in the row (the row's columns are
``mserp_<field>``): same schema, key and version (``versionnumber`` = SysRowVersion) as a data
event, so a change seen both ways is one event id and is applied once.

Deletes come as ``$deletedEntity`` rows naming only the row id, so the poller remembers each
row id's F&O key when it sees the row (``vt|<entity>|<row id>`` in the state topic).
The first run (no delta link) and an expired link only establish the link and learn the
row ids: history before that is what ``bridge backfill`` loads, and `bridge reconcile`
finds what an expired link missed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.config import PollerSettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.reader import DataverseReader, DeltaPage, DeltaTokenExpired
from bridge.fno.data_events import key_from_columns, virtual_table
from bridge.fno.reader import FnoReader
from bridge.kafka.publisher import Publisher
from bridge.sources.base import poll_forever

log = structlog.get_logger(__name__)


class PollerState(Protocol):
    """The state store as the poller uses it (:class:`bridge.kafka.state.StateStore`)."""

    def get(self, key: str) -> Any:
        """The stored value, or ``None``."""
        ...

    async def put(self, key: str, value: Any) -> None:
        """Store ``value`` durably; ``None`` deletes the key."""
        ...


def link_key(entity: SourceEntity) -> str:
    """The state key of a virtual table's delta link."""
    return f"delta|fno|{entity.name}"


class VirtualTablePoller:
    """Polls one F&O entity's virtual table and publishes its changes; run it as a task."""

    def __init__(
        self,
        settings: PollerSettings,
        entity: SourceEntity,
        dataverse: DataverseReader,
        fno: FnoReader,
        publisher: Publisher,
        state: PollerState,
    ) -> None:
        table = virtual_table(entity)
        if table is None:
            raise ValueError(f"{entity.entity_set} has no virtual table")
        self._settings = settings
        self._entity = entity
        self._table = table
        self._entity_set = f"{table[:-1]}ies" if table.endswith("y") else f"{table}s"
        self._id = f"{table}id"
        self._dataverse = dataverse
        self._fno = fno
        self._publisher = publisher
        self._state = state

    async def run(self) -> None:
        """Poll until cancelled; transient failures are logged and retried next interval."""
        await poll_forever(
            f"virtual-table:{self._entity.name}", self.poll_once, self._settings.interval_seconds
        )

    async def poll_once(self) -> int:
        """One round: publish every change since the stored link; return how many."""
        link = self._state.get(link_key(self._entity))
        try:
            return await self._poll_from(link)
        except DeltaTokenExpired:
            log.warning(
                "virtual_delta_expired",
                entity=self._entity.name,
                action="link established again; run bridge reconcile for what it missed",
            )
            return await self._poll_from(None)

    async def _poll_from(self, link: str | None) -> int:
        learning = link is None
        published = 0
        pages = self._dataverse.changes(self._entity_set, link, self._settings.page_size)
        async for page in pages:
            published += await self._handle(page, publish=not learning)
            if page.delta_link:
                await self._state.put(link_key(self._entity), page.delta_link)
        if published:
            log.info("virtual_poll_published", entity=self._entity.name, events=published)
        return published

    async def _handle(self, page: DeltaPage, *, publish: bool) -> int:
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for row in page.changed:
            key = key_from_columns(self._entity, row)
            row_id = str(row.get(self._id) or "").lower()
            if key is None or not row_id:
                continue
            await self._state.put(self._row_key(row_id), key)
            rows.append((row, key))
        events: list[ChangeEvent] = []
        if publish and rows:
            # the row's columns are mserp_ names and the topic carries F&O's own: the
            # changed records are read from F&O, many keys per query
            records = await self._fno.read_many(self._entity, [key for _, key in rows])
            events += [
                self._event(Operation.UPDATE, record, row)
                for (row, _), record in zip(rows, records, strict=True)
                if record is not None
            ]
        for row_id in page.deleted_ids:
            key = self._state.get(self._row_key(row_id))
            if key is not None and publish:
                events.append(self._event(Operation.DELETE, key, {}))
        if not events:
            return 0
        return await self._publisher.publish([(self._entity, e) for e in events])

    def _row_key(self, row_id: str) -> str:
        return f"vt|{self._entity.name}|{row_id}"

    def _event(
        self, operation: Operation, image: dict[str, Any], row: dict[str, Any]
    ) -> ChangeEvent:
        version = row.get("versionnumber")
        source = Source(
            system=System.FNO,
            entity=self._entity.entity,
            record_id=self._entity.record_id(image),
            business_key=self._entity.business_key_of(image),
            company=str(image.get("dataAreaId") or "") or None,
            record_version=int(version) if version not in (None, "") else None,
            change_time=datetime.now(UTC),
            changed_by=row.get("_modifiedby_value"),
            capture=Capture.POLL,
        )
        if operation is Operation.DELETE:
            return ChangeEvent.create(source, operation, before=image)
        return ChangeEvent.create(source, operation, after=image)
