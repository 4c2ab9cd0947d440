"""F&O sales order rules on write: defaults, line numbers, line amounts, computed customer
flags, stale totals and released-product currencies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.emulators.p2c_support import (
    act,
    customer,
    fno_create,
    fno_get,
    fno_order,
    order_url,
    released_product,
)
from tests.unit.emulators.support import FnoHarness

FLAGS = ("OrderingCustomerIsExternallyMaintained", "InvoiceCustomerIsExternallyMaintained")


def line_url(number: str, sequence: int) -> str:
    return (
        f"/data/CDSSalesOrderLines(dataAreaId='usmf',SalesOrderNumber='{number}',"
        f"LineCreationSequenceNumber={sequence})"
    )


async def test_new_order_defaults(fno: FnoHarness) -> None:
    await customer(fno, "C1")
    created = await fno_create(fno, "CDSSalesOrderHeaders", {"OrderingCustomerAccountNumber": "C1"})
    assert re.fullmatch(r"\d{6}", created["SalesOrderNumber"])
    assert created["SalesOrderProcessingStatus"] == "Active"
    assert created["SalesOrderStatus"] == "Backorder"
    assert created["AreTotalsUpdated"] == "No"
    assert created["OrderCreationDateTime"] != "1900-01-01T12:00:00Z"
    assert created["InvoiceCustomerAccountNumber"] == "C1"


async def test_given_status_is_kept(fno: FnoHarness) -> None:
    await customer(fno, "C1")
    body = {"OrderingCustomerAccountNumber": "C1", "SalesOrderStatus": "None"}
    assert (await fno_create(fno, "CDSSalesOrderHeaders", body))["SalesOrderStatus"] == "None"


async def test_new_line_defaults_from_header_and_product(fno: FnoHarness) -> None:
    await customer(fno, "C1")
    await released_product(fno, "SPK", price=220.5)
    number = await fno_order(fno, "C1", [], CurrencyCode="EUR")
    created = await fno_create(
        fno, "CDSSalesOrderLines", {"SalesOrderNumber": number, "ProductNumber": "SPK"}
    )
    assert (created["ProductName"], created["SalesUnitSymbol"]) == ("Product SPK", "ea")
    assert (created["SalesPrice"], created["CurrencyCode"]) == (220.5, "EUR")
    assert created["SalesOrderLineStatus"] == "Backorder"
    assert created["SalesOrderProcessingStatus"] == "Active"
    given = await fno_create(
        fno,
        "CDSSalesOrderLines",
        {"SalesOrderNumber": number, "ProductNumber": "SPK", "SalesPrice": 0, "ProductName": "X"},
    )
    assert (given["SalesPrice"], given["ProductName"]) == (0.0, "X")


@pytest.mark.parametrize(
    ("entity_set", "parent", "number_field"),
    [
        ("CDSSalesOrderLines", "CDSSalesOrderHeaders", "SalesOrderNumber"),
        ("CDSSalesQuotationLines", "CDSSalesQuotationHeaders", "SalesQuotationNumber"),
    ],
)
async def test_line_creation_sequence_numbers(
    fno: FnoHarness, entity_set: str, parent: str, number_field: str
) -> None:
    await customer(fno, "C1")
    await released_product(fno, "SPK")
    account = (
        "OrderingCustomerAccountNumber"
        if parent == "CDSSalesOrderHeaders"
        else "RequestingCustomerAccountNumber"
    )
    first = (await fno_create(fno, parent, {account: "C1"}))[number_field]
    second = (await fno_create(fno, parent, {account: "C1"}))[number_field]

    async def add(document: str, **body: Any) -> int:
        values = {number_field: document, "ProductNumber": "SPK", **body}
        return int((await fno_create(fno, entity_set, values))["LineCreationSequenceNumber"])

    assert [await add(first), await add(first)] == [1, 2]
    assert await add(first, LineCreationSequenceNumber=3) == 3
    assert await add(first) == 4, "a number taken explicitly is skipped"
    assert await add(second) == 1


@pytest.mark.parametrize(
    ("line", "amount"),
    [
        ({"OrderedSalesQuantity": 3, "SalesPrice": 220.5}, 661.5),
        (
            {
                "OrderedSalesQuantity": 3,
                "SalesPrice": 220.5,
                "LineDiscountAmount": 3.33,
                "TotalChargesAmount": -0.01,
            },
            651.5,
        ),
        ({"OrderedSalesQuantity": 2, "SalesPrice": 10, "TotalChargesAmount": 5}, 25.0),
        ({"OrderedSalesQuantity": 0.333, "SalesPrice": 1}, 0.33),
    ],
)
async def test_line_amount_on_write(fno: FnoHarness, line: dict[str, Any], amount: float) -> None:
    await customer(fno, "C1")
    await released_product(fno, "SPK")
    number = await fno_order(fno, "C1", [{"ProductNumber": "SPK", **line}])
    assert (await fno_get(fno, line_url(number, 1)))["LineAmount"] == amount


@pytest.mark.parametrize(
    ("ordering", "invoice", "expected"),
    [
        ("Yes", "Yes", ("Yes", "Yes")),
        ("Yes", "No", ("Yes", "No")),
        ("No", "Yes", ("No", "Yes")),
        ("No", None, ("No", "No")),
    ],
)
async def test_customer_flags_are_computed(
    fno: FnoHarness, ordering: str, invoice: str | None, expected: tuple[str, str]
) -> None:
    await customer(fno, "ORD", external=ordering)
    if invoice is not None:
        await customer(fno, "INV", external=invoice)
    await released_product(fno, "SPK")
    body = {"InvoiceCustomerAccountNumber": "INV"} if invoice is not None else {}
    number = await fno_order(fno, "ORD", [{"ProductNumber": "SPK"}], **body)
    header = await fno_get(fno, order_url(number))
    line = await fno_get(fno, line_url(number, 1))
    assert (header[FLAGS[0]], header[FLAGS[1]]) == expected
    assert (line[FLAGS[0]], line[FLAGS[1]]) == expected


async def test_customer_flags_are_refreshed_on_read_and_filterable(fno: FnoHarness) -> None:
    await customer(fno, "C1", external="No")
    await released_product(fno, "SPK")
    number = await fno_order(fno, "C1", [{"ProductNumber": "SPK"}])
    query = (
        "/data/CDSSalesOrderHeaders?$filter=OrderingCustomerIsExternallyMaintained eq "
        "Microsoft.Dynamics.DataEntities.NoYes'Yes'&$select=SalesOrderNumber"
    )
    assert (await fno.json("GET", query))[1]["value"] == []
    status, _ = await fno.json(
        "PATCH",
        "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C1')",
        json={"IsExternallyMaintained": "Yes"},
    )
    assert status == 204
    assert (await fno_get(fno, order_url(number)))[FLAGS[0]] == "Yes"
    assert (await fno_get(fno, line_url(number, 1)))[FLAGS[1]] == "Yes"
    found = (await fno.json("GET", query))[1]["value"]
    assert [row["SalesOrderNumber"] for row in found] == [number]


async def test_computed_fields_are_read_only(fno: FnoHarness) -> None:
    await customer(fno, "C1", external="No")
    body = {
        "OrderingCustomerAccountNumber": "C1",
        "OrderingCustomerIsExternallyMaintained": "Yes",
        "AreTotalsUpdated": "Yes",
    }
    created = await fno_create(fno, "CDSSalesOrderHeaders", body)
    assert (created[FLAGS[0]], created["AreTotalsUpdated"]) == ("No", "No")


async def test_company_of_the_customer_counts(fno: FnoHarness) -> None:
    await customer(fno, "C1", external="Yes", company="usrt")
    await customer(fno, "C1", external="No", company="usmf")
    number = await fno_order(fno, "C1", [])
    assert (await fno_get(fno, order_url(number)))[FLAGS[0]] == "No"


@pytest.mark.parametrize(
    "change",
    [
        ("PATCH", "header", {"SalesOrderName": "renamed"}),
        ("PATCH", "line", {"OrderedSalesQuantity": 5}),
        ("POST", "line", {"ProductNumber": "SPK"}),
        ("DELETE", "line", None),
    ],
)
@pytest.mark.parametrize("as_user", [True, False])
async def test_totals_go_stale_after_any_change(
    fno: FnoHarness, change: tuple[str, str, dict[str, Any] | None], as_user: bool
) -> None:
    await customer(fno, "C1")
    await released_product(fno, "SPK")
    number = await fno_order(fno, "C1", [{"ProductNumber": "SPK", "OrderedSalesQuantity": 1}])
    assert (await act(fno, number, "CalculateTotals"))[0] == 200
    header = await fno_get(fno, order_url(number))
    assert (
        header["AreTotalsUpdated"],
        (await fno_get(fno, line_url(number, 1)))["AreTotalsCalculated"],
    ) == ("Yes", "Yes")
    method, target, body = change
    if method == "POST":
        url = "/data/CDSSalesOrderLines"
        body = {"SalesOrderNumber": number, **(body or {})}
    else:
        url = order_url(number) if target == "header" else line_url(number, 1)
    status, _ = await fno.json(method, url, json=body, as_user=as_user)
    assert status in (201, 204)
    assert (await fno_get(fno, order_url(number)))["AreTotalsUpdated"] == "No"
    if method == "PATCH" and target == "line":
        line = await fno_get(fno, line_url(number, 1))
        assert (line["AreTotalsCalculated"], line["AreSalesOrderTotalsUpdated"]) == ("No", "No")


async def test_totals_stay_stale_without_extra_header_writes(fno: FnoHarness) -> None:
    await customer(fno, "C1")
    await released_product(fno, "SPK")
    number = await fno_order(fno, "C1", [{"ProductNumber": "SPK"}], as_user=False)
    await fno_create(
        fno,
        "CDSSalesOrderLines",
        {"SalesOrderNumber": number, "ProductNumber": "SPK"},
        as_user=False,
    )
    stats = fno.emulator.store.stats()["entities"]["CDSSalesOrderHeaders"]["records"]
    [record] = stats.values()
    assert record["by_principal"]["bridge-local"] == {"creates": 1, "updates": 0, "deletes": 0}


@pytest.mark.parametrize(
    ("company", "given", "expected"),
    [("usmf", None, "USD"), ("usrt", None, "USD"), ("demf", None, "EUR"), ("demf", "USD", "USD")],
)
async def test_released_products_get_the_accounting_currency(
    fno: FnoHarness, company: str, given: str | None, expected: str
) -> None:
    body: dict[str, Any] = {"dataAreaId": company, "ProductNumber": "P1"}
    if given is not None:
        body["CurrencyCode"] = given
    assert (await fno_create(fno, "CDSReleasedDistinctProducts", body))["CurrencyCode"] == expected
