"""Writes to Finance and Operations: idempotent by reading before writing.

F&O has no upsert (a PATCH of a missing key fails), so every write is: read the record by
its full key; create it if absent; otherwise PATCH only the fields that differ, guarded by
the ETag just read. A write whose fields already hold the mapped values sends nothing, so
re-applying an event changes nothing and never creates a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from bridge.errors import (
    AlreadyExists,
    DependencyMissing,
    NotFound,
    PreconditionFailed,
)
from bridge.http.client import ApiClient
from bridge.http.odata import key_path
from bridge.mapping.writes import TargetWrite, WriteKind
from bridge.sinks.base import ApplyOutcome, check_guard

log = structlog.get_logger(__name__)

CROSS_COMPANY = {"cross-company": "true"}
_MAX_CONFLICT_RETRIES = 3


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


class FnoSink:
    """Applies target writes to F&O entity sets through one :class:`ApiClient`."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def read(self, entity_set: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record at ``key``, or ``None`` if it does not exist."""
        try:
            return await self._client.get_json(key_path(entity_set, key), params=CROSS_COMPANY)
        except NotFound:
            return None

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the target record match ``write``; safe to repeat."""
        for _ in range(_MAX_CONFLICT_RETRIES):
            try:
                return await self._apply_once(write)
            except (PreconditionFailed, AlreadyExists):
                log.info(
                    "fno_write_conflict", entity_set=write.entity_set, target_key=write.key_text
                )
        return await self._apply_once(write)

    async def _check_requirements(self, write: TargetWrite) -> None:
        for entity_set, key in write.requires:
            if await self.read(entity_set, key) is None:
                text = ",".join(f"{k}={v}" for k, v in key.items())
                raise DependencyMissing(f"{entity_set} {text} does not exist in F&O yet")

    async def _apply_once(self, write: TargetWrite) -> ApplyOutcome:
        path = key_path(write.entity_set, write.key)
        current = await self.read(write.entity_set, write.key)
        if current is None and write.kind is WriteKind.UPDATE_IF_EXISTS:
            return ApplyOutcome.UNCHANGED
        if current is None and write.kind is WriteKind.UPDATE:
            raise DependencyMissing(
                f"{write.entity_set} {write.key_text} does not exist in F&O yet"
            )
        check_guard(write, current)
        await self._check_requirements(write)
        if write.kind is WriteKind.DELETE:
            if current is None:
                return ApplyOutcome.UNCHANGED
            await self._client.request(
                "DELETE", path, params=CROSS_COMPANY, headers=_if_match(current)
            )
            return ApplyOutcome.DELETED
        if current is None:
            await self._client.request("POST", write.entity_set, json=dict(write.body))
            return ApplyOutcome.CREATED
        changes = {
            k: v for k, v in changed_fields(current, write).items() if k not in write.create_only
        }
        if not changes:
            return ApplyOutcome.UNCHANGED
        await self._client.request(
            "PATCH", path, json=changes, params=CROSS_COMPANY, headers=_if_match(current)
        )
        return ApplyOutcome.UPDATED


def _if_match(current: Mapping[str, Any]) -> dict[str, str]:
    etag = current.get("@odata.etag")
    return {"If-Match": str(etag)} if etag else {}
