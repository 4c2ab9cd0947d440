"""Paged full reads of a Dataverse table (:class:`~bridge.sources.snapshots.SnapshotSource`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation
from bridge.dataverse.delta_poller import record_event
from bridge.dataverse.records import normalize_web_api_record
from bridge.errors import ConfigError
from bridge.http.client import ApiClient
from bridge.sources.snapshots import SnapshotPage, page_total, with_capture


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
        """Pages of SNAPSHOT events from ``cursor`` (see
        :class:`~bridge.sources.snapshots.SnapshotSource`)."""
        params = None if cursor else {"$count": "true", "$orderby": f"{self._id} asc"}
        path = cursor or self.entity.entity_set
        async for body in self._client.pages(path, params=params, page_size=page_size):
            yield SnapshotPage(
                events=[self._event(row, capture) for row in body.get("value", [])],
                next_cursor=body.get("@odata.nextLink"),
                total=page_total(body),
            )

    def _event(self, row: dict[str, Any], capture: Capture) -> ChangeEvent:
        record = normalize_web_api_record(row)
        return with_capture(record_event(self.entity, record, Operation.SNAPSHOT), capture)
