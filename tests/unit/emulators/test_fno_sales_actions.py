"""F&O sales order processing actions: Confirm, CalculateTotals, PostPackingSlip, PostInvoice
and the unbound CalculateSalesTotals job."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.emulators.p2c_support import (
    ACTIONS,
    act,
    customer,
    fno_create,
    fno_get,
    fno_order,
    order_url,
    released_product,
    subscribe_to_fno,
)
from tests.unit.emulators.support import FnoHarness, LinkedHarness, Receiver, register_step

ORDER_HEADERS = "mserp_salesorderheadercdsentity"
ORDER_LINES = "mserp_salesorderlinecdsentity"

SPEAKERS = {
    "ProductNumber": "SPK",
    "OrderedSalesQuantity": 3,
    "SalesPrice": 220.5,
    "LineDiscountAmount": 3.33,
    "TotalChargesAmount": -0.01,
}


async def order(fno: FnoHarness, lines: list[dict[str, Any]] | None = None, **body: Any) -> str:
    await customer(fno, "C1")
    await released_product(fno, "SPK")
    return await fno_order(fno, "C1", [SPEAKERS] if lines is None else lines, **body)


async def drive(fno: FnoHarness, number: str, state: str) -> None:
    steps = {
        "Active": [],
        "Confirmed": ["Confirm"],
        "Delivered": ["Confirm", "PostPackingSlip"],
        "Invoiced": ["Confirm", "PostInvoice"],
    }
    if state == "Picked":
        await act(fno, number, "Confirm")
        status, _ = await fno.json(
            "PATCH", order_url(number), json={"SalesOrderProcessingStatus": "Picked"}
        )
        assert status == 204
        return
    for action in steps[state]:
        assert (await act(fno, number, action))[0] == 200


@pytest.mark.parametrize(
    ("state", "action", "allowed"),
    [
        ("Active", "Confirm", True),
        ("Active", "PostPackingSlip", False),
        ("Active", "PostInvoice", False),
        ("Active", "CalculateTotals", True),
        ("Confirmed", "Confirm", False),
        ("Confirmed", "PostPackingSlip", True),
        ("Confirmed", "PostInvoice", True),
        ("Confirmed", "CalculateTotals", True),
        ("Picked", "PostPackingSlip", True),
        ("Picked", "PostInvoice", False),
        ("Delivered", "Confirm", False),
        ("Delivered", "PostPackingSlip", False),
        ("Delivered", "PostInvoice", True),
        ("Invoiced", "Confirm", False),
        ("Invoiced", "PostPackingSlip", False),
        ("Invoiced", "PostInvoice", False),
        ("Invoiced", "CalculateTotals", True),
    ],
)
async def test_actions_by_processing_status(
    fno: FnoHarness, state: str, action: str, allowed: bool
) -> None:
    number = await order(fno)
    await drive(fno, number, state)
    before = fno.emulator.store.version
    status, body = await act(fno, number, action)
    if allowed:
        assert status == 200, body
        assert body["SalesOrderNumber"] == number
        assert body["@odata.context"].endswith("$metadata#CDSSalesOrderHeaders/$entity")
        return
    assert status == 400
    inner = body["error"]["innererror"]
    assert body["error"]["message"] == "An error has occurred."
    assert inner["type"] == "Microsoft.Dynamics.Ax.Xpp.ErrorException"
    assert inner["message"] == (
        f"Sales order {number} cannot be processed by {action}: its processing status is "
        f"{state}; {action} needs "
        + {"Confirm": "Active", "PostPackingSlip": "Confirmed or Picked"}.get(
            action, "Confirmed or Delivered"
        )
        + "."
    )
    assert fno.emulator.store.version == before, "a refused action writes nothing"


async def test_orders_without_lines_cannot_be_processed(fno: FnoHarness) -> None:
    number = await order(fno, lines=[])
    status, body = await act(fno, number, "Confirm")
    assert status == 400
    assert body["error"]["innererror"]["message"] == (
        f"Sales order {number} has no lines to process by Confirm."
    )
    assert (await act(fno, number, "CalculateTotals"))[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        (
            "POST",
            "/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='NOPE')/"
            f"{ACTIONS}.Confirm",
            {},
            404,
        ),
        (
            "GET",
            "/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{n}')/"
            f"{ACTIONS}.Confirm",
            None,
            405,
        ),
        (
            "POST",
            "/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{n}')/"
            f"{ACTIONS}.Ship",
            {},
            404,
        ),
        (
            "POST",
            "/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{n}')/"
            f"{ACTIONS}.Confirm",
            {"Force": True},
            400,
        ),
        (
            "POST",
            f"/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C1')/{ACTIONS}.Confirm",
            {},
            404,
        ),
        ("POST", f"/data/{ACTIONS}.Nothing", {}, 404),
        ("GET", f"/data/{ACTIONS}.CalculateSalesTotals", None, 405),
    ],
)
async def test_action_addressing_errors(
    fno: FnoHarness, method: str, path: str, body: Any, status: int
) -> None:
    number = await order(fno)
    answer, error = await fno.json(method, path.replace("{n}", number), json=body)
    assert answer == status, error
    assert error["error"]["message"] == "An error has occurred."


async def test_bound_actions_respect_companies(fno: FnoHarness) -> None:
    await customer(fno, "C1", company="usrt")
    await released_product(fno, "SPK", company="usrt")
    number = await fno_order(fno, "C1", [SPEAKERS], dataAreaId="usrt")
    path = f"{order_url(number, 'usrt')}/{ACTIONS}.Confirm"
    assert (await fno.json("POST", path))[0] == 404
    status, body = await fno.json("POST", f"{path}?cross-company=true")
    assert (status, body["SalesOrderProcessingStatus"]) == (200, "Confirmed")


async def test_an_empty_body_is_accepted(fno: FnoHarness) -> None:
    number = await order(fno)
    status, _ = await fno.json("POST", f"{order_url(number)}/{ACTIONS}.Confirm", data=b"")
    assert status == 200


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, "today"), ("2027-03-01T12:00:00Z", "2027-03-01T12:00:00Z")],
)
async def test_confirm(fno: FnoHarness, requested: str | None, expected: str) -> None:
    body = {} if requested is None else {"RequestedShippingDate": requested}
    number = await order(fno, **body)
    status, header = await act(fno, number, "Confirm")
    assert status == 200
    today = fno.emulator.store.now().strftime("%Y-%m-%dT12:00:00Z")
    wanted = today if expected == "today" else expected
    assert header["SalesOrderProcessingStatus"] == "Confirmed"
    assert (header["ConfirmedShippingDate"], header["ConfirmedReceiptDate"]) == (wanted, wanted)
    line = (await fno.json("GET", "/data/CDSSalesOrderLines"))[1]["value"][0]
    assert (line["SalesOrderProcessingStatus"], line["ConfirmedShippingDate"]) == (
        "Confirmed",
        wanted,
    )


@pytest.mark.parametrize(
    ("lines", "charges", "header", "line_totals"),
    [
        (
            [SPEAKERS],
            0,
            {
                "OrderTotalAmount": 703.62,
                "OrderTotalTaxAmount": 52.12,
                "OrderTotalDiscountAmount": 9.99,
                "OrderTotalChargesAmount": 0.0,
                "OrderHeaderTaxAmount": 0.0,
            },
            [(651.5, 52.12, 9.99)],
        ),
        (
            [SPEAKERS, {"ProductNumber": "SPK", "OrderedSalesQuantity": 2, "SalesPrice": 10}],
            20,
            {
                "OrderTotalAmount": 746.82,
                "OrderTotalTaxAmount": 55.32,
                "OrderTotalDiscountAmount": 9.99,
                "OrderTotalChargesAmount": 20.0,
                "OrderHeaderTaxAmount": 1.6,
            },
            [(651.5, 52.12, 9.99), (20.0, 1.6, 0.0)],
        ),
        (
            [{"ProductNumber": "SPK", "OrderedSalesQuantity": 1, "SalesPrice": 0.06}],
            0.06,
            {
                "OrderTotalAmount": 0.12,
                "OrderTotalTaxAmount": 0.0,
                "OrderTotalDiscountAmount": 0.0,
                "OrderTotalChargesAmount": 0.06,
                "OrderHeaderTaxAmount": 0.0,
            },
            [(0.06, 0.0, 0.0)],
        ),
    ],
)
async def test_calculate_totals(
    fno: FnoHarness,
    lines: list[dict[str, Any]],
    charges: float,
    header: dict[str, float],
    line_totals: list[tuple[float, float, float]],
) -> None:
    number = await order(fno, lines=lines, OrderTotalChargesAmount=charges)
    status, calculated = await act(fno, number, "CalculateTotals")
    assert status == 200
    assert {name: calculated[name] for name in header} == header
    assert calculated["TotalDiscountAmount"] == 0.0, "the header's own end discount"
    assert calculated["AreTotalsUpdated"] == "Yes"
    rows = (await fno.json("GET", "/data/CDSSalesOrderLines"))[1]["value"]
    assert [
        (r["LineAmount"], r["TotalTaxAmount"], r["TotalDiscountAmount"]) for r in rows
    ] == line_totals
    assert {(r["AreTotalsCalculated"], r["AreSalesOrderTotalsUpdated"]) for r in rows} == {
        ("Yes", "Yes")
    }


async def test_calculate_totals_twice_writes_once(fno: FnoHarness) -> None:
    number = await order(fno)
    await act(fno, number, "CalculateTotals")
    version = fno.emulator.store.version
    assert (await act(fno, number, "CalculateTotals"))[0] == 200
    assert fno.emulator.store.version == version


async def test_the_batch_job_calculates_stale_orders(fno: FnoHarness) -> None:
    first, second = await order(fno), await fno_order(fno, "C1", [SPEAKERS])
    await customer(fno, "C1", company="demf")
    await released_product(fno, "SPK", company="demf")
    elsewhere = await fno_order(fno, "C1", [SPEAKERS], dataAreaId="demf")
    await act(fno, first, "CalculateTotals")
    job = f"/data/{ACTIONS}.CalculateSalesTotals"
    status, body = await fno.json("POST", job)
    assert (status, body["value"]) == (200, 1)
    assert body["@odata.context"].endswith("$metadata#Edm.Int32")
    assert (await fno_get(fno, order_url(second)))["AreTotalsUpdated"] == "Yes"
    assert (await fno_get(fno, order_url(elsewhere, "demf")))["AreTotalsUpdated"] == "No"
    status, body = await fno.json("POST", f"{job}?cross-company=true")
    assert (status, body["value"]) == (200, 1)
    assert (await fno_get(fno, order_url(elsewhere, "demf")))["OrderTotalAmount"] == 703.62
    assert (await fno.json("POST", f"{job}?cross-company=true"))[1]["value"] == 0


async def test_post_packing_slip(fno: FnoHarness) -> None:
    number = await order(fno)
    await act(fno, number, "Confirm")
    status, header = await act(fno, number, "PostPackingSlip")
    assert status == 200
    assert (header["SalesOrderProcessingStatus"], header["SalesOrderStatus"]) == (
        "Delivered",
        "Delivered",
    )
    line = (await fno.json("GET", "/data/CDSSalesOrderLines"))[1]["value"][0]
    assert (line["SalesOrderLineStatus"], line["SalesOrderProcessingStatus"]) == (
        "Delivered",
        "Delivered",
    )


INVOICE_POSTED = "SalesInvoicePostedBusinessEvent"


async def test_post_invoice(fno: FnoHarness, receiver: Receiver) -> None:
    second_line = {
        "ProductNumber": "SPK",
        "OrderedSalesQuantity": 2,
        "SalesPrice": 10,
        "LineDescription": "Cables",
    }
    number = await order(
        fno,
        lines=[SPEAKERS, second_line],
        OrderTotalChargesAmount=20,
        CustomersOrderReference="PO-77",
    )
    await act(fno, number, "Confirm")
    await subscribe_to_fno(fno, receiver.url, INVOICE_POSTED)
    status, header = await act(fno, number, "PostInvoice")
    assert status == 200
    assert (header["SalesOrderProcessingStatus"], header["SalesOrderStatus"]) == (
        "Invoiced",
        "Invoiced",
    )
    [invoice] = (await fno.json("GET", "/data/SalesInvoiceHeadersV2"))[1]["value"]
    today = fno.emulator.store.now().strftime("%Y-%m-%dT12:00:00Z")
    assert {
        k: invoice[k]
        for k in (
            "InvoiceNumber",
            "LedgerVoucher",
            "InvoiceDate",
            "SalesOrderNumber",
            "InvoiceCustomerAccountNumber",
            "CurrencyCode",
            "TotalInvoiceAmount",
            "TotalTaxAmount",
            "TotalDiscountAmount",
            "TotalChargeAmount",
            "InvoiceHeaderTaxAmount",
            "CustomersOrderReference",
        )
    } == {
        "InvoiceNumber": "CIV-000001",
        "LedgerVoucher": "ARI-000001",
        "InvoiceDate": today,
        "SalesOrderNumber": number,
        "InvoiceCustomerAccountNumber": "C1",
        "CurrencyCode": "USD",
        "TotalInvoiceAmount": 746.82,
        "TotalTaxAmount": 55.32,
        "TotalDiscountAmount": 0.0,
        "TotalChargeAmount": 20.0,
        "InvoiceHeaderTaxAmount": 1.6,
        "CustomersOrderReference": "PO-77",
    }
    lines = (await fno.json("GET", "/data/SalesInvoiceV2Lines"))[1]["value"]
    fields = (
        "InvoiceNumber",
        "LineCreationSequenceNumber",
        "ProductNumber",
        "ProductName",
        "InvoicedQuantity",
        "SalesPrice",
        "SalesUnitSymbol",
        "LineAmount",
        "LineTotalDiscountAmount",
        "LineTotalTaxAmount",
        "CurrencyCode",
        "ProductDescription",
    )
    assert [tuple(row[f] for f in fields) for row in lines] == [
        ("CIV-000001", 1, "SPK", "Product SPK", 3.0, 220.5, "ea", 651.5, 10.0, 52.12, "USD", ""),
        ("CIV-000001", 2, "SPK", "Product SPK", 2.0, 10.0, "ea", 20.0, 0.0, 1.6, "USD", "Cables"),
    ]
    order_lines = (await fno.json("GET", "/data/CDSSalesOrderLines"))[1]["value"]
    assert {row["SalesOrderLineStatus"] for row in order_lines} == {"Invoiced"}
    [request] = await receiver.wait_for(1)
    posted = request.body
    assert (
        posted["BusinessEventId"],
        posted["InvoiceId"],
        posted["SalesOrderId"],
        posted["InvoiceAmountInAccountingCurrency"],
    ) == (INVOICE_POSTED, "CIV-000001", number, 746.82)
    user = fno.emulator.directory.get("p2c-user")
    assert user is not None
    assert posted["InitiatingUserAADObjectId"] == "{" + user.object_id.upper() + "}"


async def test_invoice_numbers_per_company(fno: FnoHarness) -> None:
    numbers = [await order(fno)]
    numbers.append(await fno_order(fno, "C1", [SPEAKERS]))
    await customer(fno, "C1", company="demf")
    await released_product(fno, "SPK", company="demf")
    elsewhere = await fno_order(fno, "C1", [SPEAKERS], dataAreaId="demf")
    for number in numbers:
        await act(fno, number, "Confirm")
        await act(fno, number, "PostInvoice")
    await act(fno, elsewhere, "Confirm", company="demf")
    await act(fno, elsewhere, "PostInvoice", company="demf")
    status, body = await fno.json(
        "GET", "/data/SalesInvoiceHeadersV2?cross-company=true&$select=dataAreaId,InvoiceNumber"
    )
    assert status == 200
    assert sorted((r["dataAreaId"], r["InvoiceNumber"]) for r in body["value"]) == [
        ("demf", "CIV-000001"),
        ("usmf", "CIV-000001"),
        ("usmf", "CIV-000002"),
    ]


async def test_a_failing_posting_leaves_nothing_behind(fno: FnoHarness, receiver: Receiver) -> None:
    number = await order(fno)
    await act(fno, number, "Confirm")
    status, _ = await fno.json(
        "PATCH",
        order_url(number),
        json={"InvoiceCustomerAccountNumber": "C1"},
    )
    assert status == 204
    status, _ = await fno.json(
        "DELETE", "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C1')"
    )
    assert status == 204
    await subscribe_to_fno(fno, receiver.url, INVOICE_POSTED)
    version = fno.emulator.store.version
    status, body = await act(fno, number, "PostInvoice")
    assert status == 400
    assert "not found in the relating table 'CustomersV3'" in body["error"]["innererror"]["message"]
    assert fno.emulator.store.version == version
    assert (await fno.json("GET", "/data/SalesInvoiceHeadersV2"))[1]["value"] == []
    assert (await fno_get(fno, order_url(number)))["SalesOrderProcessingStatus"] == "Confirmed"
    await fno.emulator.dispatcher.wait_idle()
    assert receiver.requests == []


async def test_data_events_carry_the_writer(linked: LinkedHarness, receiver: Receiver) -> None:
    """An action's writes are made by its caller: the data events name who called."""
    fno = linked.fno
    number = await order(fno)
    await act(fno, number, "CalculateTotals")
    for message, entity in (
        ("OnExternalCreated", ORDER_LINES),
        ("OnExternalUpdated", ORDER_HEADERS),
        ("OnExternalUpdated", ORDER_LINES),
    ):
        status, step = await register_step(linked.sales, receiver.url, message, entity)
        assert status == 201, step
    await fno_create(
        fno,
        "CDSSalesOrderLines",
        {"SalesOrderNumber": number, "ProductNumber": "SPK"},
        as_user=False,
    )
    await act(fno, number, "Confirm", as_user=True)
    requests = await receiver.wait_for(5)
    bridge = linked.sales.emulator.directory.get("bridge-local")
    user = linked.sales.emulator.directory.get("p2c-user")
    assert bridge is not None and user is not None
    seen = sorted(
        (
            r.body["MessageName"],
            r.body["PrimaryEntityName"],
            r.body["InitiatingUserAzureActiveDirectoryObjectId"],
        )
        for r in requests
    )
    # webhooks run asynchronously in no guaranteed order (spec A.9): compare as a multiset
    assert seen == sorted(
        [
            ("OnExternalCreated", ORDER_LINES, bridge.object_id),
            ("OnExternalUpdated", ORDER_HEADERS, bridge.object_id),
            ("OnExternalUpdated", ORDER_HEADERS, user.object_id),
            ("OnExternalUpdated", ORDER_LINES, user.object_id),
            ("OnExternalUpdated", ORDER_LINES, user.object_id),
        ]
    )


async def test_metadata_lists_the_actions(fno: FnoHarness) -> None:
    response = await fno.client.get("/data/$metadata", headers=fno.bridge)
    text = await response.text()
    for name in ("Confirm", "CalculateTotals", "PostPackingSlip", "PostInvoice"):
        assert f'<Action Name="{name}" IsBound="true">' in text
    assert '<ActionImport Name="CalculateSalesTotals"' in text
