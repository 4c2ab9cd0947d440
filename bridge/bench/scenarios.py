"""The scenarios. Each starts what it needs (:func:`~bridge.bench.stack.open_stack`), measures
one or more figures beside their references, and stops everything it started."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bridge.bench.load import (
    Notification,
    capture_notification,
    consume,
    encode_events,
    produce,
    seed_accounts,
    synthetic_records,
)
from bridge.bench.measure import (
    Figure,
    Timeline,
    committed_total,
    customers,
    fno_totals,
    follow,
)
from bridge.bench.poster import PostResult, post_from_processes
from bridge.bench.reference import direct_calls
from bridge.bench.settings import BenchSettings
from bridge.bench.stack import Stack, open_stack, require
from bridge.contract.codec import EventCodec
from bridge.kafka.topics import ensure_topics
from bridge.ops.commands import backfill_flow, replay_from


@dataclass
class Bench:
    """What the scenarios share: settings, the timeline, the figures and the captured
    notification (the first scenario that needs one captures it)."""

    settings: BenchSettings
    run_dir: Path
    console: Console
    timeline: Timeline = field(default_factory=Timeline)
    figures: list[Figure] = field(default_factory=list)
    notification: Notification | None = None
    codec: EventCodec = field(default_factory=EventCodec.from_directory)
    unthrottled_apply: float | None = None
    peaks: dict[str, float] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        """Keep a figure and show it."""
        self.figures.append(figure)
        ratio = f" ({figure.ratio:.0%} of reference)" if figure.ratio is not None else ""
        self.console.print(
            f"  {figure.scenario} · {figure.figure}: {_text(figure.value)} {figure.unit}, "
            f"reference {_text(figure.reference)}{ratio}"
        )

    def stack(self, name: str, emulator_env: dict[str, str] | None = None) -> Any:
        """A fresh local stack for one scenario."""
        env = emulator_env if emulator_env is not None else self.settings.unthrottled_emulator_env
        return open_stack(
            name,
            self.run_dir,
            self.settings.start_timeout_seconds,
            env,
            frozenset(self.settings.profile),
        )

    async def template(self, stack: Stack) -> Notification:
        """The captured notification, captured on ``stack`` if not yet."""
        if self.notification is None:
            self.notification = await capture_notification(stack)
        return self.notification


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a live process has used so far (Linux ``/proc``): what a
    figure costs, however busy other processes keep the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


# --- ingest -------------------------------------------------------------------------------


async def ingest(bench: Bench) -> None:
    """Webhook notifications → Kafka through ``bridge run --role ingest``, posted by load
    generators in processes of their own (so the figure is the ingest process's capacity),
    against a raw producer sending the same Avro bytes."""
    size = bench.settings.ingest_notifications
    async with bench.stack("ingest") as stack:
        template = await bench.template(stack)
        process = await stack.start_role("ingest")
        bodies = [
            json.dumps(template.for_record(*record)).encode()
            for record in synthetic_records("I", size)
        ]
        url = f"http://127.0.0.1:{stack.settings.webhook.port}/webhooks/dataverse?{template.query}"
        cpu_before = cpu_seconds(process.process.pid)
        posted = await post_all(bench, stack, url, bodies)
        cpu = cpu_seconds(process.process.pid) - cpu_before
        accepted, seconds, statuses = len(posted.done), posted.seconds, posted.statuses
        process.sample_rss()
        bench.peaks["ingest"] = process.peak_mb
        require(accepted > 0, f"ingest: no notification accepted ({statuses})")
        topic = stack.flow.topic
        messages, _ = await consume(stack.settings.kafka, topic, accepted, stack.wait_seconds)
        require(
            len(messages) == accepted,
            f"ingest: {accepted} notifications accepted, {len(messages)} events on {topic}",
        )
        raw_topic = f"{stack.settings.kafka.topic_prefix}.bench.raw"
        raw_seconds = await produce(stack.settings.kafka, raw_topic, messages)
        bench.timeline.rate("raw producer", time.monotonic(), len(messages) / raw_seconds)
    bench.add(
        Figure(
            "ingest",
            "webhook notifications → Kafka",
            "changes/s",
            accepted / seconds,
            len(messages) / raw_seconds,
            "raw aiokafka producer, same Avro bytes, acks=all, idempotent",
            "≥ 5,000/s per process and ≥ 50 % of the raw producer",
            {
                "notifications": size,
                "accepted": accepted,
                "statuses": statuses,
                "seconds": seconds,
                "concurrency": bench.settings.ingest_concurrency,
                "load_processes": bench.settings.ingest_processes,
                "ingest_cpu_seconds": cpu,
                "ingest_cpu_us_per_notification": cpu / accepted * 1e6,
                "load_generator_cpu_us_per_request": posted.cpu_seconds
                / sum(statuses.values())
                * 1e6,
            },
        )
    )


async def post_all(bench: Bench, stack: Stack, url: str, bodies: list[bytes]) -> PostResult:
    """POST every body from ``ingest_processes`` load generators of their own
    (``ingest_concurrency`` requests in flight in all, within ``ingest_seconds``), and
    draw the timeline of their answers."""
    settings = bench.settings
    result = await post_from_processes(
        url,
        bodies,
        processes=settings.ingest_processes,
        concurrency=settings.ingest_concurrency,
        seconds=settings.ingest_seconds,
        work_dir=stack.processes.run_dir,
    )
    for at, milliseconds in result.latencies:
        bench.timeline.latency("ingest", at, milliseconds)
    for second in range(int(result.seconds) + 1):
        begin = result.started + second
        count = sum(1 for t in result.done if begin <= t < begin + 1)
        bench.timeline.rate("ingest", begin + 1, count)
    return result


# --- apply, replay, backfill ------------------------------------------------------------


async def apply_backlog(bench: Bench) -> None:
    """N events already on the topic → the unthrottled emulator, then ``bridge replay`` of
    them (nothing may change) and ``bridge backfill`` of the same accounts."""
    wanted = set(bench.settings.scenarios)
    size = bench.settings.apply_events
    async with bench.stack("apply") as stack:
        records = await seed_accounts(stack, "A", size)
        template = await bench.template(stack)
        await ensure_topics(stack.settings.kafka, [stack.flow])
        messages = encode_events(template, records, bench.codec)
        in_flight = bench.settings.reference_concurrency
        reference, calls = await direct_calls(stack, bench.codec, messages, in_flight)
        bench.timeline.rate("direct calls", time.monotonic(), reference)
        since = datetime.now(UTC)
        await produce(stack.settings.kafka, stack.flow.topic, messages)
        rate, applied, _ = await drain(bench, stack, "apply", size, bench.settings.apply_seconds)
        visible = await customers(stack, "A*")
        bench.unthrottled_apply = rate
        bench.add(
            Figure(
                "apply",
                "backlog → unthrottled emulator",
                "changes/s",
                rate,
                reference,
                f"the emulators' capacity for the bridge's calls made directly: Sales and F&O "
                f"$filter reads of {calls['records_per_read']} keys, $batch of "
                f"{calls['change_sets_per_batch']} change sets; {in_flight} calls at a time",
                "≥ 10,000/s",
                {
                    "events": size,
                    "settled": applied,
                    "visible_in_target": len(visible),
                    "reference_calls": calls,
                },
            )
        )
        require(len(visible) == size, f"apply: {len(visible)} of {size} customers in F&O")
        stack.processes.stop("apply")
        if "replay" in wanted:
            await replay(bench, stack, since, size, visible)
        if "backfill" in wanted:
            await backfill(bench, stack, size)
        bench.peaks["emulator apply"] = stack.processes.started["emulator"].sample_rss()


async def drain(
    bench: Bench, stack: Stack, series: str, goal_events: int, seconds: float
) -> tuple[float, int, float]:
    """Start an apply process and follow the flow's committed offsets until ``goal_events``
    more are settled or ``seconds`` pass; return (events/s, events settled, seconds from the
    first commit to the last)."""
    committed, _ = await committed_total(stack)
    process = await stack.start_role("apply")

    async def progress() -> int:
        process.sample_rss()
        return (await committed_total(stack))[0]

    settled, elapsed = await follow(
        series,
        bench.timeline,
        progress,
        committed + goal_events,
        seconds,
        stack.processes.check_alive,
    )
    bench.peaks[series] = process.peak_mb
    return (settled / elapsed if elapsed else None) or 0.0, settled, elapsed


async def replay(
    bench: Bench, stack: Stack, since: datetime, size: int, before: dict[str, Any]
) -> None:
    """``bridge replay --from <before the backlog>``, then an apply process re-applies it:
    events/s, against a plain consumer reading the same events; nothing may change."""
    writes_before = await fno_totals(stack)
    result = await replay_from(
        stack.settings, "accounts", since.isoformat(), console=Console(file=io.StringIO())
    )
    events = sum(r.reapplied for r in result.resets)
    require(events == size, f"replay: {events} events to re-apply, {size} expected")
    _, read_seconds = await consume(
        stack.settings.kafka, stack.flow.topic, size, stack.wait_seconds
    )
    rate, settled, _ = await drain(bench, stack, "replay", size, bench.settings.apply_seconds)
    stack.processes.stop("apply")
    writes_after = await fno_totals(stack)
    after = await customers(stack, "A*")
    changed = sum(writes_after.get(k, 0) - writes_before.get(k, 0) for k in writes_before)
    bench.add(
        Figure(
            "replay",
            "replay of applied events (nothing changed)",
            "events/s",
            rate,
            size / read_seconds,
            "plain aiokafka consumer reading the same events",
            "≥ 20,000/s, nothing written",
            {
                "events": events,
                "settled": settled,
                "target_writes_during_replay": changed,
                "target_unchanged": after == before,
            },
        )
    )
    require(changed == 0 and after == before, f"replay changed the target ({changed} writes)")


async def backfill(bench: Bench, stack: Stack, size: int) -> None:
    """``bridge backfill --restart`` of the seeded accounts (in this process, set-up
    included): rows/s, against reading the same pages straight from the API with the
    backfill's own query (ordered by id, counted), which no backfill can outrun."""
    quiet = Console(file=io.StringIO())
    cpu_before = cpu_seconds(os.getpid())
    started = time.monotonic()
    result = await backfill_flow(stack.settings, "accounts", restart=True, console=quiet)
    seconds = time.monotonic() - started
    cpu = cpu_seconds(os.getpid()) - cpu_before
    page = stack.settings.poller.page_size
    ordered = {"$count": "true", "$orderby": "accountid asc"}
    read_rate = await read_rows(stack, page, ordered)
    unordered_rate = await read_rows(stack, page, None)
    rows = result.published_now
    require(rows >= size, f"backfill published {rows} of {size}")
    bench.add(
        Figure(
            "backfill",
            "bridge backfill",
            "rows/s",
            rows / seconds,
            read_rate,
            f"reading the same rows from the Dataverse API with the backfill's query (pages "
            f"of {page}, ordered by id)",
            "≥ 5,000/s",
            {
                "rows": rows,
                "seconds": seconds,
                "cpu_us_per_row": cpu / rows * 1e6 if rows else None,
                "unordered_read_rate": unordered_rate,
            },
        )
    )


async def read_rows(stack: Stack, page: int, params: dict[str, str] | None) -> float:
    """Rows/s reading every account page by page as the bridge."""
    async with stack.bridge_client("sales") as sales:
        started, rows = time.monotonic(), 0
        async for body in sales.pages("accounts", params=params, page_size=page):
            rows += len(body.get("value", []))
        return rows / (time.monotonic() - started)
