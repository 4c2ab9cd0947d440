"""F&O business events: registration, payloads, retries, errors and resend (B.4).

The machinery is exercised with the documented application event
``SalesInvoicePostedBusinessEvent``; a real F&O raises no business event for an ordinary data
change (those arrive as data events), and neither does the emulator."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.emulators.support import FnoHarness, Receiver

INVOICE_POSTED = "SalesInvoicePostedBusinessEvent"


async def subscribe(
    fno: FnoHarness,
    url: str,
    event: str = INVOICE_POSTED,
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


async def post_invoice(
    fno: FnoHarness, customer: str, company: str = "usmf", **fields: Any
) -> dict[str, Any]:
    """Create a customer and post an invoice to it; returns the invoice header."""
    await create_customer(fno, customer, dataAreaId=company)
    status, invoice = await fno.json(
        "POST",
        "/data/SalesInvoiceHeadersV2",
        json={
            "dataAreaId": company,
            "InvoiceCustomerAccountNumber": customer,
            "InvoiceDate": "2024-05-01T12:00:00Z",
            **fields,
        },
        as_user=True,
    )
    assert status == 201, invoice
    return invoice


async def test_invoice_posted_payload(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url)
    invoice = await post_invoice(fno, "US-001", SalesOrderNumber="000001", TotalInvoiceAmount=99.5)
    [request] = await receiver.wait_for(1)
    assert request.query == {"code": "secret-key"}
    payload = request.body
    user = fno.emulator.directory.get("p2c-user")
    assert user is not None
    assert payload["BusinessEventId"] == INVOICE_POSTED
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
    assert payload["InvoiceId"] == invoice["InvoiceNumber"]
    assert payload["InvoiceAccount"] == "US-001"
    assert payload["SalesOrderId"] == "000001"
    assert payload["InvoiceDate"] == "/Date(1714564800000)/"
    assert payload["InvoiceAmountInAccountingCurrency"] == 99.5
    assert payload["LegalEntity"] == "usmf"


async def test_events_in_order_with_increasing_control_numbers(
    fno: FnoHarness, receiver: Receiver
) -> None:
    await subscribe(fno, receiver.url)
    invoices = [await post_invoice(fno, f"C{n}") for n in range(3)]
    requests = await receiver.wait_for(3)
    assert [r.body["InvoiceId"] for r in requests] == [i["InvoiceNumber"] for i in invoices]
    numbers = [r.body["ControlNumber"] for r in requests]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3


async def test_legal_entity_filter(fno: FnoHarness, receiver: Receiver) -> None:
    await subscribe(fno, receiver.url, legal_entity="demf")
    await post_invoice(fno, "US")
    await post_invoice(fno, "DE", company="demf")
    await fno.emulator.dispatcher.wait_idle()
    assert [r.body["InvoiceAccount"] for r in receiver.requests] == ["DE"]


async def test_three_retries_then_error_list_and_resend(
    fno: FnoHarness, receiver: Receiver
) -> None:
    await subscribe(fno, receiver.url)
    receiver.statuses = [500, 503, 500, 500]
    await post_invoice(fno, "C")
    await receiver.wait_for(4)
    await fno.emulator.dispatcher.wait_idle()
    [entry] = fno.emulator.deliveries.entries()
    assert (entry["outcome"], entry["attempts"]) == ("failed", 4)
    _, errors = await fno.json("GET", "/data/BusinessEventsErrors")
    [error] = errors["value"]
    assert error["BusinessEventId"] == INVOICE_POSTED
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
    await post_invoice(fno, "C")
    await receiver.wait_for(2)
    await fno.emulator.dispatcher.wait_idle()
    assert fno.emulator.deliveries.entries()[0]["attempts"] == 2


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
    assert [row["BusinessEventId"] for row in catalog["value"]] == [INVOICE_POSTED]
    for unknown in ("Nope", "CustomersV3Changed"):
        status, body = await fno.json(
            "POST",
            "/data/BusinessEventsActivations",
            json={"BusinessEventId": unknown, "EndpointName": "bridge", "LegalEntity": ""},
        )
        assert status == 400
        assert "does not exist" in body["error"]["innererror"]["message"]
    status, _ = await fno.json("DELETE", "/data/BusinessEventsEndpoints('bridge')")
    assert status == 400
    key = f"BusinessEventId='{INVOICE_POSTED}',EndpointName='bridge',LegalEntity=''"
    assert (await fno.json("DELETE", f"/data/BusinessEventsActivations({key})"))[0] == 204
    assert (await fno.json("DELETE", "/data/BusinessEventsEndpoints(EndpointName='bridge')"))[
        0
    ] == 204
    _, endpoints = await fno.json("GET", "/data/BusinessEventsEndpoints")
    assert endpoints["value"] == []
    await post_invoice(fno, "Quiet")
    await fno.emulator.dispatcher.wait_idle()
    assert receiver.requests == []


async def test_ordinary_data_changes_raise_no_business_event(
    fno: FnoHarness, receiver: Receiver
) -> None:
    """Spec B.4: record changes reach subscribers as data events, not business events."""
    await subscribe(fno, receiver.url)
    await create_customer(fno, "C")
    url = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C')"
    assert (await fno.json("PATCH", url, json={"OrganizationName": "x"}))[0] == 204
    assert (await fno.json("DELETE", url))[0] == 204
    invoice = await post_invoice(fno, "D")
    await fno.emulator.dispatcher.wait_idle()
    assert [r.body["InvoiceId"] for r in receiver.requests] == [invoice["InvoiceNumber"]]
