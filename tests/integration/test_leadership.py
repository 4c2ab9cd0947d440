"""Leader election on the real broker: one leader at a time, failover when the leader stops
or dies, the work restarted after a crash and cancelled when leadership goes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.config import KafkaSettings
from bridge.kafka.leadership import LeaderElection, Work
from tests.integration.conftest import delete_topics, eventually
from tests.support.kafka_broker import REPO_ROOT

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 6.0
"""LeaderElection's default session timeout, in seconds."""


@pytest.fixture
async def kafka(broker: str) -> AsyncIterator[KafkaSettings]:
    """Settings with a topic prefix of this test's own; its topics are deleted after it."""
    settings = KafkaSettings(bootstrap_servers=broker, topic_prefix=f"t{uuid.uuid4().hex[:8]}")
    try:
        yield settings
    finally:
        await delete_topics(broker, settings.topic_prefix)


@pytest.fixture
def group() -> str:
    """A consumer group of this test's own."""
    return f"g{uuid.uuid4().hex[:8]}.leader"


class Probe:
    """Works that count how many of them run at once. A cancelled work takes a while to
    end (as a poller finishing its page would), so a successor that started before the
    end would be seen running beside it."""

    def __init__(self, cleanup_seconds: float = 0.3) -> None:
        self.cleanup_seconds = cleanup_seconds
        self.running: Counter[str] = Counter()
        self.starts: Counter[str] = Counter()
        self.cancels: Counter[str] = Counter()
        self.peak = 0

    @property
    def total(self) -> int:
        """Works running now, over every candidate."""
        return sum(self.running.values())

    def work(self, name: str) -> Work:
        """The work of candidate ``name``."""

        async def run() -> None:
            self.starts[name] += 1
            self.running[name] += 1
            self.peak = max(self.peak, self.total)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels[name] += 1
                await asyncio.sleep(self.cleanup_seconds)
                raise
            finally:
                self.running[name] -= 1

        return run


class Sampler:
    """Samples ``probe.total`` every few milliseconds in the background."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.samples: list[int] = []

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._sample(), name="sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample(self) -> None:
        while True:
            self.samples.append(self.probe.total)
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def candidate(
    settings: KafkaSettings, group: str, work: Work, **timings: Any
) -> AsyncIterator[LeaderElection]:
    """An election entered and leading in a task, for the duration of the block."""
    async with LeaderElection(settings, group, **timings) as election:
        task = asyncio.create_task(election.lead(work), name="lead")
        try:
            yield election
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(check: Any, timeout: float = 30.0) -> float:
    """Wait until ``check()`` (sync) holds; return the seconds it took."""
    started = time.monotonic()

    async def holds() -> bool:
        return bool(check())

    await eventually(holds, timeout=timeout, interval=0.005)
    return time.monotonic() - started


async def test_a_single_candidate_leads_and_runs_the_work(kafka: KafkaSettings, group: str) -> None:
    probe = Probe()
    with capture_logs() as logs:
        async with candidate(kafka, group, probe.work("a")) as election:
            await until(lambda: probe.running["a"] == 1)
            assert election.is_leader
        assert not election.is_leader
    assert probe.running["a"] == 0
    events = [entry["event"] for entry in logs if entry["event"].startswith("leadership_")]
    assert events == ["leadership_acquired", "leadership_lost"]


async def test_two_candidates_never_run_the_work_together_and_fail_over_on_exit(
    kafka: KafkaSettings, group: str
) -> None:
    probe = Probe()
    sampler = Sampler(probe)
    async with sampler.sampling(), contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(candidate(kafka, group, probe.work("a")))
        await until(lambda: probe.running["a"] == 1)
        async with candidate(kafka, group, probe.work("b")) as b:
            # b's join is a rebalance: a stops its work and, holding the partition
            # before, gets it back; b never leads meanwhile
            await until(lambda: probe.starts["a"] == 2)
            await asyncio.sleep(2 * 1.0)  # two heartbeat intervals: no further move
            assert a.is_leader and not b.is_leader
            assert probe.starts["b"] == 0
            await stack.aclose()
            assert probe.running["a"] == 0  # stopped before the exit returned
            failover = await until(lambda: probe.running["b"] == 1, timeout=10)
            assert b.is_leader
            print(f"graceful failover: {failover:.2f} s")
            # below the earliest a silent leader is noticed (see the SIGKILL test): a left
            # the group instead of going silent
            assert failover < SESSION_TIMEOUT - 2
    assert len(sampler.samples) > 500
    assert max(sampler.samples) <= 1
    assert probe.peak == 1
    assert probe.cancels == Counter({"a": 2, "b": 1})


async def test_the_work_is_restarted_after_a_crash_while_leading(
    kafka: KafkaSettings, group: str
) -> None:
    starts = 0

    async def crashes_twice() -> None:
        nonlocal starts
        starts += 1
        if starts <= 2:
            raise ValueError(f"crash {starts}")
        await asyncio.Event().wait()

    with capture_logs() as logs:
        async with candidate(
            kafka, group, crashes_twice, restart_initial_seconds=0.05, restart_max_seconds=0.2
        ) as election:
            await until(lambda: starts == 3)
            await asyncio.sleep(0.3)
            assert starts == 3 and election.is_leader
    crashed = [entry for entry in logs if entry["event"] == "leader_work_crashed"]
    assert [entry["crashes"] for entry in crashed] == [1, 2]
    assert all(entry["exc_info"] for entry in crashed)


async def test_the_work_is_cancelled_when_leadership_is_lost_and_fresh_when_regained(
    kafka: KafkaSettings, group: str
) -> None:
    probe = Probe(cleanup_seconds=1.0)
    async with candidate(kafka, group, probe.work("a")):
        await until(lambda: probe.running["a"] == 1)
        async with candidate(kafka, group, probe.work("b")):
            # the rebalance revokes a's partition: its work is cancelled and awaited (1 s
            # of cleanup) before a rejoins, then a fresh work starts when it is reassigned
            await until(lambda: probe.cancels["a"] == 1)
            assert probe.running["a"] == 1  # still cleaning up; nothing else started
            await until(lambda: probe.starts["a"] == 2)
            assert probe.running["a"] == 1
    assert probe.running == Counter({"a": 0, "b": 0})
    assert probe.peak == 1


@contextlib.contextmanager
def candidate_process(
    settings: KafkaSettings, group: str, marker: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """tests/support/leader_candidate.py as a child process, killed by its pid at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-u", "-m", "tests.support.leader_candidate"),
                *(settings.bootstrap_servers, settings.topic_prefix, group, str(marker)),
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


async def test_a_killed_leader_process_is_replaced_after_the_session_timeout(
    kafka: KafkaSettings, group: str, tmp_path: Path
) -> None:
    marker = tmp_path / "leader.pid"
    probe = Probe()
    with candidate_process(kafka, group, marker, tmp_path / "child.log") as child:
        await until(marker.exists, timeout=60)
        assert marker.read_text() == str(child.pid)
        async with candidate(kafka, group, probe.work("here")) as election:
            await asyncio.sleep(3.0)  # joined: the child keeps leading
            assert not election.is_leader and probe.starts["here"] == 0
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            failover = await until(lambda: probe.running["here"] == 1, timeout=SESSION_TIMEOUT * 3)
            print(f"failover after SIGKILL: {failover:.2f} s")
            assert election.is_leader
            # the broker noticed the silence only when the session expired; how long the
            # rejoin takes after that depends on the machine's load, and ``until`` above
            # already bounds it
            assert failover >= SESSION_TIMEOUT - 2
