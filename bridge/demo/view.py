"""The demo's live terminal view: each change, when F&O showed it, and the latency."""

from __future__ import annotations

import statistics

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from bridge.demo.activity import Change

_SHOWN = 18


def summary(changes: list[Change]) -> str:
    """One line: counts and latency percentiles of the changes seen so far."""
    latencies = sorted(c.latency_ms for c in changes if c.latency_ms is not None)
    if not latencies:
        return f"{len(changes)} changes made, waiting for the other system…"
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    return (
        f"{len(latencies)}/{len(changes)} changes synced · latency p50 "
        f"{statistics.median(latencies):.0f} ms · p95 {p95:.0f} ms · max {latencies[-1]:.0f} ms"
    )


def render(changes: list[Change], title: str) -> Panel:
    """The table of the latest changes plus the summary line."""
    table = Table(expand=True)
    table.add_column("Record")
    table.add_column("User action")
    table.add_column("Shows up in the other system as", overflow="fold")
    table.add_column("After", justify="right")
    for change in changes[-_SHOWN:]:
        latency = change.latency_ms
        status = "[yellow]pending[/]" if latency is None else f"[green]{latency:.0f} ms[/]"
        table.add_row(change.subject, change.what, change.expected, status)
    return Panel(Group(table, summary(changes)), title=title)
