"""The bench's outputs: a rich table, the JSON, a PNG of throughput and latency over time, and
the Markdown table README shows (between its ``bench-table`` markers)."""

from __future__ import annotations

import json
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bridge.bench.measure import Figure, Timeline

README_START = "<!-- bench-table:start -->"
README_END = "<!-- bench-table:end -->"


def number(value: float | None) -> str:
    """A figure as text: thousands separated, one decimal below 100."""
    if value is None:
        return "—"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def ratio(figure: Figure) -> str:
    """The figure as a percentage of its reference."""
    return "—" if figure.ratio is None else f"{figure.ratio:.1%}"


def rich_table(figures: list[Figure]) -> Table:
    """Every figure beside its reference and the target."""
    table = Table(title="make bench", show_lines=False)
    for column in ("scenario", "figure", "value", "reference", "ratio", "target"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for f in figures:
        table.add_row(
            f.scenario,
            f.figure,
            f"{number(f.value)} {f.unit}",
            f"{number(f.reference)} ({f.reference_label})",
            ratio(f),
            f.target,
        )
    return table


def markdown_table(figures: list[Figure]) -> str:
    """The same table in Markdown, for README and docs/measurements.md."""
    lines = [
        "| scenario | figure | value | reference (same run) | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.scenario} | {f.figure} | {number(f.value)} {f.unit} | "
            f"{number(f.reference)} — {f.reference_label} | {ratio(f)} | {f.target} |"
        )
    return "\n".join(lines)


def result_json(
    figures: list[Figure], timeline: Timeline, settings: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """The JSON document: when, where, with what sizes, every figure and the timeline."""
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "settings": settings,
        "figures": [f.as_dict() for f in figures],
        "timeline": timeline.points,
    }


def draw(timeline: Timeline, path: Path) -> bool:
    """Draw throughput and latency over time to ``path``; False when matplotlib is absent
    (an installed wheel without the dev extras)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for axis, key, label in ((top, "rate", "per second"), (bottom, "latency_ms", "ms")):
        names = sorted({p["series"] for p in timeline.points if key in p})
        for name in names:
            points = [p for p in timeline.points if p["series"] == name and key in p]
            style = "o" if len(points) == 1 else "-"
            axis.plot(
                [p["t"] for p in points],
                [p[key] for p in points],
                style,
                label=name,
                markersize=3 if key == "latency_ms" else 5,
            )
        axis.set_ylabel(label)
        axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        if names:
            axis.legend(fontsize=7, ncol=3)
    top.set_title("throughput (changes, events or rows per second)")
    bottom.set_title("latency (ingest: webhook answered; end to end: visible in F&O)")
    bottom.set_xlabel("seconds since the bench started")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def update_readme(readme: Path, table: str, when: str) -> bool:
    """Replace the table between README's bench markers; False when the markers are absent."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    block = f"{README_START}\n_Last run: {when} (`make bench`)._\n\n{table}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: block, text))
    return True


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the JSON document."""
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
