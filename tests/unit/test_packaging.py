"""What the installed product offers besides its commands: its schemas and its version.

The wheel itself is exercised by tests/integration/test_wheel.py; here, the checkout.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.config import Settings
from bridge.contract.schemas import shipped_schemas_dir

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_reads_the_top_level_schemas() -> None:
    # an editable install has no copy in the package: an edited .avsc takes effect at once
    assert shipped_schemas_dir() == REPO / "schemas"
    assert len(list(shipped_schemas_dir().glob("*.avsc"))) == 11


def test_schemas_dir_setting_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BRIDGE_SCHEMAS_DIR", raising=False)
    assert Settings().schemas_dir == shipped_schemas_dir()
    monkeypatch.setenv("BRIDGE_SCHEMAS_DIR", str(tmp_path))
    assert Settings().schemas_dir == tmp_path


def test_version_is_the_installed_distributions() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"bridge {version('bridge')}\n"
