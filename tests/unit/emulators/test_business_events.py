"""F&O business events: registration, payloads, retries, errors and resend (B.4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.fno.app import FnoEmulator
from tests.unit.emulators.support import BRIDGE, USER, FnoHarness, Receiver, token_for


async def subscribe(
    fno: FnoHarness,
    url: str,
    event: str = "CustomersV3Changed",
    legal_entity: str = "",
    name: str = "bridge",
) -> None:
    status, body = await fno.json(
        "POST",
        "/data/BusinessEventsEndpoints",
        json={"EndpointName": name, "EndpointType": "Https", "Url": f"{url}?code=secret-key"},
    )
    assert status == 201, body
    assert body["Url"].endswith("?code=***")
    status, body = await fno.json(
        "POST",
        "/data/BusinessEventsActivations",
        json={"BusinessEventId": event, "EndpointName": name, "LegalEntity": legal_entity},
    )
    assert status == 201, body


async def create_customer(fno: FnoHarness, account: str, **fields: Any) -> None:
    status, _ = await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": account, "CustomerGroupId": "10", **fields},
        as_user=True,
    )
    assert status == 201


async def test_data_change_event_payload(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url)
    await create_customer(fno, "US-001")
    [request] = await receiver.wait_for(1)
    assert request.query == {"code": "secret-key"}
    payload = request.body
    user = fno.emulator.directory.get("p2c-user")
    assert user is not None
    assert payload["BusinessEventId"] == "CustomersV3Changed"
    assert payload["BusinessEventLegalEntity"] == "USMF"
    assert payload["ContextRecordSubject"] == ""
    assert isinstance(payload["ControlNumber"], int)
    assert re.fullmatch(
        r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", payload["EventId"]
    )
    assert re.fullmatch(r"/Date\(\d+\)/", payload["EventTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", payload["EventTimeIso8601"])
    assert payload["InitiatingUserAADObjectId"] == "{" + user.object_id.upper() + "}"
    assert (payload["MajorVersion"], payload["MinorVersion"]) == (1, 0)
    assert payload["ParentContextRecordSubjects"] == []
    assert payload["EntityName"] == "CustomersV3"
    assert payload["ChangeType"] == "Created"
    assert payload["DataAreaId"] == "usmf"
    assert payload["CustomerAccount"] == "US-001"
    assert payload["RecordVersion"] == fno.emulator.store.version


async def test_updates_and_deletes_in_order_with_increasing_control_numbers(
    fno: FnoHarness, receiver: Receiver
) -> None:
    await subscribe(fno, receiver.url)
    await create_customer(fno, "C")
    url = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C')"
    await fno.json("PATCH", url, json={"OrganizationName": "x"})
    await fno.json("DELETE", url)
    requests = await receiver.wait_for(3)
    assert [r.body["ChangeType"] for r in requests] == ["Created", "Updated", "Deleted"]
    numbers = [r.body["ControlNumber"] for r in requests]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3
    versions = [r.body["RecordVersion"] for r in requests]
    assert versions == sorted(versions)


async def test_legal_entity_filter(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url, legal_entity="demf")
    await create_customer(fno, "US")
    await create_customer(fno, "DE", dataAreaId="demf")
    await fno.emulator.dispatcher.wait_idle()
    assert [r.body["CustomerAccount"] for r in receiver.requests] == ["DE"]


async def test_three_retries_then_error_list_and_resend(
    fno: FnoHarness, receiver: Receiver
) -> None:
    await subscribe(fno, receiver.url)
    receiver.statuses = [500, 503, 500, 500]
    await create_customer(fno, "C")
    await receiver.wait_for(4)
    await fno.emulator.dispatcher.wait_idle()
    [entry] = fno.emulator.deliveries.entries()
    assert (entry["outcome"], entry["attempts"]) == ("failed", 4)
    _, errors = await fno.json("GET", "/data/BusinessEventsErrors")
    [error] = errors["value"]
    assert error["BusinessEventId"] == "CustomersV3Changed"
    assert error["EndpointName"] == "bridge"
    assert error["Attempts"] == 4
    status, _ = await fno.json("POST", f"/data/BusinessEventsErrors({error['Id']})/Resend")
    assert status == 204
    requests = await receiver.wait_for(5)
    assert requests[-1].body["EventId"] == requests[0].body["EventId"]
    await fno.emulator.dispatcher.wait_idle()
    _, errors = await fno.json("GET", "/data/BusinessEventsErrors")
    assert errors["value"] == []
    status, _ = await fno.json("POST", "/data/BusinessEventsErrors(999)/Resend")
    assert status == 404


async def test_retry_then_success(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url)
    receiver.statuses = [503]
    await create_customer(fno, "C")
    await receiver.wait_for(2)
    await fno.emulator.dispatcher.wait_idle()
    assert fno.emulator.deliveries.entries()[0]["attempts"] == 2


async def test_application_event_invoice_posted(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url, event="SalesInvoicePostedBusinessEvent")
    await create_customer(fno, "C")
    status, invoice = await fno.json(
        "POST",
        "/data/SalesInvoiceHeadersV2",
        json={
            "InvoiceDate": "2024-05-01T12:00:00Z",
            "InvoiceCustomerAccountNumber": "C",
            "SalesOrderNumber": "000001",
            "TotalInvoiceAmount": 99.5,
        },
    )
    assert status == 201
    [request] = await receiver.wait_for(1)
    body = request.body
    assert body["BusinessEventId"] == "SalesInvoicePostedBusinessEvent"
    assert body["InvoiceId"] == invoice["InvoiceNumber"]
    assert body["InvoiceAccount"] == "C"
    assert body["SalesOrderId"] == "000001"
    assert body["InvoiceDate"] == "/Date(1714564800000)/"
    assert body["InvoiceAmountInAccountingCurrency"] == 99.5
    assert body["LegalEntity"] == "usmf"


async def test_admin_can_raise_any_event(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url, event="SalesInvoicePostedBusinessEvent")
    response = await fno.client.post(
        "/_emulator/business-events",
        json={
            "BusinessEventId": "SalesInvoicePostedBusinessEvent",
            "LegalEntity": "usmf",
            "Fields": {"InvoiceId": "X"},
        },
    )
    assert response.status == 201
    [request] = await receiver.wait_for(1)
    assert request.body["InvoiceId"] == "X"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"EndpointName": "e", "EndpointType": "ServiceBusQueue", "Url": "http://127.0.0.1/x"},
            "Https",
        ),
        ({"EndpointName": "e", "EndpointType": "Https", "Url": "nope"}, "absolute"),
        (
            {"EndpointName": "", "EndpointType": "Https", "Url": "http://127.0.0.1/x"},
            "EndpointName",
        ),
    ],
)
async def test_endpoint_validation(fno: FnoHarness, body: dict[str, str], fragment: str) -> None:
    status, error = await fno.json("POST", "/data/BusinessEventsEndpoints", json=body)
    assert status == 400
    assert fragment in error["error"]["innererror"]["message"]


async def test_registration_lifecycle(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url)
    _, catalog = await fno.json("GET", "/data/BusinessEventsCatalog")
    assert {
        "CustomersV3Changed",
        "CDSSalesOrderHeadersChanged",
        "SalesInvoicePostedBusinessEvent",
    } <= {row["BusinessEventId"] for row in catalog["value"]}
    status, _ = await fno.json(
        "POST",
        "/data/BusinessEventsActivations",
        json={"BusinessEventId": "Nope", "EndpointName": "bridge", "LegalEntity": ""},
    )
    assert status == 400
    status, _ = await fno.json("DELETE", "/data/BusinessEventsEndpoints('bridge')")
    assert status == 400
    key = "BusinessEventId='CustomersV3Changed',EndpointName='bridge',LegalEntity=''"
    assert (await fno.json("DELETE", f"/data/BusinessEventsActivations({key})"))[0] == 204
    assert (await fno.json("DELETE", "/data/BusinessEventsEndpoints(EndpointName='bridge')"))[
        0
    ] == 204
    _, endpoints = await fno.json("GET", "/data/BusinessEventsEndpoints")
    assert endpoints["value"] == []
    await create_customer(fno, "Quiet")
    await fno.emulator.dispatcher.wait_idle()
    assert receiver.requests == []


async def test_data_change_events_can_be_switched_off(receiver: Receiver) -> None:
    emulator = FnoEmulator(
        EmulatorSettings(fno_data_change_business_events=False, fno_event_retry_interval_seconds=0)
    )
    async with TestClient(TestServer(emulator.app)) as client:
        fno = FnoHarness(
            client,
            {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"},
            {"Authorization": f"Bearer {await token_for(client, USER)}"},
            emulator=emulator,
        )
        _, catalog = await fno.json("GET", "/data/BusinessEventsCatalog")
        assert [row["BusinessEventId"] for row in catalog["value"]] == [
            "SalesInvoicePostedBusinessEvent"
        ]
        status, body = await fno.json(
            "POST",
            "/data/BusinessEventsEndpoints",
            json={"EndpointName": "bridge", "EndpointType": "Https", "Url": receiver.url},
        )
        assert status == 201, body
        status, body = await fno.json(
            "POST",
            "/data/BusinessEventsActivations",
            json={
                "BusinessEventId": "CustomersV3Changed",
                "EndpointName": "bridge",
                "LegalEntity": "",
            },
        )
        assert status == 400
        assert "does not exist" in body["error"]["innererror"]["message"]
        status, body = await fno.json(
            "POST",
            "/data/BusinessEventsActivations",
            json={
                "BusinessEventId": "SalesInvoicePostedBusinessEvent",
                "EndpointName": "bridge",
                "LegalEntity": "",
            },
        )
        assert status == 201, body
        await create_customer(fno, "US-001")
        status, _ = await fno.json(
            "POST",
            "/data/SalesInvoiceHeadersV2",
            json={"InvoiceCustomerAccountNumber": "US-001", "InvoiceDate": "2026-01-05T12:00:00Z"},
        )
        assert status == 201
        await emulator.dispatcher.wait_idle()
        assert [r.body["BusinessEventId"] for r in receiver.requests] == [
            "SalesInvoicePostedBusinessEvent"
        ]
