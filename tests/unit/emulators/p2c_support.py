"""Helpers of the prospect-to-cash behaviour tests: records through each emulator's API and
catch-all webhook / business-event subscriptions."""

from __future__ import annotations

from typing import Any

from tests.unit.emulators.support import API, FnoHarness, SalesHarness

REPRESENTATION = {"Prefer": "return=representation"}
DRAFT, ACTIVE, CONFIRMED, INVOICED = 647390011, 647390000, 647390001, 647390003
ACTIONS = "Microsoft.Dynamics.DataEntities"


async def sales_create(
    sales: SalesHarness, entity_set: str, body: dict[str, Any], *, as_user: bool = True
) -> dict[str, Any]:
    """Create a Dataverse record and return it as stored."""
    status, record = await sales.json(
        "POST", f"{API}/{entity_set}", json=body, headers=REPRESENTATION, as_user=as_user
    )
    assert status == 201, record
    assert isinstance(record, dict)
    return record


async def sales_get(sales: SalesHarness, entity_set: str, record_id: str) -> dict[str, Any]:
    """Read a Dataverse record."""
    status, record = await sales.json("GET", f"{API}/{entity_set}({record_id})")
    assert status == 200, record
    assert isinstance(record, dict)
    return record


async def sales_patch(
    sales: SalesHarness,
    entity_set: str,
    record_id: str,
    body: dict[str, Any],
    *,
    as_user: bool = True,
) -> tuple[int, Any]:
    """Update a Dataverse record (update only); returns status and body."""
    return await sales.json(
        "PATCH",
        f"{API}/{entity_set}({record_id})",
        json=body,
        headers={"If-Match": "*"},
        as_user=as_user,
    )


async def product(sales: SalesHarness, number: str, *, external: bool | None = True) -> str:
    """A Sales product; ``external`` is its ``msdynce_ismaintainedexternally``."""
    body: dict[str, Any] = {"name": number, "productnumber": number}
    if external is not None:
        body["msdynce_ismaintainedexternally"] = external
    return str((await sales_create(sales, "products", body, as_user=False))["productid"])


async def account(sales: SalesHarness, name: str = "Contoso") -> str:
    """A Sales account."""
    return str((await sales_create(sales, "accounts", {"name": name}))["accountid"])


async def contact(sales: SalesHarness, **body: Any) -> dict[str, Any]:
    """A Sales contact."""
    return await sales_create(sales, "contacts", {"lastname": "McKay", **body})


async def header(
    sales: SalesHarness, entity_set: str, customer: str | None = None, **body: Any
) -> dict[str, Any]:
    """A quote/order/invoice header (customer: ``accounts(<id>)`` or ``contacts(<id>)``)."""
    values: dict[str, Any] = {"name": "Doc", **body}
    if customer is not None:
        nav = "customerid_account" if customer.startswith("accounts") else "customerid_contact"
        values[f"{nav}@odata.bind"] = f"/{customer}"
    return await sales_create(sales, entity_set, values)


async def line(
    sales: SalesHarness,
    line_set: str,
    parent: str,
    header_id: str,
    product_id: str | None = None,
    *,
    as_user: bool = True,
    **body: Any,
) -> dict[str, Any]:
    """A document line (``parent`` = ``quoteid``/``salesorderid``/``invoiceid``)."""
    header_set = {"quoteid": "quotes", "salesorderid": "salesorders", "invoiceid": "invoices"}
    values: dict[str, Any] = {f"{parent}@odata.bind": f"/{header_set[parent]}({header_id})"}
    if product_id is not None:
        values["productid@odata.bind"] = f"/products({product_id})"
    else:
        values["productdescription"] = "Write-in"
    values.update(body)
    return await sales_create(sales, line_set, values, as_user=as_user)


async def listen_to_sales(sales: SalesHarness, url: str) -> None:
    """Register one webhook step per message with no table filter (every table)."""
    status, endpoint = await sales.json(
        "POST",
        f"{API}/serviceendpoints",
        json={"name": "all", "contract": 8, "url": url, "authtype": 4, "authvalue": "k"},
        headers=REPRESENTATION,
    )
    assert status == 201, endpoint
    for message in ("Create", "Update", "Delete"):
        _, found = await sales.json("GET", f"{API}/sdkmessages?$filter=name eq '{message}'")
        status, step = await sales.json(
            "POST",
            f"{API}/sdkmessageprocessingsteps",
            json={
                "name": f"all: {message}",
                "mode": 1,
                "stage": 40,
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
                "sdkmessageid@odata.bind": f"/sdkmessages({found['value'][0]['sdkmessageid']})",
            },
            headers=REPRESENTATION,
        )
        assert status == 201, step


def order_url(number: str, company: str = "usmf") -> str:
    """The keyed URL of an F&O sales order header."""
    return f"/data/CDSSalesOrderHeaders(dataAreaId='{company}',SalesOrderNumber='{number}')"


async def fno_create(
    fno: FnoHarness, entity_set: str, body: dict[str, Any], *, as_user: bool = True
) -> dict[str, Any]:
    """Create an F&O record and return it."""
    status, record = await fno.json("POST", f"/data/{entity_set}", json=body, as_user=as_user)
    assert status == 201, record
    assert isinstance(record, dict)
    return record


async def fno_get(fno: FnoHarness, path: str) -> dict[str, Any]:
    """Read an F&O record (across companies)."""
    status, record = await fno.json("GET", f"{path}?cross-company=true")
    assert status == 200, record
    assert isinstance(record, dict)
    return record


async def customer(
    fno: FnoHarness, number: str, *, external: str = "Yes", company: str = "usmf"
) -> None:
    """An F&O customer with ``IsExternallyMaintained`` = ``external``."""
    await fno_create(
        fno,
        "CustomersV3",
        {
            "dataAreaId": company,
            "CustomerAccount": number,
            "CustomerGroupId": "10",
            "IsExternallyMaintained": external,
        },
        as_user=False,
    )


async def released_product(
    fno: FnoHarness, number: str, price: float = 220.5, company: str = "usmf"
) -> dict[str, Any]:
    """A released product."""
    body = {
        "dataAreaId": company,
        "ProductNumber": number,
        "ProductName": f"Product {number}",
        "SalesPrice": price,
        "SalesUnitSymbol": "ea",
    }
    return await fno_create(fno, "CDSReleasedDistinctProducts", body)


async def fno_order(
    fno: FnoHarness,
    customer_account: str,
    lines: list[dict[str, Any]],
    *,
    as_user: bool = True,
    **body: Any,
) -> str:
    """An F&O order with lines; returns its number."""
    header_body = {"OrderingCustomerAccountNumber": customer_account, "CurrencyCode": "USD"}
    created = await fno_create(
        fno, "CDSSalesOrderHeaders", {**header_body, **body}, as_user=as_user
    )
    number = str(created["SalesOrderNumber"])
    keys = {"dataAreaId": created["dataAreaId"], "SalesOrderNumber": number}
    for values in lines:
        await fno_create(fno, "CDSSalesOrderLines", {**keys, **values}, as_user=as_user)
    return number


async def act(
    fno: FnoHarness, number: str, action: str, *, as_user: bool = True, company: str = "usmf"
) -> tuple[int, Any]:
    """Run a bound action on an order."""
    return await fno.json(
        "POST",
        f"{order_url(number, company)}/{ACTIONS}.{action}?cross-company=true",
        json={},
        as_user=as_user,
    )


async def subscribe_to_fno(fno: FnoHarness, url: str, *events: str) -> None:
    """Activate ``events`` for every company to one endpoint."""
    status, body = await fno.json(
        "POST",
        "/data/BusinessEventsEndpoints",
        json={"EndpointName": "all", "EndpointType": "Https", "Url": url},
    )
    assert status == 201, body
    for event in events:
        status, body = await fno.json(
            "POST",
            "/data/BusinessEventsActivations",
            json={"BusinessEventId": event, "EndpointName": "all", "LegalEntity": ""},
        )
        assert status == 201, body
