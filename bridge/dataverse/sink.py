"""Writes to Dataverse: upserts addressed by alternate keys, lookups bound by business keys.

Dataverse's requests for the shared read-compare-write algorithm
(:class:`bridge.sinks.base.ReadCompareWriteSink`): a record that already holds the
mapped values is not written again (so re-applying an event changes nothing and fires no
webhook), a missing record is created with ``If-None-Match: *`` (create-only, so a racing
create is detected instead of duplicated), and an existing one is patched with only the
differing columns under ``If-Match`` of the ETag just read.

Bulk messages (spec A.11). A write goes as one item of a gathered ``CreateMultiple`` or
``UpdateMultiple`` when all of these hold, and otherwise as a change set of a gathered
``$batch``:

- it is the only request its source change sends (the requests of one change go in one
  change set, which a bulk message — one table, and a call of its own — cannot join; a
  change whose other writes find nothing to change sends one);
- it creates or updates (``DeleteMultiple`` is for elastic tables only);
- its template gives it no guard: a guard judged on the read holds at the write only under
  ``If-Match``, which a bulk item cannot carry;
- the table's ``sdkmessagefilters`` list the message (asked once per table and message).

What the bulk item gives up, and why nothing is lost: a create's ``If-None-Match: *``
becomes the service's refusal of a second row with the same alternate key (every write
here is addressed by an alternate key), a 412 that is isolated to its record and retried
from the read like before; an update's ``If-Match`` only ever made a concurrent change to
the same columns re-read and write the same values again, and a row deleted since the read
(404) is retried from the read as a 412 would be. ``UpsertMultiple`` is not used: it would
save the read, but it writes even when nothing differs (so replays would change rows and
fire webhooks) and cannot say whether it created or updated.

The writes of one source change (a product and its price-list entry, an F&O order and its
"Freight Tax" line, an invoice and its order's status) go in one change set; a later write
whose lookup names a record an earlier one creates binds it as ``$n`` (its Content-ID) and,
when that lookup is part of its key, is POSTed (it cannot exist yet).

Lookups (``TargetWrite.binds`` and key parts that are :class:`BindRef`) name the referenced
record by a business key; they are resolved to GUIDs with one cached query each. A lookup
that names no record raises :class:`DependencyMissing`: the prerequisite has not arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.config import BulkSettings
from bridge.dataverse.bulk import CREATE_MULTIPLE, UPDATE_MULTIPLE, BulkMessages
from bridge.dataverse.metadata import DataverseMetadata
from bridge.errors import DependencyMissing, NotFound, PreconditionFailed
from bridge.fno.sink import same_value
from bridge.http.batch import BatchRequest
from bridge.http.client import ApiClient
from bridge.http.odata import Guid, odata_literal
from bridge.mapping.template import BindCandidate
from bridge.mapping.writes import BindRef, TargetWrite
from bridge.sinks.base import ApplyOutcome, ReadCompareWriteSink, Step
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
        self._bulk = BulkMessages(client, metadata, bulk)
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

    async def _key(self, write: TargetWrite, earlier: Sequence[Step]) -> dict[str, Any]:
        """The alternate key as properties of the record (lookups as their GUIDs, or as the
        reference of a record created earlier in the same change set)."""
        key: dict[str, Any] = {}
        for name, value in write.key.items():
            if isinstance(value, BindRef):
                new = _created_earlier(value, earlier)
                key[f"_{name}_value"] = new or Guid((await self.resolve(value))[1])
            else:
                key[name] = value
        return key

    async def _binds(
        self, write: TargetWrite, earlier: Sequence[Step]
    ) -> dict[str, tuple[BindCandidate, str]]:
        """Each lookup of ``write`` as its table and GUID (or ``$n`` reference)."""
        binds = {}
        for name, ref in write.binds.items():
            new = _created_earlier(ref, earlier)
            binds[name] = (new.candidate, new.reference) if new else await self.resolve(ref)
        return binds

    async def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._client.get_json(path)
        except NotFound:
            return None

    async def address(self, write: TargetWrite, earlier: Sequence[Step] = ()) -> Address:
        """The record's alternate-key path (lookup key parts resolved to GUIDs)."""
        key = await self._key(write, earlier)
        if any(isinstance(v, NewRecord) for v in key.values()):
            return Address(write.entity_set, key, "")  # not addressable before it exists
        parts = ",".join(f"{name}={odata_literal(value)}" for name, value in key.items())
        return Address(write.entity_set, key, f"{write.entity_set}({parts})")

    async def current(
        self, address: Address, earlier: Sequence[Step] = ()
    ) -> dict[str, Any] | None:
        """The record at ``address``, or ``None`` (always, when its key names a record
        created earlier in the same change set)."""
        if any(isinstance(v, NewRecord) for v in address.key.values()):
            return None
        return await self._reads.read(address)

    async def create(
        self, address: Address, write: TargetWrite, earlier: Sequence[Step] = ()
    ) -> BatchRequest:
        """Upsert by key with ``If-None-Match: *``, so a racing create is detected; a
        record whose key names one created earlier in the change set is POSTed with its
        key columns, as it cannot exist yet."""
        binds = await self._binds(write, earlier)
        fields = {k: v for k, v in write.body.items() if k not in write.key}
        body = {**fields, **_bind_fields(binds)}
        if any(isinstance(v, NewRecord) for v in address.key.values()):
            body.update(await self._key_fields(write, earlier))
            return self._writes.request("POST", write.entity_set, json=body)
        headers = {"If-None-Match": "*"}
        return self._writes.request("PATCH", address.path, json=body, headers=headers)

    async def _key_fields(self, write: TargetWrite, earlier: Sequence[Step]) -> dict[str, Any]:
        """The key as body columns of a create (lookup parts as ``@odata.bind``)."""
        plain = {k: v for k, v in write.key.items() if not isinstance(v, BindRef)}
        refs = {k: v for k, v in write.key.items() if isinstance(v, BindRef)}
        bound = {}
        for name, ref in refs.items():
            new = _created_earlier(ref, earlier)
            bound[name] = (new.candidate, new.reference) if new else await self.resolve(ref)
        return {**plain, **_bind_fields(bound)}

    async def changes(
        self, write: TargetWrite, current: Mapping[str, Any], earlier: Sequence[Step] = ()
    ) -> dict[str, Any]:
        """The differing columns and lookups (as ``@odata.bind``), create-only excluded."""
        binds = await self._binds(write, earlier)
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
    ) -> BatchRequest:
        """PATCH the differences under the ETag just read."""
        return self._writes.request(
            "PATCH", address.path, json=dict(changes), headers=_if_match(current)
        )

    async def delete(self, address: Address, current: Mapping[str, Any]) -> BatchRequest:
        """DELETE under the ETag just read."""
        return self._writes.request("DELETE", address.path, headers=_if_match(current))

    async def send(self, steps: Sequence[Step]) -> None:
        """A lone create or update that qualifies (module docstring) as one item of a
        gathered bulk message; anything else as one change set of a gathered ``$batch``."""
        sent = [step for step in steps if step.request is not None]
        if len(sent) == 1 and await self._send_in_bulk(sent[0]):
            return
        await self._writes.write(*(step.request for step in sent if step.request is not None))

    async def _send_in_bulk(self, step: Step) -> bool:
        """Send ``step`` as a bulk item if it qualifies; whether it did."""
        request, write = step.request, step.write
        if request is None or write.guard is not None or not isinstance(request.json, dict):
            return False
        if step.outcome is ApplyOutcome.CREATED and request.method == "PATCH":
            if not await self._bulk.supports(write.entity_set, CREATE_MULTIPLE):
                return False
            item = {**request.json, **await self._key_fields(write, ())}
            await self._bulk.create(write.entity_set, item)
            return True
        if step.outcome is ApplyOutcome.UPDATED and step.current is not None:
            if not await self._bulk.supports(write.entity_set, UPDATE_MULTIPLE):
                return False
            primary_id = (await self._metadata.by_entity_set(write.entity_set)).primary_id
            item = {**request.json, primary_id: step.current[primary_id]}
            try:
                await self._bulk.update(write.entity_set, item)
            except NotFound as exc:
                # deleted since it was read, as a PATCH under its ETag would say with 412
                raise PreconditionFailed(str(exc)) from exc
            return True
        return False

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        await self._bulk.aclose()
        await self._writes.aclose()
        await self._reads.aclose()


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record created earlier in the same change set: the lookup candidate that names it
    and its Content-ID reference (``$n``)."""

    candidate: BindCandidate
    reference: str

    def __str__(self) -> str:
        return self.reference


def _created_earlier(ref: BindRef, earlier: Sequence[Step]) -> NewRecord | None:
    """The record ``ref`` names, when a step before it in the change set creates it: a
    candidate of ``ref`` matching that step's table and one-column key."""
    position = 0
    for step in earlier:
        if step.request is None:
            continue
        position += 1
        if step.outcome is not ApplyOutcome.CREATED or len(step.write.key) != 1:
            continue
        [(column, value)] = step.write.key.items()
        for candidate in ref.candidates:
            if (
                candidate.entity_set == step.write.entity_set
                and candidate.match == column
                and candidate.via is None
                and candidate.through is None
                and str(value).lower() == str(ref.value).lower()
            ):
                return NewRecord(candidate, f"${position}")
    return None


def _bind_fields(binds: Mapping[str, tuple[BindCandidate, str]]) -> dict[str, str]:
    return {
        f"{candidate.nav}@odata.bind": guid
        if guid.startswith("$")
        else f"/{candidate.entity_set}({guid})"
        for candidate, guid in binds.values()
    }


def _if_match(current: Mapping[str, Any]) -> dict[str, str]:
    etag = current.get("@odata.etag")
    return {"If-Match": str(etag)} if etag else {"If-Match": "*"}
