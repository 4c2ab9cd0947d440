"""Writes in bulk: concurrent records share one read query and one ``$batch``, each in its own
change set, against the emulators over loopback HTTP. Judged by reading the targets' APIs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from bridge.config import BulkSettings, FlowSettings, FnoSettings, Registration, SalesSettings
from bridge.dataverse.metadata import DataverseMetadata
from bridge.dataverse.sink import DataverseSink
from bridge.emulators import Emulators, EmulatorSettings
from bridge.errors import TargetRejected, TargetUnavailable
from bridge.fno.sink import FnoSink
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.mapping.template import Template
from bridge.mapping.writes import TargetWrite, WriteKind
from bridge.sinks.base import ApplyOutcome
from bridge.sinks.coalescer import Coalescer
from tests.support.engine_world import ACCOUNT, MemoryBus, World, version_of, versioned

POLICY = RetryPolicy(max_attempts=3, initial_backoff=0.01)
CROSS = {"cross-company": "true"}


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """The real transport, remembering every request (the seam, not a fake)."""

    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if not request.url.path.endswith("/token"):
            self.requests.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, suffix: str = "") -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.endswith(suffix))


@dataclass
class Systems:
    emulators: Emulators
    settings: EmulatorSettings


@pytest.fixture
async def systems() -> AsyncIterator[Systems]:
    settings = EmulatorSettings()
    async with Emulators(settings, sales_port=0, fno_port=0) as emulators:
        yield Systems(emulators, settings)


def customer(number: str, name: str) -> TargetWrite:
    key = {"dataAreaId": "usmf", "CustomerAccount": number}
    body = {**key, "OrganizationName": name, "CustomerGroupId": "10"}
    return TargetWrite(WriteKind.UPSERT, "CustomersV3", key, body)


async def test_coalesced_records_each_get_their_own_outcome_and_a_bad_one_alone_fails() -> None:
    calls: list[list[int]] = []

    async def all_or_nothing(_: Hashable, items: list[int]) -> Sequence[int]:
        calls.append(items)
        if 13 in items:
            raise TargetRejected("one item failed, the whole call rolled back", status=400)
        return [i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(
        all_or_nothing, window=0.01, max_items=64, name="test"
    )
    results = await asyncio.gather(
        *(coalescer.submit("g", i) for i in range(32)), return_exceptions=True
    )
    await coalescer.aclose()
    assert [r for r in results if isinstance(r, BaseException)] == [results[13]]
    assert isinstance(results[13], TargetRejected)
    assert [r for i, r in enumerate(results) if i != 13] == [i * 10 for i in range(32) if i != 13]
    assert len(calls[0]) == 32, "the concurrent items were not gathered"
    assert len(calls) <= 2 * 5 + 1, "the bad item was not isolated by halving"


async def test_a_failure_of_the_whole_call_is_every_callers() -> None:
    async def down(_: Hashable, items: list[int]) -> Sequence[int]:
        raise TargetUnavailable("503")

    coalescer: Coalescer[int, int] = Coalescer(down, window=0.005, max_items=8, name="t")
    results = await asyncio.gather(
        *(coalescer.submit(1, i) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, TargetUnavailable) for r in results)


async def test_fno_writes_of_concurrent_records_share_calls_and_a_bad_one_fails_alone(
    systems: Systems,
) -> None:
    recorder = Recorder()
    settings = FnoSettings(base_url=systems.emulators.fno_url)
    async with ApiClient(settings, settings.api_path, POLICY, transport=recorder) as client:
        sink = FnoSink(client)
        writes = [customer(f"BULK-{n:03}", f"Customer {n}") for n in range(40)]
        bad = TargetWrite(
            WriteKind.UPSERT,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": "BULK-BAD"},
            {"dataAreaId": "usmf", "CustomerAccount": "BULK-BAD", "NoSuchField": 1},
        )
        writes.insert(17, bad)
        results = await asyncio.gather(*(sink.apply(w) for w in writes), return_exceptions=True)
        assert isinstance(results[17], TargetRejected)
        assert [r for i, r in enumerate(results) if i != 17] == [ApplyOutcome.CREATED] * 40
        rows = (
            await client.get_json(
                "CustomersV3",
                params={**CROSS, "$filter": "CustomerGroupId eq '10' and dataAreaId eq 'usmf'"},
            )
        )["value"]
        stored = {r["CustomerAccount"]: r["OrganizationName"] for r in rows}
        assert {k: v for k, v in stored.items() if k.startswith("BULK")} == {
            f"BULK-{n:03}": f"Customer {n}" for n in range(40)
        }
        # gathered: far fewer calls than records, not one read and one write each
        assert recorder.count("POST", "/$batch") < 10
        assert recorder.count("GET") < 20
        # re-applying changes nothing and writes nothing
        before = len(recorder.requests)
        again = await asyncio.gather(*(sink.apply(w) for i, w in enumerate(writes) if i != 17))
        assert set(again) == {ApplyOutcome.UNCHANGED}
        assert all(m == "GET" for m, _, _ in recorder.requests[before:])


async def test_dataverse_writes_spread_over_registrations_and_a_bad_one_fails_alone(
    systems: Systems,
) -> None:
    recorder = Recorder()
    user = systems.settings
    settings = SalesSettings(
        base_url=systems.emulators.sales_url,
        concurrency_initial=2,
        extra_registrations=[
            Registration(client_id=user.user_client_id, client_secret=user.user_client_secret)
        ],
    )
    async with ApiClient(settings, settings.api_path, POLICY, transport=recorder) as client:
        # small calls, so that several are in flight at once and need both windows
        small = BulkSettings(max_reads=4, max_writes=4, max_bulk_items=4)
        sink = DataverseSink(client, DataverseMetadata(client), small)

        def account(number: str, name: str) -> TargetWrite:
            return TargetWrite(
                WriteKind.UPSERT, "accounts", {"accountnumber": number}, {"name": name}
            )

        writes = [account(f"BULK-{n:03}", f"Account {n}") for n in range(30)]
        writes.insert(5, account("BULK-BAD", "x" * 500))  # name is at most 160 characters
        results = await asyncio.gather(*(sink.apply(w) for w in writes), return_exceptions=True)
        assert isinstance(results[5], TargetRejected), results[5]
        assert [r for i, r in enumerate(results) if i != 5] == [ApplyOutcome.CREATED] * 30
        rows = (
            await client.get_json(
                "accounts", params={"$filter": "startswith(accountnumber,'BULK-')"}
            )
        )["value"]
        assert {r["accountnumber"]: r["name"] for r in rows} == {
            f"BULK-{n:03}": f"Account {n}" for n in range(30)
        }
        assert recorder.count("PATCH") + recorder.count("POST", "/$batch") <= 30 // 4 + 3
        admin = httpx.AsyncClient()
        async with admin:
            stats = (await admin.get(f"{systems.emulators.sales_url}/_emulator/stats")).json()
    creators: Counter[str] = Counter()
    for record in stats["entities"]["account"]["records"].values():
        for principal, counts in record["by_principal"].items():
            creators[principal] += counts["creates"]
    assert creators[settings.client_id] > 0, creators
    assert creators[user.user_client_id] > 0, creators


CUSTOMERS_V3 = Template.model_validate(
    {
        "name": "customers",
        "title": "Sales accounts to F&O CustomersV3",
        "source": {"system": "SALES", "entity": "account"},
        "target": {
            "system": "FNO",
            "entity_set": "CustomersV3",
            "key": ["dataAreaId", "CustomerAccount"],
            "company_field": "dataAreaId",
        },
        "fields": [
            {"target": "CustomerAccount", "source": "accountnumber", "required": True},
            {"target": "OrganizationName", "source": "name"},
            {"target": "CustomerGroupId", "constant": "10"},
        ],
    }
)


async def test_under_bulk_writes_each_record_ends_at_its_newest_version_never_two_in_one_call(
    systems: Systems,
) -> None:
    recorder = Recorder()
    settings = FnoSettings(base_url=systems.emulators.fno_url)
    flows = FlowSettings(apply_concurrency=32, apply_budget_seconds=20.0)
    async with ApiClient(settings, settings.api_path, POLICY, transport=recorder) as client:
        world = World(
            MemoryBus(), templates={"customers": CUSTOMERS_V3}, settings=flows, sink=FnoSink(client)
        )
        try:
            await world.start_worker("w1")
            for version in range(1, 5):
                for n in range(25):
                    event = world.source.change(
                        ACCOUNT, f"a-{n}", accountnumber=f"ORD-{n:02}", name=versioned("n", version)
                    )
                    await world.publish(ACCOUNT, event)
            await world.drain(timeout=60)
        finally:
            await world.stop()
        rows = (
            await client.get_json(
                "CustomersV3", params={**CROSS, "$filter": "CustomerGroupId eq '10'"}
            )
        )["value"]
    stored = {r["CustomerAccount"]: r["OrganizationName"] for r in rows}
    assert {k: version_of(v) for k, v in stored.items()} == {f"ORD-{n:02}": 4 for n in range(25)}
    batches = [body.decode() for m, p, body in recorder.requests if p.endswith("/$batch")]
    assert batches, "no write was gathered into a $batch"
    for body in batches:
        keys = Counter(
            line.split("CustomerAccount='")[1].split("'")[0]
            for line in body.splitlines()
            if line.startswith("PATCH ")
        )
        assert all(n == 1 for n in keys.values()), f"two versions of one record in one call: {keys}"


async def test_source_confirmations_in_flight_together_are_one_query(systems: Systems) -> None:
    """The engine confirms every first change of a backlog against Sales; gathered, 30
    records cost a query or two, each caller gets its own record as Sales holds it now, and
    a record deleted meanwhile is None."""
    from bridge.contract.catalog import source_entity
    from bridge.contract.envelope import Capture, System
    from bridge.dataverse.reader import DataverseReader
    from bridge.dataverse.source import DataverseSource
    from bridge.sinks.batching import BatchedReads

    account = source_entity(System.SALES, "account")
    settings = SalesSettings(base_url=systems.emulators.sales_url)
    recorder = Recorder()
    async with ApiClient(settings, settings.api_path, POLICY, transport=recorder) as client:
        ids = []
        for n in range(30):
            response = await client.request("POST", "accounts", json={"name": f"Gathered {n}"})
            ids.append(response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))
        await client.request("DELETE", f"accounts({ids[7]})")
        reader = DataverseReader(client)
        events = [
            DataverseSource(reader).snapshot(
                account, {"accountid": i, "name": "stale"}, capture=Capture.POLL
            )
            for i in ids
        ]
        reads = BatchedReads(client, BulkSettings())
        source = DataverseSource(reader, reads)
        recorder.requests.clear()
        current = await asyncio.gather(*(source.current(e) for e in events))
        await reads.aclose()
    assert current[7] is None
    names = [c.after["name"] if c and c.after else None for c in current]
    assert names == [None if n == 7 else f"Gathered {n}" for n in range(30)]
    assert all(c.source.record_version for i, c in enumerate(current) if c and i != 7)
    assert recorder.count("GET") <= 2
