"""The apply scenario's reference: the calls the bridge makes for a backlog of new accounts,
made directly against the emulators, with no Kafka and no engine in between.

For each first change of an account the bridge makes (see docs/architecture.md,
"Apply"): the engine's confirmation read of the record in Sales (it is the first change of
the record this flow applies; gathered into ``$filter`` queries of ids like the target reads),
a read of the F&O customer (gathered
into ``$filter`` queries of up to ``BRIDGE_BULK__MAX_READS`` keys), and its create (one change
set of a gathered ``$batch`` of up to ``BRIDGE_BULK__MAX_WRITES`` change sets). A gathered call
never holds more records than the engine has in flight (``BRIDGE_FLOWS__APPLY_CONCURRENCY``),
so the reference uses the same sizes: ``min(apply concurrency, max)``. The reference writes
other account numbers (``R…``) so the bridge's own writes still create.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.bench.load import Message
from bridge.bench.processes import BenchError
from bridge.bench.stack import Stack
from bridge.contract.codec import EventCodec
from bridge.engine.flow import all_templates
from bridge.http.batch import BatchRequest, decode_batch, encode_batch
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.mapping.engine import map_event
from bridge.mapping.writes import MappingContext, TargetWrite

CROSS_COMPANY = {"cross-company": "true"}


@dataclass(frozen=True)
class CallSizes:
    """Records per call of each kind, as the bridge sends them."""

    reads: int
    writes: int

    @classmethod
    def of(cls, stack: Stack) -> CallSizes:
        """The sizes the bridge's settings allow (capped by the records it has in flight)."""
        settings = stack.settings
        in_flight = settings.flows.apply_concurrency
        return cls(
            min(in_flight, settings.bulk.max_reads), min(in_flight, settings.bulk.max_writes)
        )


@dataclass(frozen=True)
class Phase:
    """One kind of call of the reference: how many calls, records and seconds."""

    name: str
    calls: int
    records: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form with the phase's own rate."""
        rate = self.records / self.seconds if self.seconds else None
        return {"calls": self.calls, "records": self.records, "seconds": self.seconds, "rate": rate}


def expected_writes(
    stack: Stack, codec: EventCodec, messages: Sequence[Message]
) -> list[TargetWrite]:
    """The F&O write the accounts template maps each event to (what must end up in F&O)."""
    template = all_templates(stack.settings)["accounts"]
    context = MappingContext(stack.settings.companies.for_business_unit(None) or "usmf")
    return [map_event(template, codec.decode(value), context).writes[0] for _, value in messages]


async def direct_calls(
    stack: Stack, codec: EventCodec, messages: Sequence[Message], in_flight: int
) -> tuple[float, dict[str, Any]]:
    """Make the bridge's calls for ``messages`` directly, ``in_flight`` calls at a time;
    return (records/s over all three kinds of call, details per kind)."""
    sizes = CallSizes.of(stack)
    writes = [_renamed(write) for write in expected_writes(stack, codec, messages)]
    ids = [codec.decode(value).source.record_id for _, value in messages]
    async with stack.user_client("sales") as sales, stack.user_client("fno") as fno:
        # the reads run after the writes, so they search a table as full as the bridge's
        # (reading a key that exists costs the service what reading an absent one does)
        phases = [
            await _timed("source reads", in_flight, ids, sizes.reads, lambda i: _get(sales, i)),
            await _timed(
                "target writes", in_flight, writes, sizes.writes, lambda w: _batch(fno, w)
            ),
            await _timed("target reads", in_flight, writes, sizes.reads, lambda w: _find(fno, w)),
        ]
    seconds = sum(p.seconds for p in phases)
    details = {p.name: p.as_dict() for p in phases} | {
        "records_per_read": sizes.reads,
        "change_sets_per_batch": sizes.writes,
        "calls_in_flight": in_flight,
    }
    return len(messages) / seconds, details


def _renamed(write: TargetWrite) -> TargetWrite:
    number = f"R{write.key['CustomerAccount']}"
    body = dict(write.body) | {"CustomerAccount": number, "PartyNumber": number}
    return TargetWrite(
        write.kind, write.entity_set, dict(write.key) | {"CustomerAccount": number}, body
    )


async def _timed(
    name: str,
    in_flight: int,
    items: Sequence[Any],
    size: int,
    call: Callable[[Sequence[Any]], Awaitable[None]],
) -> Phase:
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    limit = asyncio.Semaphore(in_flight)

    async def one(chunk: Sequence[Any]) -> None:
        async with limit:
            await call(chunk)

    started = time.monotonic()
    await asyncio.gather(*(one(chunk) for chunk in chunks))
    return Phase(name, len(chunks), len(items), time.monotonic() - started)


async def _get(sales: ApiClient, ids: Sequence[str]) -> None:
    clause = " or ".join(f"accountid eq {record_id}" for record_id in ids)
    body = await sales.get_json("accounts", params={"$filter": clause})
    if len(body.get("value", [])) != len(ids):
        raise BenchError(f"reference: {len(body.get('value', []))} of {len(ids)} accounts read")


async def _find(fno: ApiClient, writes: Sequence[TargetWrite]) -> None:
    clause = " or ".join(
        "(" + " and ".join(f"{k} eq {odata_literal(v)}" for k, v in w.key.items()) + ")"
        for w in writes
    )
    body = await fno.get_json(writes[0].entity_set, params=CROSS_COMPANY | {"$filter": clause})
    if len(body.get("value", [])) != len(writes):
        raise BenchError(f"reference: {len(body.get('value', []))} of {len(writes)} customers read")


async def _batch(fno: ApiClient, writes: Sequence[TargetWrite]) -> None:
    change_sets = [[BatchRequest("POST", fno.url(w.entity_set), dict(w.body), {})] for w in writes]
    content, content_type = encode_batch(change_sets)
    response = await fno.request(
        "POST", "$batch", content=content, headers={"Content-Type": content_type}
    )
    failed = [
        a[0].status_code for a in decode_batch(response, change_sets) if a[0].status_code >= 300
    ]
    if failed:
        raise BenchError(f"reference: {len(failed)} creates refused ({failed[:3]})")
