"""F&O data events delivered by the Dataverse webhook machinery on the virtual tables (B.4)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.unit.emulators.p2c_support import (
    act,
    customer,
    fno_create,
    fno_order,
    released_product,
)
from tests.unit.emulators.support import API, LinkedHarness, Receiver, register_step

XRM = "http://schemas.microsoft.com/xrm/2011/Contracts"
CUSTOMER = "mserp_custcustomerv3entity"
CUSTOMER_URL = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"
NO, YES = 200_000_000, 200_000_001


def target(body: dict[str, Any]) -> dict[str, Any]:
    [parameter] = body["InputParameters"]
    assert parameter["key"] == "Target"
    value = parameter["value"]
    assert isinstance(value, dict)
    return value


def attributes(entity: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in entity["Attributes"]}


async def subscribe(linked: LinkedHarness, url: str, message: str, entity: str = CUSTOMER) -> str:
    status, step = await register_step(linked.sales, url, message, entity, images=(0, 1))
    assert status == 201, step
    return str(step["sdkmessageprocessingstepid"])


async def create_customer(linked: LinkedHarness, **fields: Any) -> None:
    await fno_create(
        linked.fno,
        "CustomersV3",
        {"CustomerAccount": "US-001", "CustomerGroupId": "10", **fields},
    )


async def test_created_carries_every_set_column_and_the_user(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    step_id = await subscribe(linked, receiver.url, "OnExternalCreated")
    await create_customer(linked, CreditLimit=5000.0, IsExternallyMaintained="Yes")
    [request] = await receiver.wait_for(1)
    assert request.query == {"code": "key"}
    assert request.headers["x-ms-dynamics-entity-name"] == CUSTOMER
    assert request.headers["x-ms-dynamics-request-name"] == "OnExternalCreated"
    body = request.body
    user = linked.sales.emulator.directory.get("p2c-user")
    assert user is not None
    assert body["MessageName"] == "OnExternalCreated"
    assert body["PrimaryEntityName"] == CUSTOMER
    assert body["PrimaryEntityId"] == "00003a01-0000-0000-0000-005001000000"
    assert (body["Mode"], body["Stage"], body["Depth"]) == (1, 40, 1)
    assert body["InitiatingUserId"] == body["UserId"] == user.systemuser_id
    assert body["InitiatingUserAzureActiveDirectoryObjectId"] == user.object_id
    assert re.fullmatch(r"/Date\(\d+\)/", body["OperationCreatedOn"])
    assert body["OwningExtension"]["Id"] == step_id
    assert body["OutputParameters"] == []
    entity = target(body)
    assert entity["__type"] == f"Entity:{XRM}"
    assert entity["LogicalName"] == CUSTOMER
    assert entity["Id"] == body["PrimaryEntityId"]
    _, row = await linked.sales.json("GET", f"{API}/mserp_custcustomerv3entities({entity['Id']})")
    assert entity["RowVersion"] == str(row["versionnumber"])
    values = attributes(entity)
    assert values[f"{CUSTOMER}id"] == entity["Id"]
    assert values["mserp_customeraccount"] == "US-001"
    assert values["mserp_dataareaid"] == "usmf"
    assert values["mserp_creditlimit"] == 5000.0
    assert values["mserp_primaryfield"] == "US-001"
    assert values["versionnumber"] == row["versionnumber"]
    assert values["mserp_isexternallymaintained"] == {
        "__type": f"OptionSetValue:{XRM}",
        "Value": YES,
    }
    assert {"key": "mserp_isexternallymaintained", "value": "Yes"} in entity["FormattedValues"]
    assert all(value is not None for value in values.values())
    assert body["PreEntityImages"] == []
    [post] = body["PostEntityImages"]
    assert attributes(post["value"])["mserp_customeraccount"] == "US-001"


async def test_updated_carries_changed_columns_and_the_bridge_as_user(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await create_customer(linked, CreditLimit=5000.0)
    await subscribe(linked, receiver.url, "OnExternalUpdated")
    status, _ = await linked.fno.json(
        "PATCH", CUSTOMER_URL, json={"CreditLimit": 7500.0, "CustomerGroupId": "10"}
    )
    assert status == 204
    [request] = await receiver.wait_for(1)
    body = request.body
    bridge = linked.sales.emulator.directory.get("bridge-local")
    assert bridge is not None
    assert body["MessageName"] == "OnExternalUpdated"
    assert body["InitiatingUserId"] == bridge.systemuser_id
    values = attributes(target(body))
    assert set(values) == {f"{CUSTOMER}id", "mserp_creditlimit", "versionnumber"}
    assert values["mserp_creditlimit"] == 7500.0
    assert target(body)["RowVersion"] == str(values["versionnumber"])
    [pre] = body["PreEntityImages"]
    assert attributes(pre["value"])["mserp_creditlimit"] == 5000.0
    assert attributes(pre["value"])["versionnumber"] < values["versionnumber"]


async def test_cleared_dates_are_left_out_of_the_target(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await released_product(linked.fno, "P1")
    await customer(linked.fno, "US-001")
    number = await fno_order(linked.fno, "US-001", [], RequestedShippingDate="2026-02-01T12:00:00Z")
    await subscribe(linked, receiver.url, "OnExternalUpdated", "mserp_salesorderheadercdsentity")
    status, _ = await linked.fno.json(
        "PATCH",
        f"/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{number}')",
        json={"RequestedShippingDate": "1900-01-01T12:00:00Z", "SalesOrderName": "Renamed"},
    )
    assert status == 204, _
    [request] = await receiver.wait_for(1)
    values = attributes(target(request.body))
    assert values["mserp_salesordername"] == "Renamed"
    assert "mserp_requestedshippingdate" not in values
    pre = attributes(request.body["PreEntityImages"][0]["value"])
    assert pre["mserp_requestedshippingdate"] == "/Date(1769947200000)/"


async def test_deleted_carries_the_primary_key_only(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await create_customer(linked)
    await subscribe(linked, receiver.url, "OnExternalDeleted")
    status, _ = await linked.fno.json("DELETE", CUSTOMER_URL, as_user=True)
    assert status == 204
    [request] = await receiver.wait_for(1)
    body = request.body
    entity = target(body)
    assert entity["__type"] == f"Entity:{XRM}"
    assert entity["Attributes"] == [{"key": f"{CUSTOMER}id", "value": body["PrimaryEntityId"]}]
    [pre] = body["PreEntityImages"]
    pre_version = attributes(pre["value"])["versionnumber"]
    assert int(entity["RowVersion"]) > pre_version
    assert body["PostEntityImages"] == []


async def test_business_actions_raise_data_events(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await customer(linked.fno, "US-001")
    await released_product(linked.fno, "P1")
    number = await fno_order(
        linked.fno, "US-001", [{"ProductNumber": "P1", "OrderedSalesQuantity": 2}]
    )
    await subscribe(linked, receiver.url, "OnExternalUpdated", "mserp_salesorderheadercdsentity")
    await subscribe(linked, receiver.url, "OnExternalCreated", "mserp_salesinvoiceheaderv2entity")
    await subscribe(linked, receiver.url, "OnExternalCreated", "mserp_salesinvoicelinev2entity")
    status, _ = await act(linked.fno, number, "Confirm")
    assert status == 200
    status, _ = await act(linked.fno, number, "PostInvoice")
    assert status == 200
    async with asyncio.timeout(5):
        await linked.sales.emulator.dispatcher.wait_idle()
    seen = sorted((r.body["PrimaryEntityName"], r.body["MessageName"]) for r in receiver.requests)
    assert ("mserp_salesinvoiceheaderv2entity", "OnExternalCreated") in seen
    assert ("mserp_salesinvoicelinev2entity", "OnExternalCreated") in seen
    updates = [
        attributes(target(r.body))
        for r in receiver.requests
        if r.body["MessageName"] == "OnExternalUpdated"
    ]
    statuses = [u.get("mserp_salesorderprocessingstatus", {}).get("Value") for u in updates]
    virtual = linked.sales.emulator.virtual
    assert virtual is not None
    confirmed = virtual.options.value_of("SalesOrderProcessingStatus", "Confirmed")
    assert confirmed in statuses
    user = linked.sales.emulator.directory.get("p2c-user")
    assert user is not None
    assert {r.body["InitiatingUserId"] for r in receiver.requests} == {user.systemuser_id}


@pytest.mark.parametrize(("mode", "stage"), [(0, 40), (None, 40), (0, 20), (1, 20), (1, 10)])
async def test_only_asynchronous_post_operation_steps_are_allowed(
    linked: LinkedHarness, receiver: Receiver, mode: int | None, stage: int
) -> None:
    status, body = await register_step(
        linked.sales, receiver.url, "OnExternalCreated", CUSTOMER, mode=mode, stage=stage
    )
    assert status == 400
    assert body["error"] == {
        "code": "0x80044187",
        "message": "Custom SdkMessageProcessingStep is not allowed on the specified message.",
    }


async def test_a_step_cannot_be_switched_to_synchronous(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    step_id = await subscribe(linked, receiver.url, "OnExternalCreated")
    status, body = await linked.sales.json(
        "PATCH", f"{API}/sdkmessageprocessingsteps({step_id})", json={"mode": 0}
    )
    assert status == 400
    assert body["error"]["code"] == "0x80044187"


async def test_legal_entity_configuration_restricts_the_activation(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    status, _ = await register_step(
        linked.sales,
        receiver.url,
        "OnExternalCreated",
        CUSTOMER,
        configuration='<settings><setting name="LegalEntity" value="usrt,demf" /></settings>',
    )
    assert status == 201
    await customer(linked.fno, "US-001")
    await customer(linked.fno, "RT-001", company="usrt")
    await linked.sales.emulator.dispatcher.wait_idle()
    assert [attributes(target(r.body))["mserp_dataareaid"] for r in receiver.requests] == ["usrt"]


async def test_only_registered_messages_and_tables_are_delivered(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await subscribe(linked, receiver.url, "OnExternalDeleted")
    await register_step(linked.sales, receiver.url, "Create", "account")
    await create_customer(linked)
    await released_product(linked.fno, "P1")
    await linked.fno.json(
        "DELETE", "/data/CDSReleasedDistinctProducts(dataAreaId='usmf',ProductNumber='P1')"
    )
    await linked.sales.emulator.dispatcher.wait_idle()
    assert receiver.requests == []
    await linked.fno.json("DELETE", CUSTOMER_URL)
    [request] = await receiver.wait_for(1)
    assert request.body["MessageName"] == "OnExternalDeleted"


async def test_messages_and_filters_are_found_by_name(linked: LinkedHarness) -> None:
    _, messages = await linked.sales.json(
        "GET", f"{API}/sdkmessages?$filter=startswith(name,'OnExternal')&$select=name"
    )
    assert sorted(m["name"] for m in messages["value"]) == [
        "OnExternalCreated",
        "OnExternalDeleted",
        "OnExternalUpdated",
    ]
    _, filters = await linked.sales.json(
        "GET",
        f"{API}/sdkmessagefilters?$filter=primaryobjecttypecode eq 'mserp_salesorderlinecdsentity'",
    )
    assert len(filters["value"]) == 3
    response = await linked.sales.client.post("/_emulator/reset")
    assert response.status == 200
    _, again = await linked.sales.json(
        "GET", f"{API}/sdkmessages?$filter=name eq 'OnExternalUpdated'"
    )
    assert len(again["value"]) == 1


async def test_a_malformed_legal_entity_configuration_is_refused(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    status, body = await register_step(
        linked.sales, receiver.url, "OnExternalCreated", CUSTOMER, configuration="usmf"
    )
    assert status == 400
    assert body["error"]["message"].startswith("The configuration must be <settings>")


async def test_a_failed_data_event_is_a_failed_system_job(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    step_id = await subscribe(linked, receiver.url, "OnExternalCreated")
    receiver.statuses = [500]
    await create_customer(linked)
    await receiver.wait_for(1)
    await linked.sales.emulator.dispatcher.wait_idle()
    _, jobs = await linked.sales.json(
        "GET",
        f"{API}/asyncoperations?$filter=statuscode eq 31 and _owningextensionid_value eq {step_id}",
    )
    [job] = jobs["value"]
    assert job["messagename"] == "OnExternalCreated"
    assert job["primaryentitytype"] == CUSTOMER
    assert job["_regardingobjectid_value"] is None
