"""Sales documents in the Dataverse emulator: auto-numbers, default states, line sequence
numbers, line amounts, header totals and the externally-maintained-products flags."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.emulators.common.store import Op
from tests.unit.emulators.p2c_support import (
    account,
    header,
    line,
    listen_to_sales,
    product,
    sales_get,
    sales_patch,
)
from tests.unit.emulators.support import API, Receiver, SalesHarness

DOCUMENTS = [
    ("quotes", "quotedetails", "quoteid"),
    ("salesorders", "salesorderdetails", "salesorderid"),
    ("invoices", "invoicedetails", "invoiceid"),
]
LINE_FLAG = {
    "quotes": "msdynce_quotehasexternalmaintainedproductsonly",
    "salesorders": "msdynce_orderhasexternalmaintainedproductsonly",
}
FLAG = "msdynce_hasexternallymaintainedproductsonly"


@pytest.mark.parametrize(
    ("entity_set", "column", "prefix"),
    [
        ("quotes", "quotenumber", "QUO"),
        ("salesorders", "ordernumber", "ORD"),
        ("invoices", "invoicenumber", "INV"),
    ],
)
async def test_document_numbers_when_empty(
    sales: SalesHarness, entity_set: str, column: str, prefix: str
) -> None:
    first = await header(sales, entity_set)
    second = await header(sales, entity_set)
    given = await header(sales, entity_set, **{column: f"{prefix}-MINE"})
    assert re.fullmatch(rf"{prefix}-01000-[A-Z]{{6}}", first[column])
    assert re.fullmatch(rf"{prefix}-01001-[A-Z]{{6}}", second[column])
    assert given[column] == f"{prefix}-MINE"


@pytest.mark.parametrize(
    ("entity_set", "state", "status"), [("quotes", 0, 1), ("salesorders", 0, 1), ("invoices", 0, 1)]
)
async def test_new_documents_start_in_the_first_state(
    sales: SalesHarness, entity_set: str, state: int, status: int
) -> None:
    created = await header(sales, entity_set)
    assert (created["statecode"], created["statuscode"]) == (state, status)


@pytest.mark.parametrize(("header_set", "line_set", "parent"), DOCUMENTS)
async def test_sequence_numbers_per_header(
    sales: SalesHarness, header_set: str, line_set: str, parent: str
) -> None:
    first, other = await header(sales, header_set), await header(sales, header_set)
    first_id, other_id = first[f"{parent}"], other[f"{parent}"]
    numbers = [(await line(sales, line_set, parent, first_id))["sequencenumber"] for _ in "abc"]
    explicit = await line(sales, line_set, parent, first_id, sequencenumber=7)
    after_explicit = await line(sales, line_set, parent, first_id)
    elsewhere = await line(sales, line_set, parent, other_id)
    assert numbers == [1, 2, 3]
    assert (explicit["sequencenumber"], after_explicit["sequencenumber"]) == (7, 8)
    assert elsewhere["sequencenumber"] == 1


async def test_freight_tax_lines_do_not_push_the_sequence(sales: SalesHarness) -> None:
    order = (await header(sales, "salesorders"))["salesorderid"]
    await line(
        sales,
        "salesorderdetails",
        "salesorderid",
        order,
        sequencenumber=1_000_000,
        msdynce_ismisctax=True,
        quantity=1,
        priceperunit=1.6,
    )
    assert (await line(sales, "salesorderdetails", "salesorderid", order))["sequencenumber"] == 1


@pytest.mark.parametrize(
    ("values", "base", "extended"),
    [
        ({"quantity": 3, "priceperunit": 220.5}, 661.5, 661.5),
        ({"quantity": 3, "priceperunit": 220.5, "manualdiscountamount": 10}, 661.5, 651.5),
        (
            {"quantity": 3, "priceperunit": 220.5, "manualdiscountamount": 10, "tax": 52.12},
            661.5,
            703.62,
        ),
        ({"quantity": 0.5, "priceperunit": 0.1, "tax": 0.2}, 0.05, 0.25),
        ({"quantity": 2}, None, None),
        ({"quantity": 2, "priceperunit": 5, "baseamount": 99, "extendedamount": 99}, 10.0, 10.0),
    ],
)
async def test_line_amounts(
    sales: SalesHarness, values: dict[str, Any], base: float | None, extended: float | None
) -> None:
    quote = (await header(sales, "quotes"))["quoteid"]
    created = await line(sales, "quotedetails", "quoteid", quote, **values)
    assert (created["baseamount"], created["extendedamount"]) == (base, extended)


async def test_line_amounts_follow_updates(sales: SalesHarness) -> None:
    quote = (await header(sales, "quotes"))["quoteid"]
    created = await line(sales, "quotedetails", "quoteid", quote, quantity=1, priceperunit=10)
    await sales_patch(sales, "quotedetails", created["quotedetailid"], {"quantity": 4, "tax": 1})
    updated = await sales_get(sales, "quotedetails", created["quotedetailid"])
    assert (updated["baseamount"], updated["extendedamount"]) == (40.0, 41.0)


@pytest.mark.parametrize(("header_set", "line_set", "parent"), DOCUMENTS)
async def test_header_totals_follow_the_lines(
    sales: SalesHarness, header_set: str, line_set: str, parent: str
) -> None:
    doc = (await header(sales, header_set, discountamount=5.0, freightamount=20.0))[parent]
    one = await line(sales, line_set, parent, doc, quantity=3, priceperunit=220.5, tax=52.12)
    await line(sales, line_set, parent, doc, quantity=1, priceperunit=100, manualdiscountamount=10)
    totals = await sales_get(sales, header_set, doc)
    assert (totals["totallineitemamount"], totals["totaltax"]) == (803.62, 52.12)
    assert totals["totalamount"] == 803.62 - 5 + 20
    await sales_patch(sales, line_set, one[f"{line_set[:-1]}id"], {"quantity": 1})
    after_update = await sales_get(sales, header_set, doc)
    assert after_update["totallineitemamount"] == 220.5 + 52.12 + 90
    status, _ = await sales.json("DELETE", f"{API}/{line_set}({one[f'{line_set[:-1]}id']})")
    assert status == 204
    after_delete = await sales_get(sales, header_set, doc)
    assert (after_delete["totallineitemamount"], after_delete["totaltax"]) == (90.0, 0.0)
    await sales_patch(sales, header_set, doc, {"freightamount": 0.0, "totalamount": 1.0})
    assert (await sales_get(sales, header_set, doc))["totalamount"] == 85.0


async def test_a_header_without_lines_keeps_written_totals(sales: SalesHarness) -> None:
    invoice = await header(sales, "invoices", totalamount=725.22, totaltax=53.72)
    assert (invoice["totalamount"], invoice["totaltax"]) == (725.22, 53.72)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], False),
        (["external"], True),
        (["external", "external"], True),
        (["external", "internal"], False),
        (["external", "unflagged"], False),
        (["external", "write-in"], False),
        (["write-in"], False),
        (["external", "freight-tax"], True),
        (["freight-tax"], False),
    ],
)
async def test_externally_maintained_products_only(
    sales: SalesHarness, lines: list[str], expected: bool
) -> None:
    products = {
        "external": await product(sales, "EXT"),
        "internal": await product(sales, "INT", external=False),
        "unflagged": await product(sales, "BLANK", external=None),
    }
    order = (await header(sales, "salesorders"))["salesorderid"]
    for kind in lines:
        extra = {"msdynce_ismisctax": True} if kind == "freight-tax" else {}
        await line(sales, "salesorderdetails", "salesorderid", order, products.get(kind), **extra)
    assert (await sales_get(sales, "salesorders", order))[FLAG] is expected


@pytest.mark.parametrize(("header_set", "line_set", "parent"), DOCUMENTS)
async def test_flag_on_every_document_and_copied_to_lines(
    sales: SalesHarness, header_set: str, line_set: str, parent: str
) -> None:
    external = await product(sales, "EXT")
    doc = (await header(sales, header_set))[parent]
    first = await line(sales, line_set, parent, doc, external)
    assert (await sales_get(sales, header_set, doc))[FLAG] is True
    write_in = await line(sales, line_set, parent, doc)
    assert (await sales_get(sales, header_set, doc))[FLAG] is False
    flag = LINE_FLAG.get(header_set)
    if flag is not None:
        assert first[flag] is True, "set on the line's own write"
        line_id = f"{line_set[:-1]}id"
        refreshed = await sales_get(sales, line_set, first[line_id])
        assert (refreshed[flag], write_in[flag]) == (False, False)
    await sales.json("DELETE", f"{API}/{line_set}({write_in[f'{line_set[:-1]}id']})")
    assert (await sales_get(sales, header_set, doc))[FLAG] is True


async def test_the_flag_is_not_writable_by_clients(sales: SalesHarness) -> None:
    quote = (await header(sales, "quotes", **{FLAG: True}))["quoteid"]
    assert (await sales_get(sales, "quotes", quote))[FLAG] is False
    await sales_patch(sales, "quotes", quote, {FLAG: True})
    assert (await sales_get(sales, "quotes", quote))[FLAG] is False


async def test_derived_header_writes_fire_webhooks_as_the_writer(
    sales: SalesHarness, receiver: Receiver
) -> None:
    external = await product(sales, "EXT")
    quote = (await header(sales, "quotes"))["quoteid"]
    await listen_to_sales(sales, receiver.url)
    await line(sales, "quotedetails", "quoteid", quote, external, as_user=False, quantity=1)
    first, second = await receiver.wait_for(2)
    assert (first.body["MessageName"], first.body["PrimaryEntityName"]) == ("Create", "quotedetail")
    assert (second.body["MessageName"], second.body["PrimaryEntityName"]) == ("Update", "quote")
    assert (first.body["Depth"], second.body["Depth"]) == (1, 2)
    bridge = sales.emulator.directory.get("bridge-local")
    assert bridge is not None
    assert second.body["InitiatingUserId"] == bridge.systemuser_id
    target = {
        item["key"]: item["value"]
        for item in second.body["InputParameters"][0]["value"]["Attributes"]
    }
    assert target[FLAG] is True
    assert sales.emulator.store.count("quote", Op.UPDATE, "bridge-local") == 1
    header_row = await sales_get(sales, "quotes", quote)
    assert header_row["_modifiedby_value"] == bridge.systemuser_id


async def test_headers_and_lines_bind_through_their_entity_sets(sales: SalesHarness) -> None:
    customer = await account(sales)
    order = await header(sales, "salesorders", f"accounts({customer})")
    created = await line(sales, "salesorderdetails", "salesorderid", order["salesorderid"])
    assert created["_salesorderid_value"] == order["salesorderid"]
    status, body = await sales.json(
        "GET",
        f"{API}/salesorderdetails({created['salesorderdetailid']})",
        headers={"Prefer": 'odata.include-annotations="*"'},
    )
    assert status == 200
    assert body["_salesorderid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "salesorder"
