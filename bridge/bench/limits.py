"""The two scenarios about limits: the apply backlog against an emulator that enforces the
documented service-protection limits, and peak memory with a large backlog."""

from __future__ import annotations

import asyncio
import itertools

from bridge.bench.load import encode_events, produce, seed_accounts
from bridge.bench.measure import Figure, customers
from bridge.bench.processes import peak_rss_mb
from bridge.bench.scenarios import Bench, drain
from bridge.bench.stack import Stack
from bridge.emulators.common.settings import EmulatorSettings
from bridge.kafka.ops import open_kafka
from bridge.kafka.topics import ensure_topics

RSS_POOL = 5_000


async def throttled(bench: Bench) -> None:
    """The apply backlog with the emulator's limits on (``throttled_emulator_env``): changes/s
    against the unthrottled run, 429s the bridge met, writes that failed."""
    size = bench.settings.throttled_events
    env = bench.settings.throttled_emulator_env
    async with bench.stack("throttled", env) as stack:
        messages = await backlog(bench, stack, "T", size)
        await produce(stack.settings.kafka, stack.flow.topic, messages)
        rate, settled = await drain(
            bench, stack, "throttled", size, bench.settings.throttled_seconds
        )
        visible = len(await customers(stack, "T*"))
        dead = await dead_letters(stack)
        log_text = stack.processes.started["apply"].log_path.read_text(errors="replace")
    throttled_answers = sum(
        1 for line in log_text.splitlines() if "retrying" in line and "429" in line
    )
    bench.add(
        Figure(
            "throttled",
            "backlog → emulator enforcing the limits",
            "changes/s",
            rate,
            bench.unthrottled_apply,
            "the same backlog against the unthrottled emulator (the emulated ceiling when "
            "the limits allow more)",
            "≥ 90 % of the emulated ceiling, zero failed writes",
            {
                "events": size,
                "settled": settled,
                "limits_env": env,
                "emulator_enforces_limits": "limits_enabled" in EmulatorSettings.model_fields,
                "answers_429_retried": throttled_answers,
                "failed_writes": dead + (size - visible),
                "dead_letters": dead,
                "missing_in_target": size - visible,
            },
        )
    )


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
        _, settled = await drain(bench, stack, "rss backlog", size, bench.settings.rss_seconds)
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
