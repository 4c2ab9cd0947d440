"""F&O changes captured as data events: the F&O emulator raises OnExternal* on the
virtual tables, Dataverse delivers them to the bridge's receiver through the steps
`bridge setup` registers, and the receiver publishes change events on the F&O topics with
the F&O record's own fields, key and row version. Judged against what the test wrote in
F&O over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bridge.config import FnoSettings, SalesSettings, WebhookSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Operation, System
from bridge.dataverse.reader import DataverseReader
from bridge.emulators import Emulators, EmulatorSettings
from bridge.fno.reader import FnoReader
from bridge.fno.registration import register_data_events
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.sources.receiver import WebhookReceiver
from tests.unit.fakes import MemoryPublisher

PRODUCT = source_entity(System.FNO, "product")
PATH = "CDSReleasedDistinctProducts"
CROSS = {"cross-company": "true"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    emulators: Emulators
    bridge_sales: ApiClient
    fno_user: ApiClient
    publisher: MemoryPublisher


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    emulator = EmulatorSettings()
    async with Emulators(emulator, sales_port=0, fno_port=0) as emulators:
        webhook = WebhookSettings(port=free_port(), key=SecretStr("data-event-key"))
        sales = SalesSettings(base_url=emulators.sales_url)
        fno = FnoSettings(base_url=emulators.fno_url)
        user = {"client_id": emulator.user_client_id, "client_secret": emulator.user_client_secret}
        policy = RetryPolicy()
        publisher = MemoryPublisher()
        async with (
            ApiClient(sales, sales.api_path, policy) as bridge_sales,
            ApiClient(fno, fno.api_path, policy) as bridge_fno,
            ApiClient(fno.model_copy(update=user), fno.api_path, policy) as fno_user,
            WebhookReceiver(
                webhook, publisher, DataverseReader(bridge_sales), FnoReader(bridge_fno)
            ),
        ):
            await register_data_events(bridge_sales, webhook, [PRODUCT])
            yield Stack(emulators, bridge_sales, fno_user, publisher)


def key(number: str) -> str:
    return f"{PATH}(dataAreaId='usmf',ProductNumber='{number}')"


async def test_creates_updates_and_deletes_in_fno_arrive_as_change_events(stack: Stack) -> None:
    fno = stack.fno_user
    body = {
        "dataAreaId": "usmf",
        "ProductNumber": "DE-1",
        "ProductName": "Bolt",
        "SalesUnitSymbol": "ea",
    }
    await fno.request("POST", PATH, json=body)
    await stack.emulators.wait_for_deliveries()
    await fno.request("PATCH", key("DE-1"), json={"ProductName": "Bolt M8"}, params=CROSS)
    await stack.emulators.wait_for_deliveries()
    await fno.request("DELETE", key("DE-1"), params=CROSS)
    await stack.emulators.wait_for_deliveries()
    await fno.request("POST", PATH, json={**body, "ProductName": "Bolt again"})
    await stack.emulators.wait_for_deliveries()
    await asyncio.sleep(0)

    events = stack.publisher.events
    assert [e.operation for e in events] == [
        Operation.CREATE,
        Operation.UPDATE,
        Operation.DELETE,
        Operation.CREATE,
    ]
    assert {e.key for e in events} == {b"usmf|de-1"}, "one record identity, as every F&O path"
    assert [e.image.get("ProductName") for e in events] == ["Bolt", "Bolt M8", None, "Bolt again"]
    assert events[2].before == {"dataAreaId": "usmf", "ProductNumber": "DE-1"}
    versions = [e.source.record_version for e in events]
    assert all(v is not None for v in versions) and versions == sorted(versions)
    assert len(set(versions)) == 4
    whoami = str((await stack.bridge_sales.get_json("WhoAmI"))["UserId"]).lower()
    assert all(e.source.changed_by not in (None, whoami) for e in events), "a user's changes"


async def test_the_bridges_own_fno_writes_name_the_bridge_as_their_author(stack: Stack) -> None:
    bridge_fno = ApiClient(FnoSettings(base_url=stack.emulators.fno_url), "/data", RetryPolicy())
    async with bridge_fno:
        body = {
            "dataAreaId": "usmf",
            "ProductNumber": "DE-2",
            "ProductName": "Nut",
            "SalesUnitSymbol": "ea",
        }
        await bridge_fno.request("POST", PATH, json=body)
    await stack.emulators.wait_for_deliveries()
    whoami = str((await stack.bridge_sales.get_json("WhoAmI"))["UserId"]).lower()
    assert [e.source.changed_by for e in stack.publisher.events] == [whoami]


async def test_catch_up_through_virtual_table_change_tracking_finds_what_push_missed(
    stack: Stack,
) -> None:
    """The receiver was down: the changes are found by Dataverse change tracking on the
    virtual table, with the same key and version a data event would have carried."""
    from bridge.config import PollerSettings
    from bridge.fno.virtual_poller import VirtualTablePoller
    from tests.unit.ops.fakes import MemoryState

    fno = stack.fno_user
    body = {"dataAreaId": "usmf", "SalesUnitSymbol": "ea"}
    for number in ("VT-1", "VT-2"):
        await fno.request(
            "POST", PATH, json={**body, "ProductNumber": number, "ProductName": number}
        )
    publisher, state = MemoryPublisher(), MemoryState()
    bridge_fno = ApiClient(FnoSettings(base_url=stack.emulators.fno_url), "/data", RetryPolicy())
    async with bridge_fno:
        poller = VirtualTablePoller(
            PollerSettings(page_size=2),
            PRODUCT,
            DataverseReader(stack.bridge_sales),
            FnoReader(bridge_fno),
            publisher,
            state,
        )
        assert await poller.poll_once() == 0, "the first run only establishes the link"
        await fno.request("PATCH", key("VT-1"), json={"ProductName": "renamed"}, params=CROSS)
        await fno.request("DELETE", key("VT-2"), params=CROSS)
        await fno.request(
            "POST", PATH, json={**body, "ProductNumber": "VT-3", "ProductName": "new"}
        )
        assert await poller.poll_once() == 3
        assert await poller.poll_once() == 0
    by_number = {e.source.business_key or e.image.get("ProductNumber"): e for e in publisher.events}
    assert (
        by_number["VT-1"].after is not None and by_number["VT-1"].after["ProductName"] == "renamed"
    )
    assert by_number["VT-2"].operation is Operation.DELETE
    assert by_number["VT-2"].key == b"usmf|vt-2"
    assert by_number["VT-3"].after is not None and by_number["VT-3"].after["ProductName"] == "new"
    assert all(e.source.record_version for e in (by_number["VT-1"], by_number["VT-3"]))


async def test_read_many_finds_each_key_in_few_queries(stack: Stack) -> None:
    """The catch-up reads the changed records many keys per query: each key gets its own
    record (keys compared without case, as F&O does), a key without a record gets None."""
    body = {"dataAreaId": "usmf", "SalesUnitSymbol": "ea"}
    for number in ("RM-1", "RM-2", "RM-3", "RM-4", "RM-5"):
        await stack.fno_user.request(
            "POST", PATH, json={**body, "ProductNumber": number, "ProductName": f"name {number}"}
        )
    queries: list[str] = []

    class CountingReader(FnoReader):
        def rows(self, entity_set, params, page_size=None):  # type: ignore[no-untyped-def]
            queries.append(params["$filter"])
            return super().rows(entity_set, params, page_size)

    bridge_fno = ApiClient(FnoSettings(base_url=stack.emulators.fno_url), "/data", RetryPolicy())
    async with bridge_fno:
        keys = [
            {"dataAreaId": "usmf", "ProductNumber": "rm-5"},
            {"dataAreaId": "USMF", "ProductNumber": "RM-1"},
            {"dataAreaId": "usmf", "ProductNumber": "RM-404"},
            {"dataAreaId": "usmf", "ProductNumber": "RM-3"},
            {"dataAreaId": "usmf", "ProductNumber": "RM-2"},
        ]
        records = await CountingReader(bridge_fno).read_many(PRODUCT, keys, per_request=2)
    assert [r["ProductName"] if r else None for r in records] == [
        "name RM-5",
        "name RM-1",
        None,
        "name RM-3",
        "name RM-2",
    ]
    assert len(queries) == 3
