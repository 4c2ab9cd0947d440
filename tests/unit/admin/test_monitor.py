"""A flow's monitor: its state, rates and latency percentiles, from the engine's outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bridge.admin.health import delta_links, delta_token_time
from bridge.admin.monitor import FlowMonitor, percentile
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.engine.stream import Partition
from bridge.errors import TargetUnavailable, Throttled


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(number: str, published: float) -> ChangeEvent:
    source = Source(
        system=System.SALES,
        entity="account",
        record_id=f"id-{number}",
        change_time=datetime.fromtimestamp(published, UTC),
        capture=Capture.WEBHOOK,
        business_key=number,
        record_version=1,
    )
    created = ChangeEvent.create(source, Operation.CREATE, after={"accountnumber": number})
    return replace(created, published_at=datetime.fromtimestamp(published, UTC))


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([3.0], 0.99, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([float(n) for n in range(1, 101)], 0.95, 95.0),
        ([float(n) for n in range(1, 101)], 0.99, 99.0),
    ],
)
def test_nearest_rank_percentile(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_applied_changes_give_rate_latency_and_last_change() -> None:
    clock = Clock(1_000_000.0)
    monitor = FlowMonitor("accounts", clock)
    monitor.running_here = True
    for n in range(30):
        clock.now = 1_000_000.0 + n
        monitor.seen(event(f"A-{n}", clock.now - 0.5))
        monitor.applied(event(f"A-{n}", clock.now - 0.5))
    assert monitor.applied_total == 30
    assert monitor.changes_per_minute() == 30
    assert monitor.latency()["p50"] == pytest.approx(0.5)
    assert monitor.last_applied is not None and monitor.last_applied["record"] == "A-29"
    clock.now += 120
    assert monitor.changes_per_minute() == 0
    series = monitor.series()
    assert len(series) == 60
    assert sum(p["per_second"] for p in series) * 10 == pytest.approx(30)


def test_state_follows_pause_and_blocked_partitions() -> None:
    clock = Clock(500.0)
    monitor = FlowMonitor("accounts", clock)
    assert monitor.state() == "idle"
    monitor.running_here = True
    assert monitor.state() == "running"
    partition = Partition("p2c.sales.account", 1)
    monitor.blocked(partition, Throttled("429 from F&O", retry_after=10), 10)
    assert monitor.state() == "throttled"
    monitor.blocked(partition, TargetUnavailable("F&O answered 503"), 5)
    assert monitor.state() == "failing"
    assert monitor.errors[0]["message"].startswith("p2c.sales.account:1 waits 5.0 s")
    clock.now += 60  # long past the resume time and the grace period: recovered
    assert monitor.state() == "running"
    monitor.paused = True
    assert monitor.state() == "paused"


def test_dead_letters_are_counted_by_stage_and_error() -> None:
    monitor = FlowMonitor("accounts")
    monitor.dead_lettered("map", ValueError("no value map entry for 'Österreich'"))
    monitor.dead_lettered("map", ValueError("no value map entry for 'Schweiz'"))
    (reason,) = monitor.snapshot()["dead_letters"]["by_reason"]
    assert reason == {
        "stage": "map",
        "error": "ValueError",
        "count": 2,
        "last_message": "no value map entry for 'Schweiz'",
    }


def test_delta_link_age_is_read_from_its_token() -> None:
    link = "http://org/api/data/v9.2/accounts?$deltatoken=919042%2108%2F22%2F2026%2008%3A10%3A44"
    issued = delta_token_time(link)
    assert issued == datetime(2026, 8, 22, 8, 10, 44, tzinfo=UTC)
    now = issued.timestamp() + 6.5 * 86400
    (row,) = delta_links({"delta|sales|account": link, "pause|accounts": {}}, {}, 7, now)
    assert row["entity"] == "sales.account"
    assert row["age_seconds"] == 6.5 * 86400
    assert row["expires_in_seconds"] == 0.5 * 86400
