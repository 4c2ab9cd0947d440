"""Dataverse bulk messages and one change set per source change, against the emulators over
loopback HTTP; every outcome is judged by reading the emulated Dataverse's API."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.config import BulkSettings, FlowSettings, SalesSettings, WebhookSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import System
from bridge.dataverse.metadata import DataverseMetadata
from bridge.dataverse.registration import register_dataverse_webhooks
from bridge.dataverse.sink import DataverseSink
from bridge.dataverse.webhook import notification_entity, notification_to_event, parse_notification
from bridge.emulators import Emulators, EmulatorSettings
from bridge.errors import TargetRejected
from bridge.flows.processor import Identities
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.mapping.template import BindCandidate, Template
from bridge.mapping.writes import BindRef, TargetWrite, WriteKind
from bridge.sinks.base import ApplyOutcome
from bridge.sources.receiver import DATAVERSE_PATH
from tests.support.engine_world import ACCOUNT, MemoryBus, World, version_of, versioned
from tests.unit.test_bulk_writes import Recorder

POLICY = RetryPolicy(max_attempts=3, initial_backoff=0.01)
CREATE_MULTIPLE = "/accounts/Microsoft.Dynamics.CRM.CreateMultiple"
UPDATE_MULTIPLE = "/accounts/Microsoft.Dynamics.CRM.UpdateMultiple"


@pytest.fixture
async def emulators() -> AsyncIterator[Emulators]:
    settings = EmulatorSettings()
    async with Emulators(settings, sales_port=0, fno_port=0) as running:
        yield running


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(emulators: Emulators, recorder: Recorder) -> AsyncIterator[ApiClient]:
    settings = SalesSettings(base_url=emulators.sales_url)
    async with ApiClient(settings, settings.api_path, POLICY, transport=recorder) as api:
        yield api


def account(number: str, name: str) -> TargetWrite:
    return TargetWrite(WriteKind.UPSERT, "accounts", {"accountnumber": number}, {"name": name})


async def stored_accounts(client: ApiClient, prefix: str) -> dict[str, str]:
    params = {"$filter": f"startswith(accountnumber,'{prefix}')", "$select": "accountnumber,name"}
    rows = (await client.get_json("accounts", params=params))["value"]
    return {r["accountnumber"]: r["name"] for r in rows}


def targets(recorder: Recorder, suffix: str) -> list[list[dict[str, Any]]]:
    """The ``Targets`` of every bulk call whose path ends with ``suffix``."""
    return [orjson.loads(body)["Targets"] for m, p, body in recorder.requests if p.endswith(suffix)]


async def test_creates_and_updates_go_as_bulk_messages_and_land_as_written(
    client: ApiClient, recorder: Recorder
) -> None:
    sink = DataverseSink(client, DataverseMetadata(client))
    created = await asyncio.gather(*(sink.apply(account(f"BM-{n:03}", f"a{n}")) for n in range(60)))
    assert created == [ApplyOutcome.CREATED] * 60
    assert await stored_accounts(client, "BM-") == {f"BM-{n:03}": f"a{n}" for n in range(60)}
    updated = await asyncio.gather(*(sink.apply(account(f"BM-{n:03}", f"b{n}")) for n in range(60)))
    assert updated == [ApplyOutcome.UPDATED] * 60
    assert await stored_accounts(client, "BM-") == {f"BM-{n:03}": f"b{n}" for n in range(60)}
    creates, updates = targets(recorder, CREATE_MULTIPLE), targets(recorder, UPDATE_MULTIPLE)
    assert sum(map(len, creates)) == 60 and len(creates) < 10
    assert sum(map(len, updates)) == 60 and len(updates) < 10
    assert recorder.count("PATCH") == 0 and recorder.count("POST", "/$batch") == 0
    # support was asked once per message, as spec A.11 documents
    assert recorder.count("GET", "/sdkmessagefilters") == 2
    await sink.aclose()


async def test_a_table_without_the_bulk_message_keeps_the_batch_path(
    client: ApiClient, recorder: Recorder
) -> None:
    sink = DataverseSink(client, DataverseMetadata(client), BulkSettings(bulk_messages=False))
    await asyncio.gather(*(sink.apply(account(f"BB-{n:03}", f"a{n}")) for n in range(10)))
    assert await stored_accounts(client, "BB-") == {f"BB-{n:03}": f"a{n}" for n in range(10)}
    assert not targets(recorder, CREATE_MULTIPLE)
    assert recorder.count("POST", "/$batch") >= 1
    await sink.aclose()


async def test_one_bad_record_in_a_create_multiple_fails_alone(
    client: ApiClient, recorder: Recorder
) -> None:
    sink = DataverseSink(client, DataverseMetadata(client))
    writes = [account(f"BX-{n:03}", f"a{n}") for n in range(40)]
    writes.insert(23, account("BX-BAD", "x" * 500))  # name is at most 160 characters
    results = await asyncio.gather(*(sink.apply(w) for w in writes), return_exceptions=True)
    assert isinstance(results[23], TargetRejected), results[23]
    assert [r for i, r in enumerate(results) if i != 23] == [ApplyOutcome.CREATED] * 40
    assert await stored_accounts(client, "BX-") == {f"BX-{n:03}": f"a{n}" for n in range(40)}
    assert any(
        len(t) > 1 and any(i["accountnumber"] == "BX-BAD" for i in t)
        for t in targets(recorder, CREATE_MULTIPLE)
    ), "the bad record was never in a shared call"
    await sink.aclose()


USD_PRICE_LIST = BindCandidate.model_validate(
    {
        "nav": "pricelevelid",
        "entity_set": "pricelevels",
        "via": {
            "entity_set": "transactioncurrencies",
            "match": "isocurrencycode",
            "field": "_transactioncurrencyid_value",
        },
        "order_by": "name",
    }
)


def product(number: str, price: Any) -> tuple[TargetWrite, TargetWrite]:
    """A product and its price-list entry, as the products template maps one F&O product."""
    main = TargetWrite(
        WriteKind.UPSERT,
        "products",
        {"productnumber": number},
        {"name": f"Product {number}", "quantitydecimal": 2},
        binds={
            "defaultuomscheduleid": BindRef(
                "Default Unit",
                (
                    BindCandidate(
                        nav="defaultuomscheduleid", entity_set="uomschedules", match="name"
                    ),
                ),
            ),
            "defaultuomid": BindRef(
                "Primary Unit",
                (BindCandidate(nav="defaultuomid", entity_set="uoms", match="name"),),
            ),
        },
    )
    key = {
        "pricelevelid": BindRef("USD", (USD_PRICE_LIST,)),
        "productid": BindRef(
            number,
            (BindCandidate(nav="productid", entity_set="products", match="productnumber"),),
        ),
        "uomid": BindRef(
            "Primary Unit", (BindCandidate(nav="uomid", entity_set="uoms", match="name"),)
        ),
    }
    price_entry = TargetWrite(WriteKind.UPSERT, "productpricelevels", key, {"amount": price})
    return main, price_entry


async def stored_product(client: ApiClient, number: str) -> tuple[dict[str, Any] | None, list[Any]]:
    params = {"$filter": f"productnumber eq '{number}'", "$select": "productid,name"}
    rows = (await client.get_json("products", params=params))["value"]
    if not rows:
        return None, []
    prices = (
        await client.get_json(
            "productpricelevels",
            params={"$filter": f"_productid_value eq {rows[0]['productid']}", "$select": "amount"},
        )
    )["value"]
    return rows[0], [p["amount"] for p in prices]


async def test_a_product_and_its_price_go_in_one_change_set_naming_the_new_product_by_content_id(
    client: ApiClient, recorder: Recorder
) -> None:
    sink = DataverseSink(client, DataverseMetadata(client))
    outcomes = await sink.apply_all(product("CS-1", 12.5))
    assert outcomes == [ApplyOutcome.CREATED, ApplyOutcome.CREATED]
    row, prices = await stored_product(client, "CS-1")
    assert row is not None and prices == [12.5]
    batches = [body.decode() for m, p, body in recorder.requests if p.endswith("/$batch")]
    assert len(batches) == 1 and '"productid@odata.bind":"$1"' in batches[0]
    # again: nothing differs, nothing is written
    before = len(recorder.requests)
    assert await sink.apply_all(product("CS-1", 12.5)) == [ApplyOutcome.UNCHANGED] * 2
    assert all(m == "GET" for m, _, _ in recorder.requests[before:])
    await sink.aclose()


async def test_a_change_set_whose_second_write_fails_leaves_neither(client: ApiClient) -> None:
    sink = DataverseSink(client, DataverseMetadata(client))
    with pytest.raises(TargetRejected):
        await sink.apply_all(product("CS-2", "not an amount"))
    assert await stored_product(client, "CS-2") == (None, [])
    # and an existing product keeps its price when the change fails as a whole
    await sink.apply_all(product("CS-3", 1.0))
    main, entry = product("CS-3", "nope")
    renamed = TargetWrite(
        main.kind, main.entity_set, main.key, {**main.body, "name": "Renamed"}, main.binds
    )
    with pytest.raises(TargetRejected):
        await sink.apply_all((renamed, entry))
    row, prices = await stored_product(client, "CS-3")
    assert row is not None and row["name"] == "Product CS-3" and prices == [1.0]
    await sink.aclose()


SALES_ACCOUNTS = Template.model_validate(
    {
        "name": "sales-accounts",
        "title": "accounts copied within Sales (a Dataverse target under the engine)",
        "source": {"system": "SALES", "entity": "account"},
        "target": {"system": "SALES", "entity_set": "accounts", "key": ["accountnumber"]},
        "fields": [
            {"target": "accountnumber", "source": "accountnumber", "required": True},
            {"target": "name", "source": "name"},
        ],
    }
)


async def test_under_the_engine_order_holds_per_record_and_a_bad_record_alone_is_dead_lettered(
    client: ApiClient, recorder: Recorder
) -> None:
    flows = FlowSettings(apply_concurrency=32, apply_budget_seconds=20.0)
    sink = DataverseSink(client, DataverseMetadata(client))
    world = World(
        MemoryBus(), templates={"sales-accounts": SALES_ACCOUNTS}, settings=flows, sink=sink
    )
    try:
        await world.start_worker("w1")
        for version in range(1, 5):
            for n in range(25):
                name = versioned("n", version)
                event = world.source.change(
                    ACCOUNT, f"a-{n}", accountnumber=f"EO-{n:02}", name=name
                )
                await world.publish(ACCOUNT, event)
            if version == 2:  # name is at most 160 characters
                bad = world.source.change(ACCOUNT, "a-bad", accountnumber="EO-BAD", name="y" * 500)
                await world.publish(ACCOUNT, bad)
        await world.drain(timeout=60)
        dead = await world.dead_letters("sales-accounts")
    finally:
        await world.stop()
        await sink.aclose()
    stored = await stored_accounts(client, "EO-")
    assert {k: version_of(v) for k, v in stored.items()} == {f"EO-{n:02}": 4 for n in range(25)}
    assert len(dead) == 1, [context for _, context in dead]
    assert dead[0][0].key == b"a-bad", dead[0]
    calls = targets(recorder, CREATE_MULTIPLE) + targets(recorder, UPDATE_MULTIPLE)
    assert sum(map(len, calls)) >= 25 * 3, "the writes did not go as bulk messages"
    for items in calls:
        rows = Counter(i.get("accountid") or i.get("accountnumber") for i in items)
        assert all(n == 1 for n in rows.values()), f"two versions of one record in one call: {rows}"


async def test_bulk_writes_come_back_as_one_webhook_each_recognised_as_the_bridges_own(
    emulators: Emulators, client: ApiClient
) -> None:
    bodies: list[dict[str, Any]] = []
    all_arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        if len(bodies) >= 60:
            all_arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(DATAVERSE_PATH, receive)
    async with TestServer(app, host="127.0.0.1") as server:
        webhook = WebhookSettings(public_url=str(server.make_url("")).rstrip("/"))
        await register_dataverse_webhooks(client, webhook, [source_entity(System.SALES, "account")])
        bridge_user = str((await client.get_json("WhoAmI"))["UserId"]).lower()
        sink = DataverseSink(client, DataverseMetadata(client))
        await asyncio.gather(*(sink.apply(account(f"WH-{n:02}", f"a{n}")) for n in range(30)))
        await asyncio.gather(*(sink.apply(account(f"WH-{n:02}", f"b{n}")) for n in range(30)))
        await sink.aclose()
        await asyncio.wait_for(all_arrived.wait(), timeout=20)
        await asyncio.sleep(0.3)  # nothing more than one per write arrives
    events = [
        notification_to_event(c, notification_entity(c)) for c in map(parse_notification, bodies)
    ]
    per_record = Counter((e.operation.value, e.source.business_key) for e in events)
    assert len(per_record) == 60 and set(per_record.values()) == {1}, per_record
    assert {e.source.changed_by.lower() for e in events if e.source.changed_by} == {bridge_user}
    identities = Identities({System.SALES: frozenset({bridge_user})})
    assert all(identities.is_bridge(System.SALES, e.source.changed_by) for e in events)
    # the writes counted per principal: every one of them the bridge's
    async with httpx.AsyncClient() as admin:
        stats = (await admin.get(f"{emulators.sales_url}/_emulator/stats")).json()
    writes: Counter[tuple[str, str]] = Counter()
    for record in stats["entities"]["account"]["records"].values():
        for principal, counts in record["by_principal"].items():
            writes[(principal, "creates")] += counts["creates"]
            writes[(principal, "updates")] += counts["updates"]
    bridge = client.registrations[0].client_id
    assert {k: v for k, v in writes.items() if v} == {
        (bridge, "creates"): 30,
        (bridge, "updates"): 30,
    }
