"""``bridge backfill --flow NAME``: publish every source record as a SNAPSHOT event.

Paged and resumable: after each page's events were acknowledged by Kafka, the progress (the
next page's link, counts) is stored in the state topic under ``backfill|<flow>``; a later
run resumes from it unless ``--restart``; a finished backfill deletes it. A crash between the
acknowledgement and the progress write publishes that page again on resume, which is
harmless (events are idempotent by id and record version).

Backfill feeds the normal path: the flow consumer applies each snapshot whose version it has
not applied yet and skips the others, so it is safe while the bridge runs. To re-apply
records already applied, use ``bridge reconcile --repair``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from bridge.contract.envelope import Capture
from bridge.engine.flow import Flow
from bridge.kafka.publisher import Publisher
from bridge.ops.ports import StateAccess
from bridge.sources.snapshots import SnapshotPage, SnapshotSource, read_ahead

log = structlog.get_logger(__name__)


def progress_key(flow: str) -> str:
    """The state-store key of a flow's backfill progress."""
    return f"backfill|{flow}"


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """How far a backfill got: the next page's cursor and what was published before it."""

    next_cursor: str | None = None
    pages: int = 0
    published: int = 0
    total: int | None = None
    started_at: str = ""

    @classmethod
    def begin(cls) -> BackfillProgress:
        """The progress of a backfill that has not read anything yet."""
        return cls(started_at=datetime.now(UTC).isoformat())

    @classmethod
    def from_state(cls, value: Any) -> BackfillProgress | None:
        """Parse a stored progress; ``None`` if absent."""
        if not isinstance(value, dict):
            return None
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def after(self, page: SnapshotPage) -> BackfillProgress:
        """The progress once ``page`` was published."""
        return replace(
            self,
            next_cursor=page.next_cursor,
            pages=self.pages + 1,
            published=self.published + len(page.events),
            total=self.total if page.total is None else page.total,
        )

    def as_state(self) -> dict[str, Any]:
        """The JSON value stored in the state topic."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What one run did. ``progress`` is cumulative over resumed runs."""

    progress: BackfillProgress
    resumed: bool
    complete: bool
    published_now: int


ProgressCallback = Callable[[BackfillProgress], None]


class Backfill:
    """Publishes one flow's source records page by page, storing progress after each."""

    def __init__(
        self,
        flow: Flow,
        source: SnapshotSource,
        publisher: Publisher,
        state: StateAccess,
        *,
        page_size: int,
    ) -> None:
        self._flow = flow
        self._source = source
        self._publisher = publisher
        self._state = state
        self._page_size = page_size
        self._key = progress_key(flow.name)

    async def start_point(self, *, restart: bool) -> tuple[BackfillProgress, bool]:
        """Where this run starts, and whether it resumes an interrupted one."""
        stored = BackfillProgress.from_state(self._state.get(self._key))
        if stored is not None and not restart:
            return stored, True
        if stored is not None:
            await self._state.put(self._key, None)
        return BackfillProgress.begin(), False

    async def run(
        self,
        progress: BackfillProgress,
        *,
        max_pages: int | None = None,
        on_page: ProgressCallback | None = None,
    ) -> BackfillProgress:
        """Publish pages from ``progress`` until the last one (progress then deleted) or
        ``max_pages`` pages; return the progress reached.

        The next page is read while the current one is published; a page is published only
        once the page before it was acknowledged and its progress stored, so a failure
        stops the run with the progress of the last page acknowledged in full."""
        pages = self._source.pages(progress.next_cursor, self._page_size, Capture.BACKFILL)
        async with aclosing(read_ahead(pages, max_pages)) as ahead:
            async for page in ahead:
                await self._publisher.publish([(self._flow.entity, e) for e in page.events])
                progress = progress.after(page)
                await self._save(progress)
                if on_page is not None:
                    on_page(progress)
        return progress

    async def _save(self, progress: BackfillProgress) -> None:
        done = progress.next_cursor is None
        await self._state.put(self._key, None if done else progress.as_state())
        log.info(
            "backfill_page_published",
            flow=self._flow.name,
            pages=progress.pages,
            published=progress.published,
            total=progress.total,
            complete=done,
        )


async def backfill(
    runner: Backfill,
    *,
    restart: bool = False,
    max_pages: int | None = None,
    on_start: ProgressCallback | None = None,
    on_page: ProgressCallback | None = None,
) -> BackfillResult:
    """Run (or resume) a backfill; see the module docstring."""
    start, resumed = await runner.start_point(restart=restart)
    if on_start is not None:
        on_start(start)
    reached = await runner.run(start, max_pages=max_pages, on_page=on_page)
    return BackfillResult(
        progress=reached,
        resumed=resumed,
        complete=reached.next_cursor is None and reached.pages > start.pages,
        published_now=reached.published - start.published,
    )
