"""Writes to Dataverse: upserts addressed by alternate keys, lookups bound by business keys.

Dataverse's requests for the shared read-compare-write algorithm
(:class:`bridge.sinks.base.ReadCompareWriteSink`): a record that already holds the
mapped values is not written again (so re-applying an event changes nothing and fires no
webhook), a missing record is created with ``If-None-Match: *`` (create-only, so a racing
create is detected instead of duplicated), and an existing one is patched with only the
differing columns under ``If-Match`` of the ETag just read.

Lookups (``TargetWrite.binds`` and key parts that are :class:`BindRef`) name the referenced
record by a business key; they are resolved to GUIDs with one cached query each. A lookup
that names no record raises :class:`DependencyMissing`: the prerequisite has not arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from bridge.config import BulkSettings
from bridge.dataverse.metadata import DataverseMetadata
from bridge.errors import (
    DependencyMissing,
    NotFound,
)
from bridge.fno.sink import same_value
from bridge.http.client import ApiClient
from bridge.http.odata import Guid, odata_literal
from bridge.mapping.template import BindCandidate
from bridge.mapping.writes import BindRef, TargetWrite
from bridge.sinks.base import ReadCompareWriteSink
from bridge.sinks.batching import Address, BatchedReads, BatchedWrites

_CACHE_SIZE = 10_000


class DataverseSink(ReadCompareWriteSink):
    """Dataverse's requests for the shared read-compare-write algorithm."""

    system_name = "Sales"

    def __init__(
        self, client: ApiClient, metadata: DataverseMetadata, bulk: BulkSettings | None = None
    ) -> None:
        self._client = client
        self._metadata = metadata
        bulk = bulk or BulkSettings()
        self._reads = BatchedReads(client, bulk)
        # without continue-on-error Dataverse stops a $batch at its first failing change set
        self._writes = BatchedWrites(client, bulk, continue_on_error=True)
        self._ids: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    async def resolve(self, ref: BindRef) -> tuple[BindCandidate, str]:
        """The first candidate record that exists for a lookup, and its GUID."""
        for candidate in ref.candidates:
            guid = await self._find(candidate, str(ref.value))
            if guid is not None:
                return candidate, guid
        names = " or ".join(f"{c.entity_set}.{c.match or c.via}" for c in ref.candidates)
        raise DependencyMissing(f"no {names} = {ref.value!r} in Sales yet")

    async def _find(self, candidate: BindCandidate, value: str) -> str | None:
        if candidate.through is not None:
            # not cached: the record another record points at can change (an order's owner)
            return await self._find_through(candidate, value)
        cache_key = (candidate.entity_set, candidate.model_dump_json(), value.lower())
        if cache_key in self._ids:
            self._ids.move_to_end(cache_key)
            return self._ids[cache_key]
        if candidate.via is not None:
            via = BindCandidate(
                nav="", entity_set=candidate.via.entity_set, match=candidate.via.match
            )
            target = await self._find(via, value)
            if target is None:
                return None
            clause = f"{candidate.via.field} eq {target}"
        else:
            clause = f"{candidate.match} eq {odata_literal(value)}"
        guid = await self._first(candidate.entity_set, clause, candidate.order_by)
        if guid is not None:
            self._ids[cache_key] = guid
            while len(self._ids) > _CACHE_SIZE:
                self._ids.popitem(last=False)
        return guid

    async def _find_through(self, candidate: BindCandidate, value: str) -> str | None:
        """The record of ``candidate.entity_set`` that the record named by ``value`` points
        at through its lookup column (the owner of the order with that number), if that
        record is of this candidate's table (an owner is a user or a team)."""
        through = candidate.through
        assert through is not None
        clause = f"{through.match} eq {odata_literal(value)}"
        params = {"$filter": clause, "$select": through.field, "$top": "1"}
        rows = (await self._client.get_json(through.entity_set, params=params)).get("value", [])
        pointed = rows[0].get(through.field) if rows else None
        if not pointed:
            return None
        id_attribute = (await self._metadata.by_entity_set(candidate.entity_set)).primary_id
        found = await self._read(f"{candidate.entity_set}({pointed})?$select={id_attribute}")
        return str(pointed).lower() if found is not None else None

    async def _first(self, entity_set: str, clause: str, order_by: str | None) -> str | None:
        id_attribute = (await self._metadata.by_entity_set(entity_set)).primary_id
        params = {"$filter": clause, "$select": id_attribute, "$top": "1"}
        if order_by:
            params["$orderby"] = order_by
        rows = (await self._client.get_json(entity_set, params=params)).get("value", [])
        return str(rows[0][id_attribute]).lower() if rows else None

    async def _key(self, write: TargetWrite) -> dict[str, Any]:
        """The alternate key as properties of the record (lookups as their GUIDs)."""
        key: dict[str, Any] = {}
        for name, value in write.key.items():
            if isinstance(value, BindRef):
                _, guid = await self.resolve(value)
                key[f"_{name}_value"] = Guid(guid)
            else:
                key[name] = value
        return key

    async def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._client.get_json(path)
        except NotFound:
            return None

    async def address(self, write: TargetWrite) -> Address:
        """The record's alternate-key path (lookup key parts resolved to GUIDs)."""
        key = await self._key(write)
        parts = ",".join(f"{name}={odata_literal(value)}" for name, value in key.items())
        return Address(write.entity_set, key, f"{write.entity_set}({parts})")

    async def current(self, address: Address) -> dict[str, Any] | None:
        """The record at ``address``, or ``None``."""
        return await self._reads.read(address)

    async def create(self, address: Address, write: TargetWrite) -> None:
        """Upsert by key with ``If-None-Match: *``, so a racing create is detected."""
        binds = {name: await self.resolve(ref) for name, ref in write.binds.items()}
        fields = {k: v for k, v in write.body.items() if k not in write.key}
        body = {**fields, **_bind_fields(binds)}
        headers = {"If-None-Match": "*"}
        await self._writes.write(
            self._writes.request("PATCH", address.path, json=body, headers=headers)
        )

    async def changes(self, write: TargetWrite, current: Mapping[str, Any]) -> dict[str, Any]:
        """The differing columns and lookups (as ``@odata.bind``), create-only excluded."""
        binds = {name: await self.resolve(ref) for name, ref in write.binds.items()}
        changed = {
            k: v
            for k, v in write.body.items()
            if k not in write.key
            and k not in write.create_only
            and not same_value(current.get(k), v)
        }
        changed_binds = {
            name: bound
            for name, bound in binds.items()
            if name not in write.create_only
            and str(current.get(f"_{name}_value") or "").lower() != bound[1]
        }
        return {**changed, **_bind_fields(changed_binds)}

    async def update(
        self, address: Address, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None:
        """PATCH the differences under the ETag just read."""
        patch = self._writes.request(
            "PATCH", address.path, json=dict(changes), headers=_if_match(current)
        )
        await self._writes.write(patch)

    async def delete(self, address: Address, current: Mapping[str, Any]) -> None:
        """DELETE under the ETag just read."""
        await self._writes.write(
            self._writes.request("DELETE", address.path, headers=_if_match(current))
        )


def _bind_fields(binds: Mapping[str, tuple[BindCandidate, str]]) -> dict[str, str]:
    return {
        f"{candidate.nav}@odata.bind": f"/{candidate.entity_set}({guid})"
        for candidate, guid in binds.values()
    }


def _if_match(current: Mapping[str, Any]) -> dict[str, str]:
    etag = current.get("@odata.etag")
    return {"If-Match": str(etag)} if etag else {"If-Match": "*"}
