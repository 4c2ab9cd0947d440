"""The leader's work: started for a term, restarted after a crash, stopped and awaited."""

from __future__ import annotations

import asyncio

import structlog
from structlog.testing import capture_logs

from bridge.http.retry import RetryPolicy
from bridge.kafka.leadership import LeaderWork, Work


def leader_work(work: Work, *, slow_stop: float = 5.0) -> LeaderWork:
    return LeaderWork(
        work,
        RetryPolicy(initial_backoff=0.01, max_backoff=0.04),
        slow_stop_seconds=slow_stop,
        logger=structlog.get_logger("test"),
    )


async def test_stop_cancels_the_work_and_returns_after_it_ended() -> None:
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # cleanup that takes a while
            ended.set()

    term = leader_work(work)
    term.start()
    await asyncio.sleep(0.01)
    assert term.running
    await term.stop()
    assert ended.is_set() and not term.running


async def test_a_crashed_work_is_restarted_with_back_off() -> None:
    runs = 0
    survived = asyncio.Event()

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise RuntimeError("boom")
        survived.set()
        await asyncio.Event().wait()

    term = leader_work(work)
    with capture_logs() as logs:
        term.start()
        await asyncio.wait_for(survived.wait(), timeout=5)
        await term.stop()
    crashed = [entry for entry in logs if entry["event"] == "leader_work_crashed"]
    assert [entry["crashes"] for entry in crashed] == [1, 2, 3]
    assert all(0 < entry["restart_in_seconds"] <= 0.04 for entry in crashed)


async def test_a_work_that_returns_is_not_restarted() -> None:
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1

    term = leader_work(work)
    with capture_logs() as logs:
        term.start()
        await asyncio.sleep(0.1)
    assert runs == 1 and not term.running
    assert [entry["event"] for entry in logs] == ["leader_work_finished"]
    await term.stop()


async def test_starting_twice_runs_one_work() -> None:
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        await asyncio.Event().wait()

    term = leader_work(work)
    term.start()
    term.start()
    await asyncio.sleep(0.02)
    await term.stop()
    assert runs == 1


async def test_a_work_slow_to_stop_is_logged_and_still_awaited() -> None:
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.sleep(0.1))
            ended.set()

    term = leader_work(work, slow_stop=0.02)
    term.start()
    await asyncio.sleep(0.01)
    with capture_logs() as logs:
        await term.stop()
    assert ended.is_set()
    assert [entry["event"] for entry in logs] == ["leader_work_slow_to_stop"]
