"""Paged full reads of a source entity, as SNAPSHOT events (backfill, reconcile).

A :class:`SnapshotSource` yields pages of events plus the cursor of the next page (an
``@odata.nextLink``), so a reader can stop after any page and resume from its cursor. Each
system implements it in its own package (:class:`bridge.dataverse.snapshots.DataverseSnapshots`,
:class:`bridge.fno.snapshots.FnoSnapshots`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent

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


def page_total(body: dict[str, Any]) -> int | None:
    """The ``@odata.count`` of a first page, unless the service says it is capped."""
    count = body.get("@odata.count")
    if count is None or body.get(COUNT_LIMIT_EXCEEDED):
        return None
    return int(count)


async def read_ahead(
    pages: AsyncIterator[SnapshotPage], limit: int | None = None
) -> AsyncGenerator[SnapshotPage, None]:
    """The first ``limit`` pages of ``pages`` (all without a limit), each next one read
    while the caller handles the one it was given, so reading the source overlaps with
    publishing. Pages keep their order; a failed read raises when its page is asked for.
    Close it (``contextlib.aclosing``): a read still running then is cancelled."""
    wanted = limit
    ahead: asyncio.Task[SnapshotPage | None] | None = None
    try:
        page = await _next(pages)
        while page is not None and (wanted is None or wanted > 0):
            wanted = None if wanted is None else wanted - 1
            if page.next_cursor is not None and (wanted is None or wanted > 0):
                ahead = asyncio.create_task(_next(pages))
            yield page
            if ahead is None:
                return
            page, ahead = await ahead, None
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ahead


async def _next(pages: AsyncIterator[SnapshotPage]) -> SnapshotPage | None:
    return await anext(pages, None)
