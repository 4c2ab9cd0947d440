"""Dataverse bulk operation messages CreateMultiple / UpdateMultiple / UpsertMultiple
(dynamics-apis.md A.11; the "A.11:" notes name the spec bullet each test checks)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from tests.unit.emulators.support import API, BRIDGE, Receiver, SalesHarness, token_for
from tests.unit.emulators.test_webhooks import register

CRM = "Microsoft.Dynamics.CRM"


def account(**fields: Any) -> dict[str, Any]:
    return {"@odata.type": f"{CRM}.account", **fields}


async def bulk(
    sales: SalesHarness, message: str, targets: list[Any], entity_set: str = "accounts"
) -> tuple[int, Any]:
    return await sales.json(
        "POST", f"{API}/{entity_set}/{CRM}.{message}", json={"Targets": targets}
    )


async def names(sales: SalesHarness) -> dict[str, str]:
    _, body = await sales.json("GET", f"{API}/accounts?$select=name,accountnumber")
    return {row["accountnumber"]: row["name"] for row in body["value"]}


async def test_create_multiple_answers_ids_in_targets_order(sales: SalesHarness) -> None:
    # A.11: CreateMultiple -> 200 {"@odata.context": ...CreateMultipleResponse, "Ids": [...]}
    status, body = await bulk(
        sales, "CreateMultiple", [account(name=f"A{i}", accountnumber=f"N{i}") for i in range(3)]
    )
    assert status == 200, body
    assert body["@odata.context"].endswith(f"$metadata#{CRM}.CreateMultipleResponse")
    for index, record_id in enumerate(body["Ids"]):
        _, row = await sales.json("GET", f"{API}/accounts({record_id})?$select=name")
        assert row["name"] == f"A{index}"


async def test_every_target_needs_the_tables_odata_type(sales: SalesHarness) -> None:
    # A.11: each item must carry @odata.type; all Targets are rows of the URL's table
    status, body = await bulk(sales, "CreateMultiple", [account(name="ok"), {"name": "no type"}])
    assert status == 400, body
    assert "@odata.type" in body["error"]["message"]
    status, body = await bulk(
        sales, "CreateMultiple", [{"@odata.type": f"{CRM}.contact", "lastname": "x"}]
    )
    assert status == 400, body
    assert await names(sales) == {}


async def test_a_failing_item_rolls_the_whole_request_back(sales: SalesHarness) -> None:
    # A.11: standard tables, one transaction - any failing item rolls back the whole request
    targets = [account(name="first", accountnumber="K1"), account(name="bad", creditlimit="x")]
    status, body = await bulk(sales, "CreateMultiple", targets)
    assert status == 400, body
    assert set(body["error"]) == {"code", "message"}
    assert await names(sales) == {}
    assert sales.emulator.store.stats()["totals"]["creates"] == 0


async def test_update_multiple_updates_by_primary_key_and_answers_204(
    sales: SalesHarness,
) -> None:
    # A.11: UpdateMultiple items carry the PK column plus changed columns; -> 204, no OData-EntityId
    _, created = await bulk(
        sales,
        "CreateMultiple",
        [account(name="A", accountnumber="N1"), account(name="B", accountnumber="N2")],
    )
    first, second = created["Ids"]
    response = await sales.client.post(
        f"{API}/accounts/{CRM}.UpdateMultiple",
        json={
            "Targets": [
                account(accountid=first, name="A2"),
                account(accountid=second, name="B2"),
                account(accountid=first, name="ignored"),
            ]
        },
        headers=sales.bridge,
    )
    assert response.status == 204, await response.text()
    assert "OData-EntityId" not in response.headers
    # A.11: duplicate keys - UpdateMultiple applies only the first item per key
    assert await names(sales) == {"N1": "A2", "N2": "B2"}


async def test_update_multiple_of_a_missing_row_changes_nothing(sales: SalesHarness) -> None:
    _, created = await bulk(sales, "CreateMultiple", [account(name="A", accountnumber="N1")])
    missing = str(uuid.uuid4())
    status, body = await bulk(
        sales,
        "UpdateMultiple",
        [
            account(accountid=created["Ids"][0], name="changed"),
            account(accountid=missing, name="x"),
        ],
    )
    assert status == 404, body
    assert missing in body["error"]["message"]
    assert await names(sales) == {"N1": "A"}


async def test_update_multiple_rejects_alternate_keys(sales: SalesHarness) -> None:
    # A.11: Web API UpdateMultiple with alternate keys is not supported
    await bulk(sales, "CreateMultiple", [account(name="A", accountnumber="N1")])
    status, _ = await bulk(
        sales,
        "UpdateMultiple",
        [account(name="B", **{"@odata.id": "accounts(accountnumber='N1')"})],
    )
    assert status == 400
    assert await names(sales) == {"N1": "A"}


async def test_upsert_multiple_creates_and_updates_by_alternate_key(sales: SalesHarness) -> None:
    # A.11: UpsertMultiple identifies rows by @odata.id = relative alternate-key URL; -> 204
    await bulk(sales, "CreateMultiple", [account(name="old", accountnumber="N1")])
    status, body = await bulk(
        sales,
        "UpsertMultiple",
        [
            account(name="new", **{"@odata.id": "accounts(accountnumber='N1')"}),
            account(name="created", **{"@odata.id": "accounts(accountnumber='N2')"}),
        ],
    )
    assert status == 204, body
    assert await names(sales) == {"N1": "new", "N2": "created"}


async def test_upsert_multiple_with_two_items_for_one_row_is_an_error(sales: SalesHarness) -> None:
    # A.11: duplicate keys in Targets - UpsertMultiple returns an error
    status, _ = await bulk(
        sales,
        "UpsertMultiple",
        [
            account(name="a", **{"@odata.id": "accounts(accountnumber='N1')"}),
            account(name="b", **{"@odata.id": "accounts(accountnumber='n1')"}),
        ],
    )
    assert status == 400
    assert await names(sales) == {}


async def test_support_per_table_is_answered_by_sdkmessagefilters(sales: SalesHarness) -> None:
    # A.11: GET sdkmessagefilters?$filter=sdkmessageid/name eq 'CreateMultiple' and
    # primaryobjecttypecode eq 'account' -> non-empty value = supported
    for message in ("CreateMultiple", "UpdateMultiple"):
        status, body = await sales.json(
            "GET",
            f"{API}/sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq "
            f"'{message}' and primaryobjecttypecode eq 'account'",
        )
        assert status == 200, body
        assert len(body["value"]) == 1
    # A.11: no filter rows exist for UpsertMultiple
    _, body = await sales.json(
        "GET", f"{API}/sdkmessagefilters?$filter=sdkmessageid/name eq 'UpsertMultiple'"
    )
    assert body["value"] == []


async def test_a_table_without_filters_refuses_the_bulk_messages() -> None:
    # A.11: availability per table; an unsupported table's answer is UNCONFIRMED (emulator: 400)
    emulator = DataverseEmulator(EmulatorSettings(dataverse_tables_without_bulk=("contact",)))
    async with TestClient(TestServer(emulator.app)) as client:
        headers = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        filters = await client.get(
            f"{API}/sdkmessagefilters?$filter=sdkmessageid/name eq 'CreateMultiple' and "
            "primaryobjecttypecode eq 'contact'",
            headers=headers,
        )
        assert (await filters.json())["value"] == []
        for message in ("CreateMultiple", "UpsertMultiple"):
            response = await client.post(
                f"{API}/contacts/{CRM}.{message}",
                json={"Targets": [{"@odata.type": f"{CRM}.contact", "lastname": "x"}]},
                headers=headers,
            )
            assert response.status == 400, await response.text()


async def test_delete_multiple_is_for_elastic_tables_only(sales: SalesHarness) -> None:
    # A.11: DeleteMultiple on a standard table: "DeleteMultiple has not yet been implemented."
    status, body = await bulk(sales, "DeleteMultiple", [account(accountid=str(uuid.uuid4()))])
    assert status == 400
    assert body["error"]["message"] == "DeleteMultiple has not yet been implemented."


async def test_each_item_fires_the_create_and_update_webhooks(
    sales: SalesHarness, receiver: Receiver
) -> None:
    # A.11: a bulk call raises the Create/Update event once per item, single Target each
    await register(sales, receiver.url, "Create")
    await register(sales, receiver.url, "Update")
    _, created = await bulk(
        sales, "CreateMultiple", [account(name=f"A{i}", accountnumber=f"N{i}") for i in range(3)]
    )
    await bulk(
        sales, "UpdateMultiple", [account(accountid=i, telephone1="1") for i in created["Ids"]]
    )
    async with asyncio.timeout(5):
        await sales.emulator.dispatcher.wait_idle()
    seen = sorted((r.body["MessageName"], r.body["PrimaryEntityId"]) for r in receiver.requests)
    assert seen == sorted(
        [("Create", i) for i in created["Ids"]] + [("Update", i) for i in created["Ids"]]
    )
    targets = [r.body["InputParameters"] for r in receiver.requests]
    assert all([p["key"] for p in params] == ["Target"] for params in targets)


async def test_a_rolled_back_bulk_call_fires_no_webhook(
    sales: SalesHarness, receiver: Receiver
) -> None:
    await register(sales, receiver.url, "Create")
    status, _ = await bulk(
        sales, "CreateMultiple", [account(name="a"), account(name="b", creditlimit="x")]
    )
    assert status == 400
    async with asyncio.timeout(5):
        await sales.emulator.dispatcher.wait_idle()
    assert receiver.requests == []


async def test_steps_on_bulk_messages_are_refused(sales: SalesHarness, receiver: Receiver) -> None:
    with pytest.raises(AssertionError):
        await register(sales, receiver.url, "CreateMultiple")


async def test_bulk_call_inside_a_batch_change_set(sales: SalesHarness) -> None:
    # A.7 stays as it was: a bulk action is one operation of a change set
    body = (
        "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n"
        "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n\r\n"
        f"POST {API}/accounts/{CRM}.CreateMultiple HTTP/1.1\r\n"
        "Content-Type: application/json\r\n\r\n"
        '{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","name":"in batch",'
        '"accountnumber":"B1"}]}\r\n'
        "--changeset_1--\r\n--batch_1--\r\n"
    )
    response = await sales.client.post(
        f"{API}/$batch",
        data=body,
        headers={**sales.bridge, "Content-Type": "multipart/mixed; boundary=batch_1"},
    )
    assert response.status == 200, await response.text()
    assert await names(sales) == {"B1": "in batch"}
