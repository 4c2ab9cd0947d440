"""The two scenarios about limits: the apply backlog against an emulator that enforces the
documented service-protection limits, and peak memory with a large backlog."""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

from bridge.bench.load import encode_events, produce, seed_accounts
from bridge.bench.measure import Figure, customers, process_metrics
from bridge.bench.processes import peak_rss_mb
from bridge.bench.reference import CallSizes, expected_writes
from bridge.bench.scenarios import Bench, drain
from bridge.bench.stack import Stack
from bridge.emulators.common.settings import EmulatorSettings
from bridge.fno.sink import same_value
from bridge.kafka.ops import open_kafka
from bridge.kafka.topics import ensure_topics
from bridge.mapping.writes import TargetWrite

RSS_POOL = 5_000
EMULATOR_PREFIX = "BRIDGE_EMULATOR__"
THROTTLED = "bridge_http_throttled_total"


async def throttled(bench: Bench) -> None:
    """The apply backlog with the emulator's limits on (``throttled_emulator_env``): the rate
    achieved as a fraction of the ceiling those limits allow (:func:`ceiling`), the 429s the
    apply process counted (its ``/metrics``), and the writes that failed: customers missing
    in F&O or holding other values than the events the bench produced map to."""
    size = bench.settings.throttled_events
    env = bench.settings.throttled_emulator_env
    async with bench.stack("throttled", env) as stack:
        messages = await backlog(bench, stack, "T", size)
        await produce(stack.settings.kafka, stack.flow.topic, messages)
        rate, settled, seconds = await drain(
            bench, stack, "throttled", size, bench.settings.throttled_seconds
        )
        samples = await process_metrics(stack.processes.started["apply"])
        failed = await failed_writes(stack, expected_writes(stack, bench.codec, messages))
        dead = await dead_letters(stack)
        limits = ceiling(emulator_settings(env), stack, size)
    allowed = limits["ceiling_records_per_s"]
    bench.add(
        Figure(
            "throttled",
            f"backlog → emulator enforcing the limits: {samples.get(THROTTLED, 0):,.0f} answers 429, "
            f"{dead + len(failed)} failed writes"
            + ("" if settled >= size else f" ({size - settled} not applied in time)"),
            "changes/s",
            rate,
            allowed,
            f"the ceiling the emulator's limits allow for the bridge's calls "
            f"({limits['binding']} binds; docs/measurements.md)",
            "≥ 90 % of the emulated ceiling, zero failed writes",
            {
                "events": size,
                "settled": settled,
                "seconds": seconds,
                "limits_env": env,
                "ceiling": limits,
                "answers_429": samples.get(THROTTLED, 0.0),
                "answers_429_by_target": _by_label(samples, THROTTLED),
                "retries": samples.get("bridge_http_retries_total", 0.0),
                "failed_writes": dead + (len(failed) if settled >= size else 0),
                "finished": settled >= size,
                "missing_or_different_in_target": len(failed),
                "failed_examples": failed[:5],
                "dead_letters": dead,
            },
        )
    )


def emulator_settings(env: dict[str, str]) -> EmulatorSettings:
    """The emulator's settings as its process reads them (its env over this one's)."""
    fields = {
        name.removeprefix(EMULATOR_PREFIX).lower(): value
        for name, value in env.items()
        if name.startswith(EMULATOR_PREFIX)
    }
    return EmulatorSettings.model_validate(fields)


def ceiling(emulator: EmulatorSettings, stack: Stack, records: int) -> dict[str, Any]:
    """The rate at which the emulator's limits let the bridge apply ``records`` new accounts.

    Per record the bridge makes a share of a Dataverse ``$filter`` read (the engine confirms
    a record's first change against the source, ``reads`` records per query), a share of an
    F&O ``$filter`` read (``reads`` records per call, one operation) and one F&O create (a
    change set of a ``$batch``, one operation). Each limit admits ``limit`` units per sliding
    window (scaled):

    - Dataverse, per application user: ``dataverse_request_limit`` requests, ``reads``
      records per request, times the Sales registrations the bridge has;
    - F&O, all callers together: ``fno_resource_capacity`` operations, ``1 + 1/reads`` per
      record.

    Sending ``n`` units through a sliding window of ``limit`` per ``window`` takes at least
    ``floor((n - 1) / limit) * window`` seconds (a full window's burst at once, the next one
    a window later); the ceiling is ``records`` over the longest such time of the limits. A
    backlog that fits in one window's burst is not limited at all: the ceiling is then the
    long-run rate ``limit / window`` (``records_fit_in_one_burst`` says so).

    The concurrency limit (52 in flight per user) bounds no rate by itself, and the
    execution-time budget (1,200 s per 300 s, 4 s per second) cannot be reached by an
    emulator answering on one event loop (docs/emulators.md)."""
    scale = emulator.limits_time_scale
    sizes = CallSizes.of(stack)
    registrations = 1 + len(stack.settings.sales.extra_registrations)
    fno_ops_per_record = 1 + 1 / sizes.reads
    limits = {
        "dataverse requests per user": (
            emulator.dataverse_request_limit * registrations,
            emulator.dataverse_limit_window_seconds * scale,
            records / sizes.reads,
        ),
        "f&o resource capacity": (
            emulator.fno_resource_capacity,
            emulator.fno_resource_window_seconds * scale,
            records * fno_ops_per_record,
        ),
    }
    per_limit = {}
    for name, (limit, window, units) in limits.items():
        shortest = math.floor((math.ceil(units) - 1) / limit) * window
        per_limit[name] = {
            "limit": limit,
            "window_seconds": window,
            "units": units,
            "shortest_seconds": shortest,
            "long_run_records_per_s": limit / window * records / units,
        }
    binding = max(per_limit, key=lambda n: per_limit[n]["shortest_seconds"])
    shortest = per_limit[binding]["shortest_seconds"]
    long_run = min(v["long_run_records_per_s"] for v in per_limit.values())
    return {
        "time_scale": scale,
        "sales_registrations": registrations,
        "fno_operations_per_record": fno_ops_per_record,
        "per_limit": per_limit,
        "binding": binding
        if shortest
        else min(per_limit, key=lambda n: per_limit[n]["long_run_records_per_s"]),
        "records_fit_in_one_burst": not shortest,
        "shortest_seconds": shortest,
        "ceiling_records_per_s": records / shortest if shortest else long_run,
        "long_run_records_per_s": long_run,
    }


async def failed_writes(stack: Stack, expected: list[TargetWrite]) -> list[str]:
    """The expected customers that F&O lacks or holds with other values (account numbers,
    with the first differing field)."""
    fields = sorted({name for write in expected for name in write.body})
    rows = await customers(stack, "T*", fields)
    failed = []
    for write in expected:
        number = str(write.key["CustomerAccount"])
        row = rows.get(number)
        if row is None:
            failed.append(f"{number}: missing")
            continue
        wrong = [k for k, v in write.body.items() if not same_value(row.get(k), v)]
        if wrong:
            failed.append(
                f"{number}: {wrong[0]}={row.get(wrong[0])!r}, not {write.body[wrong[0]]!r}"
            )
    return failed


def _by_label(samples: dict[str, float], name: str) -> dict[str, float]:
    prefix = name + "{"
    return {
        k.removeprefix(prefix).rstrip("}"): v for k, v in samples.items() if k.startswith(prefix)
    }


async def backlog(bench: Bench, stack: Stack, prefix: str, size: int) -> list[tuple[bytes, bytes]]:
    """Seed ``size`` accounts and return the change events of them, encoded."""
    records = await seed_accounts(stack, prefix, size)
    template = await bench.template(stack)
    await ensure_topics(stack.settings.kafka, [stack.flow])
    return encode_events(template, records, bench.codec)


async def dead_letters(stack: Stack) -> int:
    """How many dead letters the flow wrote."""
    async with open_kafka(stack.settings) as (topics, _):
        return sum((await topics.end_offsets(stack.flow.dead_letter_topic)).values())


async def rss(bench: Bench) -> None:
    """Peak RSS of each process with ``rss_backlog`` events waiting: the events of a pool of
    real accounts, repeated (decided: encoding a million distinct events would take minutes;
    the consumer holds and skips repeats as it would any backlog)."""
    size = bench.settings.rss_backlog
    async with bench.stack("rss") as stack:
        pool = await backlog(bench, stack, "M", min(size, RSS_POOL))
        messages = list(itertools.islice(itertools.cycle(pool), size))
        produce_seconds = await produce(stack.settings.kafka, stack.flow.topic, messages)
        del messages
        idle_ingest = await stack.start_role("ingest")
        _, settled, _ = await drain(bench, stack, "rss backlog", size, bench.settings.rss_seconds)
        await asyncio.sleep(0)
        emulator = stack.processes.started["emulator"]
        peaks = {
            "emulator": emulator.sample_rss(),
            "apply": bench.peaks["rss backlog"],
            "ingest idle": idle_ingest.sample_rss() or peak_rss_mb(idle_ingest.process.pid) or 0,
        }
    references = {
        "emulator": bench.peaks.get("emulator apply"),
        "apply": bench.peaks.get("apply"),
        "ingest": peaks["ingest idle"],
    }
    values = {
        "emulator": peaks["emulator"],
        "apply": peaks["apply"],
        "ingest": bench.peaks.get("ingest"),
    }
    labels = {
        "emulator": "the emulator in the apply scenario (its small backlog)",
        "apply": "the apply process in the apply scenario (its small backlog)",
        "ingest": "an idle ingest process (its value: after the ingest scenario's load)",
    }
    for name, value in values.items():
        bench.add(
            Figure(
                "rss",
                f"peak RSS, {name}",
                "MiB",
                value,
                references[name],
                labels[name],
                "≤ 200 MB per process with a 1,000,000-event backlog",
                {
                    "backlog": size,
                    "settled_while_measured": settled,
                    "raw_producer_events_per_s": size / produce_seconds,
                },
            )
        )
