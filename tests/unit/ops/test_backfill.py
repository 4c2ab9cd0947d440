"""Backfill publishes every record page by page and resumes where it stopped."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation
from bridge.errors import PublishFailed
from bridge.ops.backfill import Backfill, BackfillProgress, backfill, progress_key
from tests.unit.fakes import MemoryPublisher
from tests.unit.ops.fakes import MemoryState, PagedSource, account_event, accounts_flow

FLOW = accounts_flow()
KEY = progress_key("accounts")
EVENTS = [account_event(f"a{i}", i + 1) for i in range(7)]


class FailingPublisher(MemoryPublisher):
    """Fails on the publish call number ``fail_on`` (1-based), then works again."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_on = fail_on

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        self.calls += 1
        if self.calls == self.fail_on:
            raise PublishFailed("broker down")
        return await super().publish(items)


def runner(publisher: MemoryPublisher, state: MemoryState, **kwargs: bool) -> Backfill:
    return Backfill(FLOW, PagedSource(FLOW, EVENTS, **kwargs), publisher, state, page_size=3)


async def test_publishes_every_record_as_a_backfill_snapshot_and_clears_progress() -> None:
    publisher, state = MemoryPublisher(), MemoryState()
    seen: list[BackfillProgress] = []
    with capture_logs() as logs:
        result = await backfill(runner(publisher, state), on_page=seen.append)
    assert [e.source.record_id for e in publisher.events] == [e.source.record_id for e in EVENTS]
    assert {e.operation for e in publisher.events} == {Operation.SNAPSHOT}
    assert {e.source.capture for e in publisher.events} == {Capture.BACKFILL}
    assert result.complete and not result.resumed
    assert (result.published_now, result.progress.published, result.progress.pages) == (7, 7, 3)
    assert [p.published for p in seen] == [3, 6, 7]
    assert seen[0].total == 7
    assert state.values == {}
    assert state.writes[-1] == (KEY, None)
    pages = [e for e in logs if e["event"] == "backfill_page_published"]
    assert [p["published"] for p in pages] == [3, 6, 7]
    assert pages[-1]["complete"] is True
    assert all(p["flow"] == "accounts" for p in pages)


async def test_progress_is_stored_after_each_acknowledged_page_and_resumed() -> None:
    publisher, state = MemoryPublisher(), MemoryState()
    first = await backfill(runner(publisher, state), max_pages=1)
    assert not first.complete
    stored = BackfillProgress.from_state(state.get(KEY))
    assert stored is not None
    assert (stored.next_cursor, stored.pages, stored.published, stored.total) == ("3", 1, 3, 7)
    second = await backfill(runner(publisher, state))
    assert second.resumed and second.complete
    assert second.published_now == 4
    assert second.progress.published == 7
    assert second.progress.started_at == stored.started_at
    assert len(publisher.events) == 7, "every record exactly once"
    assert state.values == {}


async def test_a_failed_page_is_not_recorded_and_is_published_again_on_resume() -> None:
    state = MemoryState()
    failing = FailingPublisher(fail_on=2)
    with pytest.raises(PublishFailed):
        await backfill(runner(failing, state))
    stored = BackfillProgress.from_state(state.get(KEY))
    assert stored is not None and stored.published == 3
    result = await backfill(runner(failing, state))
    assert result.resumed and result.complete
    assert len(failing.events) == 7


async def test_restart_ignores_and_drops_the_stored_progress() -> None:
    publisher, state = MemoryPublisher(), MemoryState()
    await backfill(runner(publisher, state), max_pages=2)
    restarted = MemoryPublisher()
    result = await backfill(runner(restarted, state), restart=True)
    assert not result.resumed and result.complete
    assert len(restarted.events) == 7
    assert state.writes[2] == (KEY, None), "the old progress is dropped first"


async def test_unknown_total_stays_unknown() -> None:
    publisher, state = MemoryPublisher(), MemoryState()
    result = await backfill(runner(publisher, state, total=False))
    assert result.progress.total is None


async def test_an_empty_source_completes_at_once() -> None:
    state = MemoryState()
    source = PagedSource(FLOW, [])
    result = await backfill(Backfill(FLOW, source, MemoryPublisher(), state, page_size=3))
    assert result.complete
    assert result.progress.published == 0
    assert state.values == {}


@pytest.mark.parametrize(
    "value", [None, "garbage", 3, {"next_cursor": "x", "pages": 1, "unknown": True}]
)
def test_progress_from_state(value: object) -> None:
    parsed = BackfillProgress.from_state(value)
    if isinstance(value, dict):
        assert parsed == BackfillProgress(next_cursor="x", pages=1)
    else:
        assert parsed is None
