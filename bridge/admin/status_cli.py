"""``bridge status``: the status page's per-flow table in a terminal, read from the admin API
of a running bridge (``BRIDGE_ADMIN__URL``, else the admin host and port)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bridge.config import AdminSettings
from bridge.errors import BridgeError

STATE_STYLES = {
    "running": "green",
    "paused": "yellow",
    "throttled": "yellow",
    "failing": "bold red",
    "idle": "dim",
}


class BridgeUnreachable(BridgeError):
    """The admin API did not answer (``bridge status`` exits 1)."""


def fetch_status(settings: AdminSettings, *, timeout: float = 5.0) -> dict[str, Any]:
    """``GET /api/status`` of the bridge the settings name.

    Raises :class:`BridgeUnreachable` when it does not answer or refuses the token.
    """
    url = f"{settings.base_url}/api/status"
    headers = {}
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BridgeUnreachable(
            f"no bridge answers at {settings.base_url} ({exc.__class__.__name__}); is `bridge run` "
            "running, and BRIDGE_ADMIN__URL (or __HOST/__PORT) set to its admin address?"
        ) from None
    if response.status_code == 401:
        raise BridgeUnreachable(f"{settings.base_url} refused the token; set BRIDGE_ADMIN__TOKEN")
    if response.status_code != 200:
        raise BridgeUnreachable(f"{url} answered HTTP {response.status_code}")
    body: dict[str, Any] = response.json()
    return body


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "—"
    age = now - at
    return f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago"


def _change(change: dict[str, Any] | None, now: float) -> str:
    if not change:
        return "—"
    return f"{change['operation']} {change['record']} ({_ago(change['at'], now)})"


def flows_table(status: dict[str, Any]) -> Table:
    """One row per flow: state, lag, applied, rate, latency, last changes, dead letters."""
    now = float(status["process"]["now"])
    table = Table(title=f"flows (role {status['process']['role']})", title_justify="left")
    for column in ("flow", "state", "lag", "applied", "per min", "p50/p95 s"):
        table.add_column(column, justify="right" if column not in ("flow", "state") else "left")
    for column in ("last seen", "last applied", "dead letters"):
        table.add_column(column)
    for flow in status["flows"]:
        latency = flow["latency_seconds"]
        letters = flow["dead_letters"]
        reasons = ", ".join(
            f"{r['count']} x {r['stage']}/{r['error']}" for r in letters["by_reason"]
        )
        table.add_row(
            Text(flow["name"]),
            Text(flow["state"], style=STATE_STYLES.get(flow["state"], "")),
            str(flow["lag"]["total"]),
            str(flow["applied_total"]),
            str(flow["changes_per_minute"]),
            f"{_seconds(latency['p50'])}/{_seconds(latency['p95'])}",
            Text(_change(flow["last_seen"], now)),
            Text(_change(flow["last_applied"], now)),
            Text(f"{letters['total']} {reasons}".strip()),
        )
    return table


def show_status(settings: AdminSettings, *, as_json: bool, console: Console | None = None) -> None:
    """Print the running bridge's flows as a table, or its whole status as JSON."""
    status = fetch_status(settings)
    out = console or Console()
    if as_json:
        out.print_json(json.dumps(status))
        return
    out.print(flows_table(status))
    problems = [
        f"{f['name']}: {b['partition']} {b['kind']}: {b['cause']}"
        for f in status["flows"]
        for b in f["blocked"]
    ]
    for problem in problems:
        out.print(Text(problem, style="red"))
