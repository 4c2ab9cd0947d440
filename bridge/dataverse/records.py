"""Dataverse record shapes → one image shape (the Web API's JSON, without annotations).

Webhooks carry ``Entity`` attributes as ``{"key", "value"}`` pairs with typed values
(OptionSetValue, Money, EntityReference, ``/Date(ms)/``); the Web API returns plain JSON with
lookups as ``_<name>_value``. Both become the same image, so a change looks the same on the
topic whichever way it was captured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.errors import InvalidNotification

_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_wcf_date(value: str) -> datetime | None:
    """Parse a WCF JSON date ``/Date(ms)/`` or ``/Date(ms+hhmm)/`` into UTC; else ``None``."""
    match = _DATE.match(value)
    if not match:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))


def iso(moment: datetime) -> str:
    """Dataverse's ISO-8601 UTC form, e.g. ``2026-11-22T17:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    """Parse an ISO-8601 timestamp (``Z`` or offset); ``None`` if absent or invalid."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_web_api_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Web API record without OData annotations (``@odata.etag`` and the like)."""
    return {key: value for key, value in raw.items() if "@" not in key}


def _typed_value(name: str, value: Any) -> tuple[str, Any]:
    if isinstance(value, dict):
        kind = str(value.get("__type", "")).split(":", 1)[0]
        if kind == "EntityReference" or ("LogicalName" in value and "Id" in value):
            return f"_{name}_value", str(value.get("Id")).lower()
        if kind in ("OptionSetValue", "Money") or "Value" in value:
            return name, value.get("Value")
        raise InvalidNotification(f"attribute {name!r} has an unsupported typed value")
    if isinstance(value, str) and value.startswith("/Date("):
        moment = parse_wcf_date(value)
        if moment is not None:
            return name, iso(moment)
    return name, value


def normalize_entity_attributes(attributes: Iterable[Any]) -> dict[str, Any]:
    """Turn a webhook ``Attributes`` list into a Web API-shaped image."""
    image: dict[str, Any] = {}
    for pair in attributes:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise InvalidNotification("Attributes must be a list of {key, value} pairs")
        name, value = _typed_value(pair["key"], pair.get("value"))
        image[name] = value
    return image
