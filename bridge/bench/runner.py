"""Run the chosen scenarios in order, then write the table, the JSON and the PNG.

A scenario that fails is reported (its error in the JSON, a row without a number) and the
others still run; every process a scenario started is stopped when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bridge.bench.latency import end_to_end
from bridge.bench.limits import rss, throttled
from bridge.bench.measure import Figure
from bridge.bench.processes import stop_leftovers
from bridge.bench.report import (
    draw,
    markdown_table,
    result_json,
    rich_table,
    update_readme,
    write_json,
)
from bridge.bench.scenarios import Bench, apply_backlog, ingest
from bridge.bench.settings import BenchSettings

Scenario = Callable[[Bench], Awaitable[None]]

# apply_backlog also measures replay and backfill (they need its applied backlog)
STEPS: tuple[tuple[tuple[str, ...], Scenario], ...] = (
    (("ingest",), ingest),
    (("apply", "replay", "backfill"), apply_backlog),
    (("end_to_end",), end_to_end),
    (("throttled",), throttled),
    (("rss",), rss),
)


async def run_bench(settings: BenchSettings, console: Console) -> dict[str, Any]:
    """Run the scenarios; return the JSON document (also written under ``output_dir``)."""
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    leftovers = stop_leftovers(out / "runs")
    if leftovers:
        console.print(f"stopped processes a killed earlier bench left: {leftovers}")
    run_dir = out / "runs" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    bench = Bench(settings, run_dir, console)
    started = time.monotonic()
    errors: dict[str, str] = {}
    for names, scenario in STEPS:
        if not set(names) & set(settings.scenarios):
            continue
        console.rule(" · ".join(names))
        try:
            await scenario(bench)
        except Exception as exc:
            console.print(f"[red]{names[0]} failed: {exc}[/red]")
            errors[names[0]] = f"{type(exc).__name__}: {exc}"
            bench.figures.append(
                Figure(names[0], "failed", "", None, None, str(exc)[:200], "", {"error": str(exc)})
            )
    seconds = time.monotonic() - started
    document = result_json(bench.figures, bench.timeline, settings.model_dump(mode="json"), seconds)
    document["errors"] = errors
    publish(bench, document, out, console)
    if settings.publish_dir is not None:
        publish(bench, document, settings.publish_dir, console, readme=Path("README.md"))
    console.print(rich_table(bench.figures))
    console.print(f"{seconds:.0f} s; written to {out}/latest.json and latest.png")
    return document


def publish(
    bench: Bench,
    document: dict[str, Any],
    directory: Path,
    console: Console,
    readme: Path | None = None,
) -> None:
    """Write latest.json, latest.png and latest.md to ``directory`` (and README's table)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "latest.json", document)
    table = markdown_table(bench.figures)
    (directory / "latest.md").write_text(table + "\n")
    if not draw(bench.timeline, directory / "latest.png"):
        console.print("matplotlib is not installed (dev extras): no PNG drawn")
    if (
        readme is not None
        and readme.exists()
        and not update_readme(readme, table, document["finished_at"])
    ):
        console.print(f"{readme} has no bench-table markers; table not updated")
