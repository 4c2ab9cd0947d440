"""The wheel is the product: built from this tree, installed into a fresh virtual env and used
from a directory outside the repository, it runs and finds its Avro schemas in site-packages.

Its dependencies come from the package index (pip's cache makes a rerun quick), pinned by
constraints.txt like the developer's env. The temporary directory goes away even on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[2]

# runs in the installed env: every entity's event survives encode → decode with the
# schemas the package carries, and the checkout is nowhere on the path
ROUND_TRIP = textwrap.dedent(
    """
    from datetime import UTC, datetime
    from pathlib import Path

    import bridge
    from bridge.config import Settings
    from bridge.contract.catalog import SOURCE_ENTITIES
    from bridge.contract.codec import EventCodec
    from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source

    package = Path(bridge.__file__).parent
    schemas = Settings().schemas_dir
    assert schemas == package / "schemas", f"schemas read from {schemas}"
    codec = EventCodec.from_directory(schemas)
    samples = {"string": "text ü", "int": 42, "long": 2**40, "boolean": True, "double": 1234.5}
    for entity in SOURCE_ENTITIES:
        fields = codec.schema_for(entity).image_fields
        image = {name: samples[kind.kind] for name, kind in fields.items()}
        source = Source(
            system=entity.system,
            entity=entity.entity,
            record_id="6d81597f-0f9f-e711-8122-000d3aa2331c",
            change_time=datetime(2026, 11, 22, 17, 0, tzinfo=UTC),
            capture=Capture.WEBHOOK,
            record_version=7,
        )
        event = ChangeEvent.create(source, Operation.CREATE, after={**image, "not_in_schema": [1, "two"]})
        assert codec.decode(codec.encode(event, entity)) == event, entity.schema_file
    print(package)
    """
)


@dataclass(frozen=True)
class InstalledWheel:
    """A fresh virtual env with the built wheel installed, and a directory outside the repo."""

    bin: Path
    workdir: Path

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the env's programs from ``workdir``, with no ``BRIDGE_*`` setting."""
        return _run([str(self.bin / program), *args], cwd=self.workdir)


def _clean_env() -> dict[str, str]:
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_") and k not in dropped}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=240, check=False
    )


def _checked(command: list[str], cwd: Path) -> None:
    result = _run(command, cwd)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed() -> Iterator[InstalledWheel]:
    """Build the wheel, install it with its dependencies into a new env; remove both after."""
    with tempfile.TemporaryDirectory(prefix="bridge-wheel-") as tmp:
        root = Path(tmp)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        _checked([*pip, "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(REPO)], root)
        (wheel,) = (root / "dist").glob("bridge-*.whl")
        # no pip inside the env: this process's pip installs into it (--python), which
        # saves bootstrapping a second pip
        venv.EnvBuilder(with_pip=False).create(root / "env")
        python = root / "env" / "bin" / "python"
        constraints = str(REPO / "constraints.txt")
        _checked(
            [*pip, "--python", str(python), "install", "-q", "-c", constraints, str(wheel)], root
        )
        workdir = root / "elsewhere"
        workdir.mkdir()
        yield InstalledWheel(root / "env" / "bin", workdir)


def test_help(installed: InstalledWheel) -> None:
    result = installed.run("bridge", "--help")
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout
    assert "emulate" in result.stdout


def test_version(installed: InstalledWheel) -> None:
    result = installed.run("bridge", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"bridge {version('bridge')}"


def test_codec_reads_the_schemas_shipped_in_site_packages(installed: InstalledWheel) -> None:
    # -I: only the env's own site-packages, not the working directory or PYTHON* variables
    result = installed.run("python", "-I", "-c", ROUND_TRIP)
    assert result.returncode == 0, result.stderr
    package = Path(result.stdout.strip())
    assert package.is_relative_to(installed.bin.parent)
    assert not package.is_relative_to(REPO)
