"""Backfill reads the next page while it publishes the current one, and still publishes pages
one after the other, each only after the one before was acknowledged and stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import pytest

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent
from bridge.errors import PublishFailed, TransientError
from bridge.ops.backfill import Backfill, BackfillProgress, backfill, progress_key
from bridge.sources.snapshots import SnapshotPage, read_ahead
from tests.unit.fakes import MemoryPublisher
from tests.unit.ops.fakes import MemoryState, PagedSource, account_event, accounts_flow

FLOW = accounts_flow()
KEY = progress_key("accounts")
EVENTS = [account_event(f"a{i}", i + 1) for i in range(7)]


class WatchedSource(PagedSource):
    """A paged source that says when each read starts, and can fail or hang on one."""

    def __init__(self, *, fail_at: str | None = None, hang_at: str | None = None) -> None:
        super().__init__(FLOW, EVENTS)
        self.fail_at = fail_at
        self.hang_at = hang_at
        self.started: dict[str | None, asyncio.Event] = {}

    def read_started(self, cursor: str | None) -> asyncio.Event:
        return self.started.setdefault(cursor, asyncio.Event())

    async def pages(
        self, cursor: str | None, page_size: int, capture: Capture
    ) -> AsyncIterator[SnapshotPage]:
        pages = super().pages(cursor, page_size, capture)
        while True:
            page = await anext(pages, None)
            if page is None:
                return
            cursor = self.reads[-1]
            self.read_started(cursor).set()
            await asyncio.sleep(0)  # a read takes time: the reader yields
            if cursor is not None and cursor == self.hang_at:
                await asyncio.Event().wait()
            if cursor is not None and cursor == self.fail_at:
                raise TransientError("source unavailable")
            yield page


class SlowPublisher(MemoryPublisher):
    """Acknowledges after yielding, and records every publish call's start and end."""

    def __init__(self, state: MemoryState, fail_on: int | None = None) -> None:
        super().__init__()
        self.state = state
        self.fail_on = fail_on
        self.calls = 0
        self.in_flight = 0
        self.log: list[str] = []

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        self.calls += 1
        self.in_flight += 1
        assert self.in_flight == 1, "a page is published while the one before is not acknowledged"
        self.log.append(f"publish {len(self.state.writes)} stored")
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.calls == self.fail_on:
                raise PublishFailed("broker down")
            return await super().publish(items)
        finally:
            self.in_flight -= 1


def runner(source: PagedSource, publisher: MemoryPublisher, state: MemoryState) -> Backfill:
    return Backfill(FLOW, source, publisher, state, page_size=3)


async def test_the_next_page_is_read_while_the_current_one_is_published() -> None:
    source, state = WatchedSource(), MemoryState()

    class WaitingPublisher(MemoryPublisher):
        async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
            if not self.events:  # the first page: acknowledged once the second is being read
                await asyncio.wait_for(source.read_started("3").wait(), 2.0)
            return await super().publish(items)

    publisher = WaitingPublisher()
    result = await backfill(runner(source, publisher, state))
    assert result.complete
    assert [e.event_id for e in publisher.events] == [e.event_id for e in EVENTS]


async def test_pages_are_published_in_order_each_after_the_one_before_was_stored() -> None:
    source, state = WatchedSource(), MemoryState()
    publisher = SlowPublisher(state)
    result = await backfill(runner(source, publisher, state))
    assert result.complete
    assert [e.event_id for e in publisher.events] == [e.event_id for e in EVENTS]
    # page n is published once the progress of the n-1 pages before it was stored
    assert publisher.log == ["publish 0 stored", "publish 1 stored", "publish 2 stored"]
    assert [w[1]["published"] if w[1] else None for w in state.writes] == [3, 6, None]


async def test_a_failed_publish_stops_the_run_with_nothing_published_after_it() -> None:
    source, state = WatchedSource(), MemoryState()
    publisher = SlowPublisher(state, fail_on=2)
    with pytest.raises(PublishFailed):
        await backfill(runner(source, publisher, state))
    assert [e.event_id for e in publisher.events] == [e.event_id for e in EVENTS[:3]]
    stored = BackfillProgress.from_state(state.get(KEY))
    assert stored is not None and (stored.next_cursor, stored.published) == ("3", 3)
    resumed = SlowPublisher(state)
    result = await backfill(runner(WatchedSource(), resumed, state))
    assert result.resumed and result.complete
    assert [e.event_id for e in resumed.events] == [e.event_id for e in EVENTS[3:]]


async def test_a_failed_read_raises_after_the_pages_before_it_were_published() -> None:
    source, state = WatchedSource(fail_at="3"), MemoryState()
    publisher = SlowPublisher(state)
    with pytest.raises(TransientError):
        await backfill(runner(source, publisher, state))
    assert [e.event_id for e in publisher.events] == [e.event_id for e in EVENTS[:3]]
    stored = BackfillProgress.from_state(state.get(KEY))
    assert stored is not None and stored.next_cursor == "3"


async def test_max_pages_reads_nothing_beyond_the_last_page_wanted() -> None:
    source, state = WatchedSource(), MemoryState()
    result = await backfill(runner(source, MemoryPublisher(), state), max_pages=2)
    assert not result.complete
    assert source.reads == [None, "3"]


async def test_closing_early_cancels_the_read_in_flight() -> None:
    source = WatchedSource(hang_at="3")
    pages = source.pages(None, 3, Capture.BACKFILL)
    async with aclosing(read_ahead(pages)) as ahead:
        first = await anext(ahead)
        await asyncio.wait_for(source.read_started("3").wait(), 2.0)
    assert first.next_cursor == "3"
    # the autouse fixture fails the test if the hanging read's task were still running
