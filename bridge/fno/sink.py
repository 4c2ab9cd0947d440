"""Writes to Finance and Operations: F&O's requests for the shared read-compare-write
algorithm (:class:`bridge.sinks.base.ReadCompareWriteSink`).

F&O has no upsert (a PATCH of a missing key fails), so a record is read by its full key
across companies, created with a POST when absent, and otherwise PATCHed with only the
fields that differ under the ETag just read. A write whose fields already hold the mapped
values sends nothing, so re-applying an event changes nothing and never duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.config import BulkSettings
from bridge.errors import DependencyMissing
from bridge.http.batch import BatchRequest
from bridge.http.client import ApiClient
from bridge.http.odata import key_path
from bridge.mapping.writes import TargetWrite
from bridge.sinks.base import ReadCompareWriteSink, Step
from bridge.sinks.batching import Address, BatchedReads, BatchedWrites

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

    def __init__(self, client: ApiClient, bulk: BulkSettings | None = None) -> None:
        self._client = client
        bulk = bulk or BulkSettings()
        self._reads = BatchedReads(client, bulk, CROSS_COMPANY)
        # F&O answers every change set of a $batch on its own (spec B.1)
        self._writes = BatchedWrites(client, bulk, continue_on_error=False)

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        await self._writes.aclose()
        await self._reads.aclose()

    async def read(self, entity_set: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record at ``key``, or ``None`` if it does not exist."""
        return await self.current(_address(entity_set, key))

    async def address(self, write: TargetWrite, earlier: Sequence[Step] = ()) -> Address:
        """The record's key path."""
        return _address(write.entity_set, write.key)

    async def current(
        self, address: Address, earlier: Sequence[Step] = ()
    ) -> dict[str, Any] | None:
        """The record at ``address`` (any company), or ``None``."""
        return await self._reads.read(address)

    async def check_requirements(self, write: TargetWrite) -> None:
        """Every record ``write.requires`` must exist in F&O."""
        for entity_set, key in write.requires:
            if await self.read(entity_set, key) is None:
                text = ",".join(f"{k}={v}" for k, v in key.items())
                raise DependencyMissing(f"{entity_set} {text} does not exist in F&O yet")

    async def create(
        self, address: Address, write: TargetWrite, earlier: Sequence[Step] = ()
    ) -> BatchRequest:
        """POST the whole body (F&O has no upsert; a taken key is an error)."""
        return self._writes.request("POST", write.entity_set, json=dict(write.body))

    async def changes(
        self, write: TargetWrite, current: Mapping[str, Any], earlier: Sequence[Step] = ()
    ) -> dict[str, Any]:
        """The mapped fields whose stored value differs, keys and create-only excluded."""
        return {
            k: v for k, v in changed_fields(current, write).items() if k not in write.create_only
        }

    async def update(
        self, address: Address, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> BatchRequest:
        """PATCH the differences under the ETag just read."""
        return self._writes.request(
            "PATCH",
            address.path,
            json=dict(changes),
            params=CROSS_COMPANY,
            headers=_if_match(current),
        )

    async def delete(self, address: Address, current: Mapping[str, Any]) -> BatchRequest:
        """DELETE under the ETag just read."""
        return self._writes.request(
            "DELETE", address.path, params=CROSS_COMPANY, headers=_if_match(current)
        )

    async def send(self, steps: Sequence[Step]) -> None:
        """The requests of one source change as one change set of a gathered ``$batch``."""
        await self._writes.write(*(s.request for s in steps if s.request is not None))


def _address(entity_set: str, key: Mapping[str, Any]) -> Address:
    return Address(entity_set, dict(key), key_path(entity_set, key))


def _if_match(current: Mapping[str, Any]) -> dict[str, str]:
    etag = current.get("@odata.etag")
    return {"If-Match": str(etag)} if etag else {}
