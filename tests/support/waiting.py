"""Waiting for the target to converge, and telling "not yet" from "settled, but wrong"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bridge.errors import BridgeError
from tests.support.expectations import Expected, Mismatch, judge
from tests.support.ledger import Record

TargetReader = Callable[[], Awaitable[Mapping[str, Record]]]
Settled = Callable[[], Awaitable[bool]]


async def eventually(check: Any, *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` (async) until it returns a truthy value; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def until(condition: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Wait until a plain condition holds (the workload wrote enough to strike now)."""

    async def holds() -> bool:
        return condition()

    await eventually(holds, timeout=timeout, interval=0.02)


@dataclass
class Convergence:
    """How the wait ended: the keys still wrong (none when it converged) and when."""

    mismatches: list[Mismatch]
    seconds: float
    reason: str

    @property
    def converged(self) -> bool:
        return not self.mismatches


async def _read(read_target: TargetReader) -> Mapping[str, Record] | None:
    """The target's records, or ``None`` while the target refuses our own reads (a fault
    injected for the bridge hits the test's reads too; that only means "not yet")."""
    try:
        return await read_target()
    except (BridgeError, httpx.HTTPError):
        return None


async def converge(
    read_target: TargetReader,
    expected: Mapping[str, Expected],
    settled: Settled,
    *,
    timeout: float,
    hold: float = 2.0,
    quiet: float = 8.0,
    interval: float = 0.5,
) -> Convergence:
    """Poll the target until every key is as expected while the bridge is ``settled`` (no
    events left to apply), and still is ``hold`` seconds later, so a late stale write
    cannot hide. Stop early when the bridge is settled and the target has not changed for
    ``quiet`` seconds although keys are wrong: it will not get better by itself."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    clean_since: float | None = None
    last: Mapping[str, Record] | None = None
    unchanged_since = start
    mismatches = [Mismatch(k, e.kind, "target not read yet") for k, e in expected.items()]
    while True:
        now = loop.time()
        actual = await _read(read_target)
        if actual is not None:
            if actual != last:
                last, unchanged_since = actual, now
            mismatches = judge(expected, actual)
            calm = await settled()
            if mismatches or not calm:
                clean_since = None
            elif clean_since is None:
                clean_since = now
            elif now - clean_since >= hold:
                return Convergence([], clean_since - start, "converged")
            if mismatches and calm and now - unchanged_since >= quiet:
                return Convergence(mismatches, now - start, f"settled {quiet:.0f} s but wrong")
        if now - start > timeout:
            return Convergence(mismatches, now - start, f"not converged within {timeout:.0f} s")
        await asyncio.sleep(interval)
