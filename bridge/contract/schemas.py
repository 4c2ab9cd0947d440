"""Where this installation of the bridge finds its Avro schemas."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_schemas_dir() -> Path:
    """The directory of the ``*.avsc`` envelope schemas that came with the package.

    A built wheel carries them as package data, ``bridge/schemas/``: its build copies the
    repository's top-level ``schemas/`` there (see pyproject.toml). A source checkout or an
    editable install has no such copy and reads the top-level ``schemas/`` itself, so an edit
    of a schema takes effect without reinstalling. ``BRIDGE_SCHEMAS_DIR`` overrides both.
    """
    packaged = files("bridge") / "schemas"
    # a wheel is always unpacked on disk, so the package data is a real directory
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"
