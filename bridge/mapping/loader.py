"""Load the shipped templates and apply a user's overrides file.

The overrides file is JSON (``.json``) or TOML (``.toml``) with one table per template name;
each table holds only what changes, for example::

    [accounts]
    enabled = true
    [[accounts.fields]]
    target = "CustomerGroupId"
    default = "30"
    [accounts.value_maps.country.values]
    "österreich" = "AUT"

Field rules are matched on ``target``; ``remove = true`` drops one. Unknown template names
and invalid results are configuration errors, reported with the file name.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.errors import ConfigError
from bridge.mapping.rules import RULES
from bridge.mapping.template import Template


def shipped_templates() -> dict[str, Template]:
    """The templates that ship with the bridge, with the spec's defaults and value maps."""
    templates: dict[str, Template] = {}
    for entry in sorted(resources.files("bridge.templates").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            try:
                template = Template.model_validate_json(entry.read_text())
            except ValidationError as exc:
                raise ConfigError(f"shipped template {entry.name} is invalid: {exc}") from exc
            templates[template.name] = template
    return templates


def read_overrides(path: Path) -> dict[str, Any]:
    """Parse an overrides file (JSON or TOML)."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read template overrides {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of template names")
    return data


def check_references(templates: dict[str, Template]) -> None:
    """Every child flow, dependency and rule a template names must exist."""
    for template in templates.values():
        names = [c.flow for c in template.children] + template.depends_on
        unknown = sorted({n for n in names if n not in templates})
        if unknown:
            raise ConfigError(f"template {template.name} names unknown flows {unknown}")
        rules = sorted(set(template.rules) - set(RULES))
        if rules:
            raise ConfigError(f"template {template.name} names unknown rules {rules}")


def load_templates(overrides_file: Path | None = None) -> dict[str, Template]:
    """Shipped templates with the user's overrides applied, cross-checked."""
    templates = _load(overrides_file)
    check_references(templates)
    return templates


def _load(overrides_file: Path | None) -> dict[str, Template]:
    templates = shipped_templates()
    if overrides_file is None:
        return templates
    for name, changes in read_overrides(overrides_file).items():
        if name not in templates:
            raise ConfigError(f"{overrides_file}: unknown template {name!r}")
        if not isinstance(changes, dict):
            raise ConfigError(f"{overrides_file}: [{name}] must be a table")
        try:
            templates[name] = templates[name].override(changes)
        except ValidationError as exc:
            raise ConfigError(f"{overrides_file}: [{name}] is invalid: {exc}") from exc
    return templates
