"""Dataverse lookup GUIDs read back as business keys: batched, cached, in candidate order;
and the Sales target reader that gives every record in the template's terms."""

from __future__ import annotations

from typing import Any

from bridge.config import CompanySettings
from bridge.dataverse.metadata import DataverseMetadata
from bridge.mapping.loader import load_templates
from bridge.mapping.template import BindCandidate, BindVia
from bridge.ops.lookup_keys import LookupKeys, lookup_column
from bridge.ops.targets import DataverseTargetRecords, target_columns
from tests.unit.ops.fakes import MemoryDataverse

PRODUCTS = (BindCandidate(nav="productid", entity_set="products", match="productnumber"),)
CUSTOMERS = (
    BindCandidate(nav="customerid_account", entity_set="accounts", match="accountnumber"),
    BindCandidate(nav="customerid_contact", entity_set="contacts", match="msdynce_contactnumber"),
)
PRICE_LIST_OF_CURRENCY = (
    BindCandidate(
        nav="pricelevelid",
        entity_set="pricelevels",
        via=BindVia(
            entity_set="transactioncurrencies",
            match="isocurrencycode",
            field="_transactioncurrencyid_value",
        ),
    ),
)
UNKNOWN = "99999999-0000-0000-0000-000000000000"


async def resolved(
    sales: MemoryDataverse, candidates: tuple[BindCandidate, ...], *guids: str, batch: int = 50
) -> dict[str, Any]:
    async with sales.client() as api:
        return await LookupKeys(api, DataverseMetadata(api), batch).resolve(candidates, guids)


def queries(sales: MemoryDataverse, entity_set: str) -> list[list[str]]:
    """The GUIDs asked for in each query of ``entity_set``."""
    asked = []
    for request in sales.asked(entity_set):
        text = request.url.params["$filter"]
        asked.append([part for part in text.split("'") if part.count("-") == 4])
    return asked


def test_lookup_column() -> None:
    assert lookup_column("productid") == "_productid_value"


async def test_guids_are_read_in_batches_on_the_primary_key() -> None:
    sales = MemoryDataverse()
    guids = [sales.add("products", productnumber=f"P-{n}") for n in range(3)]
    keys = await resolved(sales, PRODUCTS, *guids, guids[0].upper(), "", batch=2)
    assert keys == {guids[0]: "P-0", guids[1]: "P-1", guids[2]: "P-2"}
    assert queries(sales, "products") == [guids[:2], guids[2:]]
    (first, _) = sales.asked("products")
    assert first.url.params["$select"] == "productid,productnumber"


async def test_every_answer_is_cached_found_or_not() -> None:
    sales = MemoryDataverse()
    guid = sales.add("products", productnumber="P-1")
    async with sales.client() as api:
        keys = LookupKeys(api, DataverseMetadata(api))
        assert await keys.resolve(PRODUCTS, [guid, UNKNOWN]) == {guid: "P-1"}
        assert await keys.resolve(PRODUCTS, [UNKNOWN, guid]) == {guid: "P-1"}
    assert len(sales.asked("products")) == 1
    assert len(sales.asked("EntityDefinitions")) == 1


async def test_candidates_are_tried_in_order_and_only_for_what_is_left() -> None:
    sales = MemoryDataverse()
    account = sales.add("accounts", accountnumber="C-1")
    contact = sales.add("contacts", msdynce_contactnumber="CT-1")
    keys = await resolved(sales, CUSTOMERS, account, contact, UNKNOWN)
    assert keys == {account: "C-1", contact: "CT-1"}
    assert queries(sales, "accounts") == [sorted([account, contact, UNKNOWN])]
    assert queries(sales, "contacts") == [sorted([contact, UNKNOWN])]


async def test_a_record_with_an_empty_key_resolves_to_none() -> None:
    sales = MemoryDataverse()
    guid = sales.add("products", name="No number yet")
    assert await resolved(sales, PRODUCTS, guid) == {guid: None}


async def test_a_via_candidate_names_the_key_of_the_record_it_points_at() -> None:
    sales = MemoryDataverse()
    usd = sales.add("transactioncurrencies", isocurrencycode="USD")
    priced = sales.add("pricelevels", name="USA", _transactioncurrencyid_value=usd)
    unpriced = sales.add("pricelevels", name="Draft")
    keys = await resolved(sales, PRICE_LIST_OF_CURRENCY, priced, unpriced, UNKNOWN)
    assert keys == {priced: "USD", unpriced: None}


ORDER_LINES = load_templates()["order-lines-to-sales"]


async def lines_read(sales: MemoryDataverse, page_size: int = 2) -> list[dict[str, Any]]:
    columns = target_columns(ORDER_LINES)
    async with sales.client() as api:
        reader = DataverseTargetRecords(api, DataverseMetadata(api))
        records = reader.records(ORDER_LINES, columns, CompanySettings(), page_size)
        return [record async for record in records]


async def test_sales_targets_are_read_by_primary_key_with_lookups_as_business_keys() -> None:
    sales = MemoryDataverse()
    order = sales.add("salesorders", ordernumber="SO-1")
    product = sales.add("products", productnumber="P-1")
    for sequence in (1, 2, 3):
        sales.add(
            "salesorderdetails",
            sequencenumber=sequence,
            quantity=1.0,
            _salesorderid_value=order,
            _productid_value=product if sequence != 2 else None,
            _uomid_value=UNKNOWN if sequence == 3 else None,
        )
    read = await lines_read(sales)
    assert [(r["salesorderid"], r["sequencenumber"], r["productid"]) for r in read] == [
        ("SO-1", 1, "P-1"),
        ("SO-1", 2, None),
        ("SO-1", 3, "P-1"),
    ]
    assert [r["uomid"] for r in read] == [None, None, f"{UNKNOWN} (not in uoms)"]
    first = sales.asked("salesorderdetails")[0]
    selected = first.url.params["$select"].split(",")
    assert {"_salesorderid_value", "_productid_value", "_uomid_value", "quantity"} <= set(selected)
    assert not {"salesorderid", "productid", "uomid"} & set(selected)
    assert first.url.params["$orderby"] == "salesorderdetailid asc"
    assert len(sales.asked("salesorderdetails")) == 2, "two pages"
    assert len(sales.asked("products")) == 1, "one query for the product of every page"
