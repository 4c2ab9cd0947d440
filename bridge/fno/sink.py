"""Writes to Finance and Operations: F&O's requests for the shared read-compare-write
algorithm (:class:`bridge.sinks.base.ReadCompareWriteSink`).

F&O has no upsert (a PATCH of a missing key fails), so a record is read by its full key
across companies, created with a POST when absent, and otherwise PATCHed with only the
fields that differ under the ETag just read. A write whose fields already hold the mapped
values sends nothing, so re-applying an event changes nothing and never duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.errors import (
    DependencyMissing,
    NotFound,
)
from bridge.http.client import ApiClient
from bridge.http.odata import key_path
from bridge.mapping.writes import TargetWrite
from bridge.sinks.base import ReadCompareWriteSink

CROSS_COMPANY = {"cross-company": "true"}


def same_value(current: Any, wanted: Any) -> bool:
    """Whether F&O's stored value equals the mapped one (F&O stores empty strings, not null)."""
    if wanted is None or wanted == "":
        return current in (None, "")
    if isinstance(wanted, int | float) and isinstance(current, int | float):
        return abs(float(current) - float(wanted)) < 1e-9
    return bool(current == wanted)


def changed_fields(current: Mapping[str, Any], write: TargetWrite) -> dict[str, Any]:
    """The mapped fields whose stored value differs, keys excluded."""
    return {
        name: value
        for name, value in write.body.items()
        if name not in write.key and not same_value(current.get(name), value)
    }


class FnoSink(ReadCompareWriteSink):
    """F&O's requests for the shared read-compare-write algorithm, across companies."""

    system_name = "F&O"

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def read(self, entity_set: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record at ``key``, or ``None`` if it does not exist."""
        return await self.current(key_path(entity_set, key))

    async def address(self, write: TargetWrite) -> str:
        """The record's key path."""
        return key_path(write.entity_set, write.key)

    async def current(self, address: str) -> dict[str, Any] | None:
        """The record at ``address`` (any company), or ``None``."""
        try:
            return await self._client.get_json(address, params=CROSS_COMPANY)
        except NotFound:
            return None

    async def check_requirements(self, write: TargetWrite) -> None:
        """Every record ``write.requires`` must exist in F&O."""
        for entity_set, key in write.requires:
            if await self.read(entity_set, key) is None:
                text = ",".join(f"{k}={v}" for k, v in key.items())
                raise DependencyMissing(f"{entity_set} {text} does not exist in F&O yet")

    async def create(self, address: str, write: TargetWrite) -> None:
        """POST the whole body (F&O has no upsert; a taken key is an error)."""
        await self._client.request("POST", write.entity_set, json=dict(write.body))

    async def changes(self, write: TargetWrite, current: Mapping[str, Any]) -> dict[str, Any]:
        """The mapped fields whose stored value differs, keys and create-only excluded."""
        return {
            k: v for k, v in changed_fields(current, write).items() if k not in write.create_only
        }

    async def update(
        self, address: str, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None:
        """PATCH the differences under the ETag just read."""
        await self._client.request(
            "PATCH", address, json=dict(changes), params=CROSS_COMPANY, headers=_if_match(current)
        )

    async def delete(self, address: str, current: Mapping[str, Any]) -> None:
        """DELETE under the ETag just read."""
        await self._client.request(
            "DELETE", address, params=CROSS_COMPANY, headers=_if_match(current)
        )


def _if_match(current: Mapping[str, Any]) -> dict[str, str]:
    etag = current.get("@odata.etag")
    return {"If-Match": str(etag)} if etag else {}
