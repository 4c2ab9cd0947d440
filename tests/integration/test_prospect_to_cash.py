"""The prospect-to-cash story end to end, through the real broker and both emulators.

Product released in F&O → Sales with its price; account and contact in Sales → F&O; quote
activated in Sales → F&O quotation; order activated in Sales → F&O; confirmed and invoiced
in F&O → processing status and invoice in Sales; an order taken in F&O and confirmed →
Sales. Then every pair compares equal on the mapped fields and the write counters show no
echo. A second test feeds lines before headers and orders before customers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.config import FlowSettings, PollerSettings, Settings
from bridge.demo.actors import OrderProcessor, Salesperson
from bridge.fno.sink import CROSS_COMPANY
from bridge.http.odata import key_path
from bridge.kafka.state import StateStore
from bridge.mapping.loader import load_templates
from bridge.ops.commands import list_dead_letters
from tests.integration.conftest import Stack, eventually, running_bridge

CONFIRMED, INVOICED = 647390001, 647390003
LINE = {"product": "SPK-100", "quantity": 3.0, "price": 220.5, "discount": 10.0}


def fast_flows(stack: Stack, **changes: Any) -> FlowSettings:
    return stack.settings.flows.model_copy(
        update={
            "dependency_retry_initial_seconds": 0.2,
            "dependency_retry_max_seconds": 1.0,
            "dependency_retry_attempts": 30,
            **changes,
        }
    )


async def present(read: Any) -> Any:
    return await read


def bridge_writes(
    stats: dict[str, Any], entity: str, bridge_client: str = "bridge-local"
) -> list[dict[str, int]]:
    records = stats["entities"].get(entity, {}).get("records", {})
    return [
        r["by_principal"].get(bridge_client, {"creates": 0, "updates": 0, "deletes": 0})
        for r in records.values()
    ]


async def test_the_whole_prospect_to_cash_story(stack: Stack) -> None:
    """Every change pushed: Sales webhooks, F&O data events."""
    await tell_the_story(stack, stack.with_settings(flows=fast_flows(stack)))


async def test_the_whole_story_caught_up_by_change_tracking_with_the_receiver_down(
    stack: Stack,
) -> None:
    """The receiver is down the whole time (the registered webhooks and data-event steps
    post to a closed port, and Dataverse gives up after its retry): every change of both
    systems arrives through change tracking — on the Sales tables and on the F&O virtual
    tables — polled by the leader."""
    receiver_down = stack.settings.webhook.model_copy(update={"enabled": False})
    settings = stack.with_settings(
        flows=fast_flows(stack), webhook=receiver_down, poller=PollerSettings(interval_seconds=0.5)
    )
    await tell_the_story(stack, settings, wait_for_links=True)


async def links_established(settings: Settings) -> bool:
    """Whether the leader's virtual-table pollers hold their delta links (their first
    round only establishes the link: changes before it are backfill's)."""
    entities = ("product", "salesorderheader", "salesorderline", "invoiceheader", "invoiceline")
    async with StateStore(settings.kafka) as state:
        return all(state.get(f"delta|fno|{entity}") for entity in entities)


async def tell_the_story(stack: Stack, settings: Settings, *, wait_for_links: bool = False) -> None:
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    async with running_bridge(settings):
        if wait_for_links:
            await eventually(lambda: links_established(settings), timeout=60, interval=0.5)
        # 1. a product released in F&O appears in Sales with its price
        await fno.release_product("SPK-100", "Mid-range speaker", 220.5)
        product = await eventually(lambda: sales.get("products", "productnumber='SPK-100'"))
        assert product["msdynce_ismaintainedexternally"] is True
        assert product["price"] == 220.5
        prices = await eventually(
            lambda: sales.find("productpricelevels", f"_productid_value eq {product['productid']}")
        )
        assert prices[0]["amount"] == 220.5

        # 2. an account and a contact created in Sales appear in F&O
        account = await sales.create_account("Fourth Coffee", address1_country="Germany")
        number = account["accountnumber"]
        customer = await eventually(
            lambda: fno.get("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": number})
        )
        assert customer["IsExternallyMaintained"] == "Yes"
        contact = await sales.create_contact(
            account["accountid"], "Yvonne", "McKay", emailaddress1="y@example.com"
        )
        person = await eventually(
            lambda: fno.get(
                "ContactPersons",
                {"dataAreaId": "usmf", "ContactPersonId": contact["msdynce_contactnumber"]},
            )
        )
        assert person["AssociatedPartyNumber"] == number

        # 3. a quote activated in Sales becomes a sales quotation in F&O
        quote = await sales.create_quote(account["accountid"], "Speakers", [LINE])
        await sales.activate_quote(quote["quoteid"])
        quotation_key = {"dataAreaId": "usmf", "SalesQuotationNumber": quote["quotenumber"]}
        await eventually(lambda: fno.get("CDSSalesQuotationHeaders", quotation_key))
        (quotation_line,) = await eventually(
            lambda: fno.find(
                "CDSSalesQuotationLines", f"SalesQuotationNumber eq '{quote['quotenumber']}'"
            )
        )
        assert quotation_line["LineDiscountAmount"] == 3.33
        assert quotation_line["TotalChargesAmount"] == -0.01

        # 4. an order created and activated in Sales reaches F&O
        order = await sales.create_order(account["accountid"], "Speakers order", [LINE])
        await sales.activate_order(order["salesorderid"])
        order_key = {"dataAreaId": "usmf", "SalesOrderNumber": order["ordernumber"]}
        await eventually(lambda: fno.get("CDSSalesOrderHeaders", order_key))
        await eventually(
            lambda: fno.find("CDSSalesOrderLines", f"SalesOrderNumber eq '{order['ordernumber']}'")
        )

        # 5. confirming and invoicing it in F&O updates Sales and creates the invoice there
        await fno.confirm(order["ordernumber"])

        async def confirmed() -> dict[str, Any] | None:
            record = await sales.get("salesorders", order["salesorderid"])
            return (
                record if record and record.get("msdynce_processingstatus") == CONFIRMED else None
            )

        confirmed_order = await eventually(confirmed)
        assert confirmed_order["msdynce_ismaintainedexternally"] is not True, (
            "the order came from Sales"
        )
        await fno.invoice(order["ordernumber"])
        invoice_filter = f"_salesorderid_value eq {order['salesorderid']}"
        (invoice,) = await eventually(lambda: sales.find("invoices", invoice_filter))
        await eventually(
            lambda: sales.find("invoicedetails", f"_invoiceid_value eq {invoice['invoiceid']}")
        )

        async def invoiced() -> bool:
            record = await sales.get("salesorders", order["salesorderid"])
            return bool(record and record.get("msdynce_processingstatus") == INVOICED)

        await eventually(invoiced)

        # 6. an order created in F&O and confirmed reaches Sales
        fno_order = await fno.create_order(
            number, [{"product": "SPK-100", "quantity": 2.0, "price": 220.5}]
        )
        await fno.confirm(fno_order)
        from_fno = await eventually(lambda: sales.get("salesorders", f"ordernumber='{fno_order}'"))
        assert from_fno["msdynce_ismaintainedexternally"] is True
        await eventually(
            lambda: sales.find(
                "salesorderdetails", f"_salesorderid_value eq {from_fno['salesorderid']}"
            )
        )

        # one user edit on one side: exactly one write on the other side, none back
        await sales.update("accounts", account["accountid"], {"telephone1": "555-0199"})

        async def phone_in_fno() -> bool:
            record = await fno.get("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": number})
            return bool(record and record["PrimaryContactPhone"] == "555-0199")

        await eventually(phone_in_fno)
        await stack.emulators.wait_for_deliveries()

    fno_stats, sales_stats = await stack.fno_stats(), await stack.sales_stats()
    customer_writes = [
        c for label, c in (await stack.fno_writes("CustomersV3")).items() if number in label
    ]
    assert customer_writes[0]["by_principal"]["bridge-local"] == {
        "creates": 1,
        "updates": 1,
        "deletes": 0,
    }
    for entity in (
        "accounts",
        "contacts",
        "quotes",
        "quotedetails",
        "account",
        "contact",
        "quote",
        "quotedetail",
    ):
        assert all(
            w == {"creates": 0, "updates": 0, "deletes": 0}
            for w in bridge_writes(sales_stats, entity)
        ), entity
    for entity in ("CDSReleasedDistinctProducts",):
        assert all(
            w["creates"] == 0 and w["updates"] == 0 for w in bridge_writes(fno_stats, entity)
        ), entity
    headers = fno_stats["entities"]["CDSSalesOrderHeaders"]["records"]
    sales_made = next(r for label, r in headers.items() if order["ordernumber"] in label)
    assert sales_made["by_principal"]["bridge-local"]["creates"] == 1
    assert sales_made["by_principal"]["bridge-local"]["updates"] == 0, (
        "no echo of F&O's own confirmation"
    )
    print("write counters:", {e: v["totals"] for e, v in fno_stats["entities"].items()})


async def test_lines_before_headers_and_orders_before_customers_converge(stack: Stack) -> None:
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    every = sorted(load_templates())
    without = [f for f in every if f not in ("accounts", "orders-to-sales")]
    first = stack.with_settings(flows=fast_flows(stack, enabled=without))
    async with running_bridge(first):
        await fno.release_product("SPK-200", "Bookshelf speaker", 99.0)
        await eventually(lambda: sales.get("products", "productnumber='SPK-200'"))
        account = await sales.create_account("Northwind Traders")
        order = await sales.create_order(
            account["accountid"], "Early order", [{**LINE, "product": "SPK-200"}]
        )
        await sales.activate_order(order["salesorderid"])
        # the customer was never sent: the order waits in the retry topic, it is not rejected
        order_key = {"dataAreaId": "usmf", "SalesOrderNumber": order["ordernumber"]}
        await asyncio.sleep(2)  # long enough for several retry attempts
        assert await fno.get("CDSSalesOrderHeaders", order_key) is None
        assert await list_dead_letters(first, "orders-to-fno") == []
    second = stack.with_settings(flows=fast_flows(stack))
    async with running_bridge(second):
        await eventually(
            lambda: fno.get(
                "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": account["accountnumber"]}
            )
        )
        await eventually(lambda: fno.get("CDSSalesOrderHeaders", order_key), timeout=60)
        await eventually(
            lambda: fno.find("CDSSalesOrderLines", f"SalesOrderNumber eq '{order['ordernumber']}'")
        )
    third = stack.with_settings(
        flows=fast_flows(stack, enabled=[f for f in every if f != "orders-to-sales"])
    )
    async with running_bridge(third):
        fno_order = await fno.create_order(
            account["accountnumber"], [{"product": "SPK-200", "quantity": 1.0, "price": 99.0}]
        )
        await fno.confirm(fno_order)
        await stack.emulators.wait_for_deliveries()
    async with running_bridge(second):
        header = await eventually(
            lambda: sales.get("salesorders", f"ordernumber='{fno_order}'"), timeout=60
        )
        await eventually(
            lambda: sales.find(
                "salesorderdetails", f"_salesorderid_value eq {header['salesorderid']}"
            )
        )


async def test_concurrent_edits_of_a_confirmed_order_resolve_for_fno(stack: Stack) -> None:
    """F&O owns an order once it confirmed it: a Sales edit made then loses, is kept on the
    dead-letter topic with stage ``conflict``, and F&O's version reaches Sales."""
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    settings = stack.with_settings(flows=fast_flows(stack))
    async with running_bridge(settings):
        await fno.release_product("SPK-300", "Subwoofer", 400.0)
        await eventually(lambda: sales.get("products", "productnumber='SPK-300'"))
        account = await sales.create_account("Coho Winery")
        order = await sales.create_order(
            account["accountid"], "Subwoofers", [{**LINE, "product": "SPK-300"}]
        )
        await sales.activate_order(order["salesorderid"])
        number = order["ordernumber"]
        order_key = {"dataAreaId": "usmf", "SalesOrderNumber": number}
        await eventually(lambda: fno.find("CDSSalesOrderLines", f"SalesOrderNumber eq '{number}'"))
        # both sides edit the same order at the same moment; F&O also confirms it
        await fno.fno.request(
            "PATCH",
            key_path("CDSSalesOrderHeaders", order_key),
            json={"SalesOrderName": "F&O name"},
            params=CROSS_COMPANY,
        )
        await fno.confirm(number)
        await sales.update("salesorders", order["salesorderid"], {"name": "Sales name"})

        async def fno_name_in_sales() -> bool:
            record = await sales.get("salesorders", order["salesorderid"])
            return bool(
                record
                and record["name"] == "F&O name"
                and record["msdynce_processingstatus"] == CONFIRMED
            )

        async def conflict_kept() -> list[Any]:
            letters = await list_dead_letters(settings, "orders-to-fno")
            return [d for d in letters if d.context.get("stage") == "conflict"]

        await eventually(fno_name_in_sales)
        conflicts = await eventually(conflict_kept)
    assert (await fno.get("CDSSalesOrderHeaders", order_key))["SalesOrderName"] == "F&O name"
    assert "F&O owns the order" in conflicts[0].context["error.message"]


async def test_a_product_without_a_price_list_of_its_currency_is_dead_lettered(
    stack: Stack,
) -> None:
    """§3: "Product synchronization will not succeed unless there is a price list that has a
    matching currency" — a clear error on the dead-letter topic, not a crash."""
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    flows = fast_flows(stack, dependency_retry_attempts=2, enabled=["products"])
    settings = stack.with_settings(flows=flows)
    async with running_bridge(settings):
        await fno.fno.request(
            "POST",
            "CDSReleasedDistinctProducts",
            json={
                "dataAreaId": "usmf",
                "ProductNumber": "EUR-1",
                "ProductName": "Euro speaker",
                "SalesPrice": 99.0,
                "SalesUnitSymbol": "ea",
                "CurrencyCode": "EUR",
            },
        )
        await fno.release_product("USD-1", "Dollar speaker", 99.0)
        letters = await eventually(lambda: list_dead_letters(settings, "products"), timeout=60)
        await eventually(lambda: sales.get("products", "productnumber='USD-1'"))
    assert letters[0].context["stage"] == "dependency"
    assert (
        "pricelevels" in letters[0].context["error.message"]
        and "EUR" in letters[0].context["error.message"]
    )
