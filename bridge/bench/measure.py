"""What the scenarios measure with: figures beside their references, a timeline of throughput
and latency, percentiles, and progress read from Kafka and the emulated F&O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bridge.bench.processes import BenchError, Started
from bridge.bench.stack import Stack
from bridge.fno.reader import filter_expression
from bridge.fno.sink import CROSS_COMPANY
from bridge.kafka.ops import open_kafka


@dataclass
class Figure:
    """One measured figure beside its reference from the same run, and the issue's target."""

    scenario: str
    figure: str
    unit: str
    value: float | None
    reference: float | None
    reference_label: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """``value / reference`` when both are known."""
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    def as_dict(self) -> dict[str, Any]:
        """JSON form, the ratio included."""
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Timeline:
    """Throughput (per second) and latency samples over the bench's wall-clock time."""

    origin: float = field(default_factory=time.monotonic)
    points: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, series: str, at: float, per_second: float) -> None:
        """A throughput sample of ``series`` at monotonic time ``at``."""
        self.points.append({"series": series, "t": round(at - self.origin, 2), "rate": per_second})

    def latency(self, series: str, at: float, milliseconds: float) -> None:
        """A latency sample of ``series`` at monotonic time ``at``."""
        self.points.append(
            {"series": series, "t": round(at - self.origin, 2), "latency_ms": milliseconds}
        )


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def committed_total(stack: Stack) -> tuple[int, int]:
    """(committed, end) offsets summed over the flow's change topic partitions."""
    flow = stack.flow
    async with open_kafka(stack.settings) as (topics, groups):
        ends = await topics.end_offsets(flow.topic)
        committed = await groups.committed(flow.group, flow.topic, list(ends))
    return sum(committed.values()), sum(ends.values())


async def follow(
    series: str,
    timeline: Timeline,
    progress: Callable[[], Awaitable[int]],
    goal: int,
    seconds: float,
    check: Callable[[], None],
    interval: float = 0.5,
) -> tuple[int, float]:
    """Sample ``progress()`` until it reaches ``goal`` or ``seconds`` pass; record the rate
    per interval. Return (progress, seconds from the first movement to the last)."""
    deadline = time.monotonic() + seconds
    last, last_at = await progress(), time.monotonic()
    start_value, first_move, last_move = last, None, last_at
    while last < goal and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        check()
        now_value, now = await progress(), time.monotonic()
        if now_value > last:
            first_move = first_move if first_move is not None else last_at
            last_move = now
        timeline.rate(series, now, (now_value - last) / (now - last_at))
        last, last_at = now_value, now
    elapsed = (last_move - first_move) if first_move is not None else 0.0
    return last - start_value, elapsed


async def fno_totals(stack: Stack) -> dict[str, int]:
    """The emulated F&O's write counters (creates, updates, deletes) over every entity."""
    async with stack.bridge_client("fno") as fno:
        response = await fno.request("GET", f"{stack.settings.fno.base_url}/_emulator/stats")
    totals: dict[str, Any] = response.json()["totals"]
    return {k: int(v) for k, v in totals.items() if isinstance(v, int)}


async def customers(
    stack: Stack, pattern: str, fields: Sequence[str] = ("OrganizationName", "CreditLimit")
) -> dict[str, dict[str, Any]]:
    """F&O customers whose account matches ``pattern`` (F&O ``*`` wildcard), by account,
    with ``fields``."""
    rows: dict[str, dict[str, Any]] = {}
    params = {
        "cross-company": "true",
        "$filter": f"CustomerAccount eq '{pattern}'",
        "$select": ",".join(sorted({"CustomerAccount", *fields})),
    }
    async with stack.user_client("fno") as fno:
        async for page in fno.pages("CustomersV3", params=params):
            for row in page.get("value", []):
                rows[row["CustomerAccount"]] = row
    return rows


KEYS_PER_QUERY = 40


async def customers_at(
    stack: Stack, company: str, accounts: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The F&O customers of ``company`` among ``accounts``, by account: queries of full keys,
    as the bridge's sink reads, so a watcher polling often costs the emulator a key lookup
    per account instead of a scan of the table."""
    rows: dict[str, dict[str, Any]] = {}
    async with stack.user_client("fno") as fno:
        for start in range(0, len(accounts), KEYS_PER_QUERY):
            chunk = accounts[start : start + KEYS_PER_QUERY]
            clauses = " or ".join(
                f"({filter_expression({'dataAreaId': company, 'CustomerAccount': account})})"
                for account in chunk
            )
            params = {**CROSS_COMPANY, "$filter": clauses, "$select": "CustomerAccount"}
            async for page in fno.pages("CustomersV3", params=params):
                for row in page.get("value", []):
                    rows[row["CustomerAccount"]] = row
    return rows


async def process_metrics(started: Started) -> dict[str, float]:
    """A bridge process's Prometheus samples from its admin API's ``/metrics``, summed over
    labels by sample name (``bridge_http_throttled_total``: 429s from every target) and kept
    per label set too (``bridge_http_throttled_total{target="fno"}``)."""
    if started.admin_port is None:
        raise BenchError(f"{started.name} serves no admin API")
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(f"http://127.0.0.1:{started.admin_port}/metrics")
    response.raise_for_status()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
            if sample.labels:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples
