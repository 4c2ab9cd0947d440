"""The P2C solution's plug-ins in the Dataverse emulator: contact flags, processing status,
order activation and quote activation."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.emulators.common.store import Op
from tests.unit.emulators.p2c_support import (
    ACTIVE,
    CONFIRMED,
    DRAFT,
    INVOICED,
    account,
    contact,
    header,
    line,
    listen_to_sales,
    product,
    sales_get,
    sales_patch,
)
from tests.unit.emulators.support import Receiver, SalesHarness

REFUSED = (
    "Order cannot be activated. Only orders with Externally maintained products can be activated."
)


@pytest.mark.parametrize(
    ("parent", "expected"), [("account", True), ("contact", False), (None, False)]
)
async def test_company_is_an_account_on_create(
    sales: SalesHarness, parent: str | None, expected: bool
) -> None:
    body: dict[str, Any] = {}
    if parent == "account":
        body["parentcustomerid_account@odata.bind"] = f"/accounts({await account(sales)})"
    elif parent == "contact":
        other = (await contact(sales))["contactid"]
        body["parentcustomerid_contact@odata.bind"] = f"/contacts({other})"
    assert (await contact(sales, **body))["msdynce_iscompanyanaccount"] is expected


async def test_company_is_an_account_follows_the_parent(sales: SalesHarness) -> None:
    person = (await contact(sales))["contactid"]
    company = await account(sales)
    await sales_patch(
        sales, "contacts", person, {"parentcustomerid_account@odata.bind": f"/accounts({company})"}
    )
    assert (await sales_get(sales, "contacts", person))["msdynce_iscompanyanaccount"] is True
    await sales_patch(sales, "contacts", person, {"parentcustomerid_account@odata.bind": None})
    assert (await sales_get(sales, "contacts", person))["msdynce_iscompanyanaccount"] is False
    await sales_patch(sales, "contacts", person, {"msdynce_iscompanyanaccount": True})
    kept = await sales_get(sales, "contacts", person)
    assert kept["msdynce_iscompanyanaccount"] is True, "only a parent write recomputes it"


@pytest.mark.parametrize("document", ["quotes", "salesorders", "invoices"])
async def test_a_contact_becomes_an_active_customer(sales: SalesHarness, document: str) -> None:
    person = (await contact(sales))["contactid"]
    assert (await sales_get(sales, "contacts", person))["msdynce_isactivecustomer"] is None
    await header(sales, document, f"contacts({person})")
    assert (await sales_get(sales, "contacts", person))["msdynce_isactivecustomer"] is True
    assert sales.emulator.store.count("contact", Op.UPDATE, "p2c-user") == 1


async def test_active_customer_on_customer_change_only_once(sales: SalesHarness) -> None:
    person = (await contact(sales))["contactid"]
    quote = (await header(sales, "quotes", f"accounts({await account(sales)})"))["quoteid"]
    assert (await sales_get(sales, "contacts", person))["msdynce_isactivecustomer"] is None
    await sales_patch(
        sales, "quotes", quote, {"customerid_contact@odata.bind": f"/contacts({person})"}
    )
    assert (await sales_get(sales, "contacts", person))["msdynce_isactivecustomer"] is True
    await header(sales, "salesorders", f"contacts({person})")
    assert sales.emulator.store.count("contact", Op.UPDATE) == 1, "no write when already true"


async def test_users_may_set_active_customer(sales: SalesHarness) -> None:
    person = (await contact(sales, msdynce_isactivecustomer=True))["contactid"]
    assert (await sales_get(sales, "contacts", person))["msdynce_isactivecustomer"] is True


@pytest.mark.parametrize(("given", "expected"), [(None, DRAFT), (CONFIRMED, CONFIRMED)])
async def test_processing_status_defaults_to_draft(
    sales: SalesHarness, given: int | None, expected: int
) -> None:
    body = {} if given is None else {"msdynce_processingstatus": given}
    assert (await header(sales, "salesorders", **body))["msdynce_processingstatus"] == expected


async def order_with(sales: SalesHarness, kinds: list[str], **body: Any) -> str:
    products = {
        "external": await product(sales, "EXT"),
        "internal": await product(sales, "INT", external=False),
    }
    order = (await header(sales, "salesorders", **body))["salesorderid"]
    for kind in kinds:
        product_id = products.get(kind)
        extra = {"msdynce_ismisctax": True} if kind == "freight-tax" else {}
        await line(sales, "salesorderdetails", "salesorderid", order, product_id, **extra)
    return order


@pytest.mark.parametrize(
    ("kinds", "body"),
    [
        ([], {}),
        (["write-in"], {}),
        (["external", "write-in"], {}),
        (["external", "internal"], {}),
        (["freight-tax"], {}),
        (["external"], {"msdynce_ismaintainedexternally": True, "msdynce_processingstatus": DRAFT}),
    ],
)
async def test_activation_is_refused(
    sales: SalesHarness, kinds: list[str], body: dict[str, Any]
) -> None:
    order = await order_with(sales, kinds, **body)
    before = await sales_get(sales, "salesorders", order)
    status, error = await sales_patch(
        sales, "salesorders", order, {"msdynce_processingstatus": ACTIVE, "name": "renamed"}
    )
    assert status == 400
    assert error == {"error": {"code": "0x80040265", "message": REFUSED}}
    after = await sales_get(sales, "salesorders", order)
    assert after["versionnumber"] == before["versionnumber"], "nothing was written"
    assert (after["msdynce_processingstatus"], after["name"]) == (DRAFT, "Doc")


@pytest.mark.parametrize("kinds", [["external"], ["external", "external", "freight-tax"]])
async def test_activation_submits_every_line(
    sales: SalesHarness, receiver: Receiver, kinds: list[str]
) -> None:
    order = await order_with(sales, kinds)
    await listen_to_sales(sales, receiver.url)
    status, _ = await sales_patch(sales, "salesorders", order, {"msdynce_processingstatus": ACTIVE})
    assert status == 204
    assert (await sales_get(sales, "salesorders", order))["msdynce_processingstatus"] == ACTIVE
    lines = (
        await sales.json(
            "GET", f"/api/data/v9.2/salesorderdetails?$filter=_salesorderid_value eq {order}"
        )
    )[1]["value"]
    assert [row["msdynce_orderissubmitted"] for row in lines] == [True] * len(kinds)
    requests = await receiver.wait_for(1 + len(kinds))
    names = [(r.body["PrimaryEntityName"], r.body["Depth"]) for r in requests]
    assert names == [("salesorder", 1)] + [("salesorderdetail", 2)] * len(kinds)


@pytest.mark.parametrize(
    ("start", "target"),
    [(ACTIVE, CONFIRMED), (CONFIRMED, INVOICED), (None, CONFIRMED), (DRAFT, CONFIRMED)],
)
async def test_other_status_changes_are_not_checked(
    sales: SalesHarness, start: int | None, target: int
) -> None:
    body = {} if start is None else {"msdynce_processingstatus": start}
    order = (await header(sales, "salesorders", **body))["salesorderid"]
    status, _ = await sales_patch(
        sales, "salesorders", order, {"msdynce_processingstatus": target}, as_user=False
    )
    assert status == 204
    assert (await sales_get(sales, "salesorders", order))["msdynce_processingstatus"] == target


async def test_quote_activation_is_a_plain_update(sales: SalesHarness, receiver: Receiver) -> None:
    quote = (await header(sales, "quotes"))["quoteid"]
    await listen_to_sales(sales, receiver.url)
    status, _ = await sales_patch(sales, "quotes", quote, {"statecode": 1})
    assert status == 204
    activated = await sales_get(sales, "quotes", quote)
    assert (activated["statecode"], activated["statuscode"]) == (1, 2)
    [request] = await receiver.wait_for(1)
    assert (request.body["MessageName"], request.body["PrimaryEntityName"]) == ("Update", "quote")


async def test_order_statecode_is_writable(sales: SalesHarness) -> None:
    order = (await header(sales, "salesorders"))["salesorderid"]
    status, _ = await sales_patch(sales, "salesorders", order, {"statecode": 1})
    assert status == 204
    assert (await sales_get(sales, "salesorders", order))["statecode"] == 1
