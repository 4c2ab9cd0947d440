"""``bridge bench --quick`` end to end: every scenario yields a number beside its reference,
and every process it started is gone afterwards. Speed is never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIGURES = {
    "ingest": 1,
    "apply": 1,
    "replay": 1,
    "backfill": 1,
    "end_to_end": 4,  # achieved rate and p99 at each of the two quick loads
    "throttled": 1,
    "rss": 3,
}


@pytest.mark.timeout(900)
def test_quick_bench_reports_every_scenario_beside_its_reference(
    broker: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": broker,
        "BRIDGE_BENCH__OUTPUT_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "bench", "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["errors"] == {}
    counted = {name: 0 for name in FIGURES}
    for figure in document["figures"]:
        assert figure["value"] is not None and figure["value"] > 0, figure
        assert figure["reference"] is not None and figure["reference"] > 0, figure
        counted[figure["scenario"]] += 1
    assert counted == FIGURES
    details = {f["scenario"]: f["details"] for f in document["figures"]}
    assert details["replay"]["target_writes_during_replay"] == 0
    assert details["apply"]["visible_in_target"] == details["apply"]["events"]
    throttled = details["throttled"]
    assert throttled["failed_writes"] == 0, throttled["failed_examples"]
    assert throttled["missing_or_different_in_target"] == 0
    assert throttled["answers_429"] >= 0  # read from the apply process's /metrics
    assert throttled["ceiling"]["ceiling_records_per_s"] > 0
    assert (tmp_path / "latest.png").stat().st_size > 0
    assert not list(tmp_path.glob("runs/*/*.pid")), "a started process was left running"
