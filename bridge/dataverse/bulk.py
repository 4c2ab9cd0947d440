"""Dataverse bulk messages: the creates and updates in flight at one moment, per table, as one
``CreateMultiple`` / ``UpdateMultiple`` call (spec A.11).

Support is asked once per table and message from ``sdkmessagefilters`` (a table without
the filter row keeps the ``$batch`` path). A bulk call on a standard table is one
transaction: when one item fails, the call fails as a whole, and the
:class:`~bridge.sinks.coalescer.Coalescer` halves it until the bad item stands alone and
alone gets the error — including a 412 (an alternate key already taken: a racing create)
and a 404 (a row deleted since it was read), which are that one record's to retry from its
read. Every item of one call names a different row: ``UpdateMultiple`` applies only the
first item per row and ignores the rest, so items of one row go in successive calls.

Which writes qualify is the sink's decision (:mod:`bridge.dataverse.sink`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import structlog

from bridge.config import BulkSettings
from bridge.dataverse.metadata import DataverseMetadata
from bridge.errors import AlreadyExists, EventRejected, NotFound, PreconditionFailed
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.sinks.coalescer import Coalescer

log = structlog.get_logger(__name__)

CREATE_MULTIPLE = "CreateMultiple"
UPDATE_MULTIPLE = "UpdateMultiple"
_ITEM_ERRORS = (EventRejected, PreconditionFailed, AlreadyExists, NotFound)
"""Errors of one item that fail a whole all-or-nothing call, so the call is halved."""


class BulkMessages:
    """``CreateMultiple``/``UpdateMultiple`` of concurrent records, one call per table."""

    def __init__(
        self, client: ApiClient, metadata: DataverseMetadata, settings: BulkSettings
    ) -> None:
        self._client = client
        self._metadata = metadata
        self._enabled = settings.bulk_messages
        self._support: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._coalescer: Coalescer[dict[str, Any], None] = Coalescer(
            self._send,
            window=settings.window_seconds,
            max_items=settings.max_bulk_items,
            name="bulk",
            splits=_ITEM_ERRORS,
        )

    async def supports(self, entity_set: str, message: str) -> bool:
        """Whether the table behind ``entity_set`` takes ``message`` (asked once)."""
        if not self._enabled:
            return False
        key = (entity_set, message)
        known = self._support.get(key)
        if known is None:
            known = self._support[key] = asyncio.ensure_future(self._ask(entity_set, message))
        try:
            return await asyncio.shield(known)
        except Exception:
            self._support.pop(key, None)  # ask again next time
            raise

    async def create(self, entity_set: str, item: Mapping[str, Any]) -> None:
        """Create one row (key columns and ``@odata.bind`` lookups in ``item``)."""
        await self._submit(entity_set, CREATE_MULTIPLE, item)

    async def update(self, entity_set: str, item: Mapping[str, Any]) -> None:
        """Update one row (its primary id column and the changed columns in ``item``)."""
        await self._submit(entity_set, UPDATE_MULTIPLE, item)

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        await self._coalescer.aclose()

    async def _submit(self, entity_set: str, message: str, item: Mapping[str, Any]) -> None:
        names = await self._metadata.by_entity_set(entity_set)
        typed = {"@odata.type": f"Microsoft.Dynamics.CRM.{names.logical_name}", **item}
        await self._coalescer.submit((entity_set, message, names.primary_id), typed)

    async def _ask(self, entity_set: str, message: str) -> bool:
        names = await self._metadata.by_entity_set(entity_set)
        clause = (
            f"sdkmessageid/name eq {odata_literal(message)} "
            f"and primaryobjecttypecode eq {odata_literal(names.logical_name)}"
        )
        params = {"$select": "sdkmessagefilterid", "$filter": clause}
        rows = (await self._client.get_json("sdkmessagefilters", params=params)).get("value", [])
        log.info(
            "bulk_message_support", entity_set=entity_set, message=message, supported=bool(rows)
        )
        return bool(rows)

    async def _send(
        self, group: Hashable, items: list[dict[str, Any]]
    ) -> Sequence[BaseException | None]:
        assert isinstance(group, tuple)
        entity_set, message, primary_id = (str(part) for part in group)
        for round_ in _rounds(items, primary_id):
            await self._client.request(
                "POST",
                f"{entity_set}/Microsoft.Dynamics.CRM.{message}",
                json={"Targets": round_},
            )
        return [None] * len(items)


def _rounds(items: list[dict[str, Any]], primary_id: str) -> list[list[dict[str, Any]]]:
    """``items`` in calls where no row is named twice, in order (creates name no row id)."""
    rounds: list[list[dict[str, Any]]] = []
    seen: list[set[str]] = []
    for item in items:
        row = str(item.get(primary_id) or id(item)).lower()
        # an item must come after every earlier item of its row: the round after the last one
        index = max((i + 1 for i, rows in enumerate(seen) if row in rows), default=0)
        if index == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[index].append(item)
        seen[index].add(row)
    return rounds
