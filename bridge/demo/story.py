"""The prospect-to-cash story the demo tells, step by step, as a user would live it.

Each step is a user action in one system and a check that the other system shows its
effect; the next step starts when the user could take it (a quote needs the product in
Sales first), not when the bridge is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.demo.activity import Change, Check
from bridge.demo.actors import OrderProcessor, Salesperson

CONFIRMED, INVOICED = 647390001, 647390003
PRODUCT = "SPK-100"
LINE = {"product": PRODUCT, "quantity": 3.0, "price": 220.5, "discount": 10.0}


STEP_TIMEOUT_SECONDS = 60.0


async def _until(check: Check) -> None:
    try:
        async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
            # polling another system over HTTP; there is no event to wait on
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError("the story is stuck; see .local/demo.log") from None


def _exists(read: Any) -> Check:
    async def check() -> bool:
        return bool(await read())

    return check


async def tell(sales: Salesperson, fno: OrderProcessor, changes: list[Change]) -> None:
    """Run the story, appending one :class:`Change` per step and waiting where a user would."""

    async def step(subject: str, what: str, expected: str, check: Check, wait: bool = True) -> None:
        change = Change(subject, what, expected, check)
        changes.append(change)
        if wait:
            await _until(lambda: asyncio.sleep(0, change.seen_at is not None))

    await fno.release_product(PRODUCT, "Mid-range speaker", 220.5)
    await step(
        PRODUCT,
        "F&O: product released",
        "Sales product on price list",
        _exists(lambda: sales.find("productpricelevels", "amount eq 220.5")),
    )
    account = await sales.create_account(
        "Fourth Coffee", address1_country="Germany", address1_city="Munich"
    )
    number = account["accountnumber"]
    await step(
        number,
        "Sales: account created",
        "F&O customer, group 10",
        _exists(
            lambda: fno.get("CustomersV3", {"dataAreaId": fno.company, "CustomerAccount": number})
        ),
    )
    contact = await sales.create_contact(
        account["accountid"], "Yvonne", "McKay", emailaddress1="yvonne@fourthcoffee.example"
    )
    await step(
        contact["msdynce_contactnumber"],
        "Sales: contact created",
        "F&O contact person",
        _exists(
            lambda: fno.get(
                "ContactPersons",
                {"dataAreaId": fno.company, "ContactPersonId": contact["msdynce_contactnumber"]},
            )
        ),
    )
    quote = await sales.create_quote(account["accountid"], "Speakers for the café", [LINE])
    await sales.activate_quote(quote["quoteid"])
    await step(
        quote["quotenumber"],
        "Sales: quote activated",
        "F&O quotation, discount 3.33/unit",
        _exists(
            lambda: fno.find(
                "CDSSalesQuotationLines", f"SalesQuotationNumber eq '{quote['quotenumber']}'"
            )
        ),
    )
    order = await sales.create_order(account["accountid"], "Speakers order", [LINE])
    await sales.activate_order(order["salesorderid"])
    await step(
        order["ordernumber"],
        "Sales: order activated",
        "F&O sales order with lines",
        _exists(
            lambda: fno.find("CDSSalesOrderLines", f"SalesOrderNumber eq '{order['ordernumber']}'")
        ),
    )
    await fno.confirm(order["ordernumber"])

    async def status_is(value: int) -> bool:
        record = await sales.get("salesorders", order["salesorderid"])
        return bool(record and record.get("msdynce_processingstatus") == value)

    await step(
        order["ordernumber"],
        "F&O: order confirmed",
        "Sales status Confirmed",
        lambda: status_is(CONFIRMED),
    )
    await fno.invoice(order["ordernumber"])
    await step(
        order["ordernumber"],
        "F&O: invoice posted",
        "Sales invoice, order Invoiced",
        lambda: status_is(INVOICED),
    )
    fno_order = await fno.create_order(
        number, [{"product": PRODUCT, "quantity": 2.0, "price": 220.5}]
    )
    await fno.confirm(fno_order)
    await step(
        fno_order,
        "F&O: phone order confirmed",
        "Sales order (read-only)",
        _exists(lambda: sales.get("salesorders", f"ordernumber='{fno_order}'")),
    )
