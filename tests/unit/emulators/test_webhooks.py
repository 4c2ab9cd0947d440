"""Dataverse webhook registration and delivery of RemoteExecutionContext (A.9)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from tests.unit.emulators.support import API, BRIDGE, USER, Receiver, SalesHarness, token_for

XRM = "http://schemas.microsoft.com/xrm/2011/Contracts"


async def register(
    sales: SalesHarness,
    url: str,
    message: str,
    *,
    authtype: int = 4,
    authvalue: str = "the-key",
    filtering: str | None = None,
    image_type: int | None = 1,
    entity: str = "account",
) -> str:
    status, endpoint = await sales.json(
        "POST",
        f"{API}/serviceendpoints",
        json={
            "name": "bridge",
            "contract": 8,
            "url": url,
            "authtype": authtype,
            "authvalue": authvalue,
            "messageformat": 2,
        },
        headers={"Prefer": "return=representation"},
    )
    assert status == 201, endpoint
    _, messages = await sales.json(
        "GET", f"{API}/sdkmessages?$filter=name eq '{message}'&$select=sdkmessageid"
    )
    message_id = messages["value"][0]["sdkmessageid"]
    _, filters = await sales.json(
        "GET",
        f"{API}/sdkmessagefilters?$filter=primaryobjecttypecode eq '{entity}' and _sdkmessageid_value eq {message_id}&$select=sdkmessagefilterid",
    )
    filter_id = filters["value"][0]["sdkmessagefilterid"]
    status, step = await sales.json(
        "POST",
        f"{API}/sdkmessageprocessingsteps",
        json={
            "name": f"bridge: {message} of {entity}",
            "mode": 1,
            "rank": 1,
            "stage": 40,
            "supporteddeployment": 0,
            "asyncautodelete": True,
            "filteringattributes": filtering,
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
            "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
            "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
        },
        headers={"Prefer": "return=representation"},
    )
    assert status == 201, step
    step_id = str(step["sdkmessageprocessingstepid"])
    if image_type is not None:
        status, _ = await sales.json(
            "POST",
            f"{API}/sdkmessageprocessingstepimages",
            json={
                "name": "image",
                "entityalias": "Image",
                "imagetype": image_type,
                "messagepropertyname": "Target",
                "attributes": None,
                "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step_id})",
            },
        )
        assert status == 204
    return step_id


def attributes(entity: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in entity["Attributes"]}


async def test_create_is_delivered_with_key_headers_and_context(
    sales: SalesHarness, receiver: Receiver
) -> None:
    step_id = await register(sales, receiver.url, "Create")
    status, account = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "Hooked", "customertypecode": 3, "creditlimit": 12.5},
        headers={"Prefer": "return=representation"},
        as_user=True,
    )
    assert status == 201
    [request] = await receiver.wait_for(1)
    assert request.path == "/hook"
    assert request.query == {"code": "the-key"}
    assert request.headers["x-ms-dynamics-entity-name"] == "account"
    assert request.headers["x-ms-dynamics-request-name"] == "Create"
    assert request.headers["x-ms-dynamics-organization"]
    context = request.body
    assert request.headers["x-ms-correlation-request-id"] == context["CorrelationId"]
    user = sales.emulator.directory.get("p2c-user")
    assert user is not None
    assert context["UserId"] == context["InitiatingUserId"] == user.systemuser_id
    assert context["MessageName"] == "Create"
    assert context["PrimaryEntityName"] == "account"
    assert context["PrimaryEntityId"] == account["accountid"]
    assert (context["Stage"], context["Mode"], context["Depth"]) == (40, 1, 1)
    assert context["OutputParameters"] == [{"key": "id", "value": account["accountid"]}]
    assert context["OwningExtension"]["Id"] == step_id
    assert re.fullmatch(r"/Date\(\d+\)/", context["OperationCreatedOn"])
    assert context["SharedVariables"] == []
    target = context["InputParameters"][0]["value"]
    assert target["__type"] == f"Entity:{XRM}"
    assert target["LogicalName"] == "account"
    values = attributes(target)
    assert values["name"] == "Hooked"
    assert values["accountid"] == account["accountid"]
    assert values["customertypecode"] == {"__type": f"OptionSetValue:{XRM}", "Value": 3}
    assert values["creditlimit"] == {"__type": f"Money:{XRM}", "Value": 12.5}
    assert values["modifiedby"]["__type"] == f"EntityReference:{XRM}"
    assert values["modifiedby"]["LogicalName"] == "systemuser"
    assert {"key": "customertypecode", "value": "Customer"} in target["FormattedValues"]
    [image] = context["PostEntityImages"]
    assert image["key"] == "Image"
    post = attributes(image["value"])
    assert post["versionnumber"] == account["versionnumber"]
    assert re.fullmatch(r"/Date\(\d+\)/", post["modifiedon"])
    assert "telephone1" not in post
    assert context["PreEntityImages"] == []


async def test_update_respects_filtering_attributes_and_images(
    sales: SalesHarness, receiver: Receiver
) -> None:
    _, account = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "Before"},
        headers={"Prefer": "return=representation"},
    )
    await register(sales, receiver.url, "Update", filtering="name,telephone1", image_type=2)
    await sales.json("PATCH", f"{API}/accounts({account['accountid']})", json={"fax": "1"})
    await sales.json(
        "PATCH",
        f"{API}/accounts({account['accountid']})",
        json={"name": "After", "telephone1": None},
    )
    [request] = await receiver.wait_for(1)
    await sales.emulator.dispatcher.wait_idle()
    assert len(receiver.requests) == 1
    context = request.body
    target = attributes(context["InputParameters"][0]["value"])
    assert target["name"] == "After"
    assert target["telephone1"] is None
    assert "fax" not in target
    assert attributes(context["PreEntityImages"][0]["value"])["name"] == "Before"
    assert attributes(context["PostEntityImages"][0]["value"])["name"] == "After"
    assert context["OutputParameters"] == []


async def test_delete_target_is_an_entity_reference(
    sales: SalesHarness, receiver: Receiver
) -> None:
    _, account = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "Doomed"},
        headers={"Prefer": "return=representation"},
    )
    await register(sales, receiver.url, "Delete", image_type=0)
    await sales.json("DELETE", f"{API}/accounts({account['accountid']})")
    [request] = await receiver.wait_for(1)
    target = request.body["InputParameters"][0]["value"]
    assert target == {
        "__type": f"EntityReference:{XRM}",
        "Id": account["accountid"],
        "KeyAttributes": [],
        "LogicalName": "account",
        "Name": None,
        "RowVersion": None,
    }
    assert attributes(request.body["PreEntityImages"][0]["value"])["name"] == "Doomed"
    assert request.body["PostEntityImages"] == []


@pytest.mark.parametrize(
    ("authtype", "authvalue", "expect_headers", "expect_query"),
    [
        (
            5,
            '<settings><setting name="X-Bridge-Key" value="k1" /><setting name="X-Other" value="a&amp;b" /></settings>',
            {"X-Bridge-Key": "k1", "X-Other": "a&b"},
            {},
        ),
        (6, '<settings><setting name="token" value="t 1" /></settings>', {}, {"token": "t 1"}),
    ],
)
async def test_header_and_query_string_auth(
    sales: SalesHarness,
    receiver: Receiver,
    authtype: int,
    authvalue: str,
    expect_headers: dict[str, str],
    expect_query: dict[str, str],
) -> None:
    await register(sales, receiver.url, "Create", authtype=authtype, authvalue=authvalue)
    await sales.json("POST", f"{API}/accounts", json={"name": "A"})
    [request] = await receiver.wait_for(1)
    for name, value in expect_headers.items():
        assert request.headers[name] == value
    assert request.query == expect_query
    await sales.emulator.dispatcher.wait_idle()
    log = sales.emulator.deliveries.entries()
    assert "t 1" not in log[0]["url"]


async def test_retries_once_on_503_then_delivers(sales: SalesHarness, receiver: Receiver) -> None:
    await register(sales, receiver.url, "Create")
    receiver.statuses = [503]
    await sales.json("POST", f"{API}/accounts", json={"name": "A"})
    await receiver.wait_for(2)
    await sales.emulator.dispatcher.wait_idle()
    [entry] = sales.emulator.deliveries.entries()
    assert (entry["outcome"], entry["attempts"], entry["status"]) == ("delivered", 2, 200)
    assert entry["url"].endswith("code=***")


@pytest.mark.parametrize(("statuses", "attempts"), [([500], 1), ([503, 502], 2), ([404], 1)])
async def test_failure_is_recorded_as_a_system_job(
    sales: SalesHarness, receiver: Receiver, statuses: list[int], attempts: int
) -> None:
    step_id = await register(sales, receiver.url, "Create")
    receiver.statuses = list(statuses)
    _, account = await sales.json(
        "POST", f"{API}/accounts", json={"name": "A"}, headers={"Prefer": "return=representation"}
    )
    await receiver.wait_for(attempts)
    await sales.emulator.dispatcher.wait_idle()
    assert len(receiver.requests) == attempts
    status, jobs = await sales.json(
        "GET",
        f"{API}/asyncoperations?$filter=statuscode eq 31 and _owningextensionid_value eq {step_id}",
    )
    assert status == 200
    [job] = jobs["value"]
    assert job["statecode"] == 3
    assert job["_regardingobjectid_value"] == account["accountid"]
    assert f"HTTP {statuses[-1]}" in job["message"]
    assert sales.emulator.deliveries.entries()[0]["outcome"] == "failed"


async def test_timeout_is_a_failure(receiver: Receiver) -> None:
    emulator = DataverseEmulator(
        EmulatorSettings(webhook_timeout_seconds=0.2, webhook_retry_delay_seconds=0.01)
    )
    async with TestClient(TestServer(emulator.app)) as client:
        sales = SalesHarness(
            client,
            {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"},
            {"Authorization": f"Bearer {await token_for(client, USER)}"},
            emulator=emulator,
        )
        await register(sales, receiver.url, "Create")
        receiver.delay_seconds = 0.5
        await sales.json("POST", f"{API}/accounts", json={"name": "Slow"})
        async with asyncio.timeout(5):
            await emulator.dispatcher.wait_idle()
        [entry] = emulator.deliveries.entries()
        assert entry["outcome"] == "failed"
        assert "timed out" in entry["error"]
        _, jobs = await sales.json("GET", f"{API}/asyncoperations?$filter=statuscode eq 31")
        assert len(jobs["value"]) == 1


@asynccontextmanager
async def sales_with(settings: EmulatorSettings) -> AsyncIterator[SalesHarness]:
    """A Dataverse emulator with ``settings`` behind a test server."""
    emulator = DataverseEmulator(settings)
    async with TestClient(TestServer(emulator.app)) as client:
        yield SalesHarness(
            client,
            {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"},
            {"Authorization": f"Bearer {await token_for(client, USER)}"},
            emulator=emulator,
        )


async def _update_five_times(sales: SalesHarness, receiver: Receiver) -> list[str]:
    _, account = await sales.json(
        "POST", f"{API}/accounts", json={"name": "v0"}, headers={"Prefer": "return=representation"}
    )
    await register(sales, receiver.url, "Update", image_type=1)
    for index in range(1, 6):
        await sales.json(
            "PATCH", f"{API}/accounts({account['accountid']})", json={"name": f"v{index}"}
        )
    async with asyncio.timeout(5):
        await sales.emulator.dispatcher.wait_idle()
    delivered = [r for r in receiver.requests if r.body is not None]
    return [attributes(r.body["InputParameters"][0]["value"])["name"] for r in delivered]


async def test_one_worker_delivers_in_write_order(receiver: Receiver) -> None:
    settings = EmulatorSettings(webhook_workers=1, webhook_retry_delay_seconds=0.01)
    async with sales_with(settings) as sales:
        receiver.delay_seconds = 0.02
        names = await _update_five_times(sales, receiver)
    assert names == ["v1", "v2", "v3", "v4", "v5"]


async def test_concurrent_workers_deliver_out_of_order(receiver: Receiver) -> None:
    """A retried delivery is overtaken by later ones: the async service keeps no order."""
    settings = EmulatorSettings(webhook_workers=4, webhook_retry_delay_seconds=0.3)
    failed: set[str] = set()

    def fail_v1_once(body: Any) -> int | None:
        name = attributes(body["InputParameters"][0]["value"])["name"]
        if name == "v1" and name not in failed:
            failed.add(name)
            return 503
        return None

    receiver.status_for = fail_v1_once
    async with sales_with(settings) as sales:
        names = await _update_five_times(sales, receiver)
        entries = sales.emulator.deliveries.entries()
    assert names[-1] == "v1"
    assert sorted(names) == ["v1", "v1", "v2", "v3", "v4", "v5"]
    assert [e["outcome"] for e in entries] == ["delivered"] * 5
    retried = [e for e in entries if e["attempts"] == 2]
    assert len(retried) == 1


async def test_reorder_window_shuffles_close_deliveries(receiver: Receiver) -> None:
    settings = EmulatorSettings(
        webhook_workers=4, webhook_reorder_window_seconds=0.2, webhook_reorder_seed=7
    )
    async with sales_with(settings) as sales:
        names = await _update_five_times(sales, receiver)
    assert sorted(names) == ["v1", "v2", "v3", "v4", "v5"]
    assert names != ["v1", "v2", "v3", "v4", "v5"]


async def test_disabled_step_and_other_entities_do_not_fire(
    sales: SalesHarness, receiver: Receiver
) -> None:
    step_id = await register(sales, receiver.url, "Create")
    await sales.json("POST", f"{API}/contacts", json={"lastname": "Other entity"})
    await sales.json("PATCH", f"{API}/sdkmessageprocessingsteps({step_id})", json={"statecode": 1})
    await sales.json("POST", f"{API}/accounts", json={"name": "Disabled"})
    await sales.emulator.dispatcher.wait_idle()
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {
                "name": "x",
                "contract": 8,
                "url": "http://127.0.0.1:1/x",
                "authtype": 5,
                "authvalue": "k",
            },
            "authvalue",
        ),
        ({"name": "x", "contract": 8, "url": "not a url", "authtype": 4, "authvalue": "k"}, "url"),
        (
            {
                "name": "x",
                "contract": 8,
                "url": "http://127.0.0.1:1/x",
                "authtype": 2,
                "authvalue": "k",
            },
            "authtype",
        ),
    ],
)
async def test_endpoint_registration_is_validated(
    sales: SalesHarness, body: dict[str, object], fragment: str
) -> None:
    status, error = await sales.json("POST", f"{API}/serviceendpoints", json=body)
    assert status == 400
    assert fragment in error["error"]["message"]


async def test_async_steps_must_be_post_operation(sales: SalesHarness, receiver: Receiver) -> None:
    _, endpoint = await sales.json(
        "POST",
        f"{API}/serviceendpoints",
        json={"name": "e", "contract": 8, "url": receiver.url, "authtype": 4, "authvalue": "k"},
        headers={"Prefer": "return=representation"},
    )
    _, messages = await sales.json("GET", f"{API}/sdkmessages?$filter=name eq 'Update'")
    status, error = await sales.json(
        "POST",
        f"{API}/sdkmessageprocessingsteps",
        json={
            "name": "bad",
            "mode": 1,
            "stage": 20,
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
            "sdkmessageid@odata.bind": f"/sdkmessages({messages['value'][0]['sdkmessageid']})",
        },
    )
    assert status == 400
    assert "PostOperation" in error["error"]["message"]
