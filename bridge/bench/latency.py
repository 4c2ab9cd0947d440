"""End to end: a salesperson's creates at a fixed offered rate → visible in F&O through its
API; latency percentiles of a sample, the achieved rates beside the offered one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.bench.load import BATCH_SIZE, BatchWriter
from bridge.bench.measure import Figure, customers, customers_at, percentile
from bridge.bench.scenarios import Bench
from bridge.bench.stack import Stack, require
from bridge.setup import run_setup

TICK_SECONDS = 0.1
POLL_SECONDS = 0.1


async def end_to_end(bench: Bench) -> None:
    """One fresh stack per offered load, so one load's backlog never delays the next."""
    for phase, load in enumerate(bench.settings.e2e_loads):
        async with bench.stack(f"e2e-{load}") as stack:
            await run_setup(stack.settings)
            await stack.start_role("ingest")
            await stack.start_role("apply")
            unloaded = await warm_up(stack)
            await offered_load(bench, stack, phase, load, unloaded)


async def warm_up(stack: Stack) -> float:
    """Wait until one change goes all the way through (the apply process joined its group),
    then time one more on the idle stack: the unloaded latency (ms), the reference."""
    company = stack.settings.companies.for_business_unit(None) or "usmf"
    for number in ("W0", "W1"):
        async with stack.user_client("sales") as sales:
            await sales.request("POST", "accounts", json={"name": "Warm", "accountnumber": number})
        written = time.monotonic()
        deadline = written + stack.wait_seconds
        while not await customers_at(stack, company, [number]):
            stack.processes.check_alive()
            require(time.monotonic() < deadline, "end to end: the warm-up change never arrived")
            await asyncio.sleep(POLL_SECONDS / 2)
    return (time.monotonic() - written) * 1000


async def offered_load(bench: Bench, stack: Stack, phase: int, load: int, unloaded: float) -> None:
    """Create accounts at ``load``/s for ``e2e_seconds`` in ``$batch`` requests every tick;
    every k-th is a sample (its own account prefix, so the watcher lists only samples)."""
    settings = bench.settings
    total = max(1, round(load * settings.e2e_seconds))
    every = max(1, total // settings.e2e_samples)
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    sample_prefix, other_prefix = f"S{phase}-", f"N{phase}-"
    done = asyncio.Event()
    company = stack.settings.companies.for_business_unit(None) or "usmf"
    watcher = asyncio.create_task(watch(stack, company, written, seen, done))
    started = time.monotonic()
    sent = 0
    try:
        async with stack.user_client("sales") as sales, httpx.AsyncClient(timeout=60) as http:
            writer = BatchWriter(sales, http)
            while sent < total:
                due = min(total, int(load * (time.monotonic() - started)) + 1)
                due = min(due, sent + BATCH_SIZE)  # a behind writer catches up in allowed batches
                if due > sent:
                    numbers = [
                        f"{sample_prefix if i % every == 0 else other_prefix}{i:07d}"
                        for i in range(sent, due)
                    ]
                    bodies = [{"name": f"E2E {n}", "accountnumber": n} for n in numbers]
                    await writer.create("accounts", bodies)
                    now = time.monotonic()
                    written.update({n: now for n in numbers if n.startswith(sample_prefix)})
                    sent = due
                await asyncio.sleep(max(0.0, started + sent / load - time.monotonic()))
        writing = time.monotonic() - started
        samples = len(written)
        with_drain = asyncio.wait_for(_all_seen(seen, samples, done), settings.e2e_drain_seconds)
        with contextlib.suppress(TimeoutError):
            await with_drain
    finally:
        done.set()
        await watcher
    finished = max(seen.values(), default=time.monotonic())
    visible = len(await customers(stack, f"{other_prefix}*")) + len(seen)
    timing = Timing(total, writing, finished - started, visible, unloaded)
    record(bench, load, timing, written, seen)


async def _all_seen(seen: dict[str, float], samples: int, done: asyncio.Event) -> None:
    while len(seen) < samples:  # noqa: ASYNC110 - the watcher fills ``seen`` in its own task
        await asyncio.sleep(POLL_SECONDS)


async def watch(
    stack: Stack,
    company: str,
    written: dict[str, float],
    seen: dict[str, float],
    done: asyncio.Event,
) -> None:
    """Note when F&O first lists each sample account written so far. It asks for the
    pending samples by key: a wildcard query would make the emulator scan every customer
    ten times a second, and that probe, not the bridge, would then load the emulator."""
    while not done.is_set():
        pending = [number for number in list(written) if number not in seen]
        rows = await customers_at(stack, company, pending) if pending else {}
        now = time.monotonic()
        for number in rows:
            seen.setdefault(number, now)
        await asyncio.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Timing:
    """One phase's counts and durations (seconds; ``unloaded_ms`` the idle stack's latency)."""

    total: int
    writing: float
    until_visible: float
    visible: int
    unloaded_ms: float


def record(
    bench: Bench, load: int, timing: Timing, written: dict[str, float], seen: dict[str, float]
) -> None:
    """Add the phase's figure: p50/p95/p99 of the samples (a sample never seen counts as the
    drain limit, and is reported), the achieved rates beside the offered one."""
    drain = bench.settings.e2e_drain_seconds * 1000
    latencies = [((seen[n] - t) * 1000) if n in seen else drain for n, t in written.items()]
    for number, at in written.items():
        if number in seen:
            bench.timeline.latency(f"e2e {load}/s", seen[number], (seen[number] - at) * 1000)
    missing = sum(1 for n in written if n not in seen)
    require(len(seen) > 0, f"end to end at {load}/s: no change became visible")
    details: dict[str, Any] = {
        "offered_per_s": load,
        "written": timing.total,
        "visible_in_target": timing.visible,
        "achieved_write_per_s": timing.total / timing.writing,
        "achieved_visible_per_s": timing.visible / timing.until_visible,
        "samples": len(written),
        "samples_not_visible_within_drain": missing,
        "latency_ms_p50": percentile(latencies, 0.50),
        "latency_ms_p95": percentile(latencies, 0.95),
        "latency_ms_p99": percentile(latencies, 0.99),
        "latency_ms_max": max(latencies),
    }
    bench.add(
        Figure(
            "end_to_end",
            f"achieved at {load:,}/s offered",
            "changes/s",
            details["achieved_visible_per_s"],
            float(load),
            "the offered rate",
            "keeps up with the offered rate",
            details,
        )
    )
    bench.add(
        Figure(
            "end_to_end",
            f"p99 latency at {load:,}/s offered",
            "ms",
            details["latency_ms_p99"],
            timing.unloaded_ms,
            "one change on the idle stack, same run",
            "p99 ≤ 1,000 ms at 1,000/s",
            details,
        )
    )
