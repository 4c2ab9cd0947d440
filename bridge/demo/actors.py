"""The people of the prospect-to-cash story, acting through the systems' APIs.

A salesperson works in Sales (Dataverse Web API); an order processor works in F&O (OData,
including the emulator's bound actions for what the F&O UI and batch jobs do: confirm an
order, calculate sales totals, post a packing slip, post an invoice). Both act with the
user identity, never the bridge's, so the bridge treats their changes as real changes.
Used by the demo and by the end-to-end tests.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import NotFound
from bridge.fno.sink import CROSS_COMPANY
from bridge.http.client import ApiClient
from bridge.http.odata import entity_id_from_header, key_path

ACTIVE = 647390000
ACTIVE_QUOTE = 1
ACTION_NAMESPACE = "Microsoft.Dynamics.DataEntities"


class Salesperson:
    """Creates and edits records in Sales."""

    def __init__(self, sales: ApiClient) -> None:
        self.sales = sales

    async def create(self, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a record and return it as Dataverse stored it."""
        response = await self.sales.request(
            "POST", entity_set, json=body, headers={"Prefer": "return=representation"}
        )
        record: dict[str, Any] = response.json() if response.content else {}
        if not record:
            record_id = entity_id_from_header(response.headers.get("OData-EntityId", ""))
            record = await self.sales.get_json(f"{entity_set}({record_id})")
        return record

    async def update(self, entity_set: str, record_id: str, body: dict[str, Any]) -> None:
        """Change some columns of a record."""
        await self.sales.request("PATCH", f"{entity_set}({record_id})", json=body)

    async def get(self, entity_set: str, key: str) -> dict[str, Any] | None:
        """A record by GUID or alternate-key segment (``ordernumber='X'``), or ``None``."""
        try:
            return await self.sales.get_json(f"{entity_set}({key})")
        except NotFound:
            return None

    async def find(self, entity_set: str, filter_: str) -> list[dict[str, Any]]:
        """Records matching an OData filter."""
        return list(
            (await self.sales.get_json(entity_set, params={"$filter": filter_})).get("value", [])
        )

    async def create_account(self, name: str, **fields: Any) -> dict[str, Any]:
        """A customer account; Dataverse numbers it (ACC-…)."""
        return await self.create("accounts", {"name": name, **fields})

    async def create_contact(
        self, account_id: str, first: str, last: str, **fields: Any
    ) -> dict[str, Any]:
        """A contact person of an account."""
        body = {
            "firstname": first,
            "lastname": last,
            "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
            **fields,
        }
        return await self.create("contacts", body)

    async def product_id(self, product_number: str) -> str:
        """The GUID of a product (released from F&O)."""
        product = await self.get("products", f"productnumber='{product_number}'")
        if product is None:
            raise NotFound(f"product {product_number} is not in Sales")
        return str(product["productid"])

    async def unit_id(self, name: str) -> str:
        """The GUID of a unit of measure by name."""
        (unit,) = await self.find("uoms", f"name eq '{name}'")
        return str(unit["uomid"])

    async def _document(
        self,
        header_set: str,
        line_set: str,
        parent_nav: str,
        account_id: str,
        name: str,
        lines: list[dict[str, Any]],
    ) -> dict[str, Any]:
        header = await self.create(
            header_set,
            {
                "name": name,
                "customerid_account@odata.bind": f"/accounts({account_id})",
                "shipto_country": "Germany",
            },
        )
        header_id = header[f"{header_set[:-1]}id"]
        for line in lines:
            body = {
                f"{parent_nav}@odata.bind": f"/{header_set}({header_id})",
                "productid@odata.bind": f"/products({await self.product_id(line['product'])})",
                "uomid@odata.bind": f"/uoms({await self.unit_id(line.get('unit', 'ea'))})",
                "quantity": line["quantity"],
                "priceperunit": line["price"],
                "manualdiscountamount": line.get("discount", 0.0),
                "ispriceoverridden": True,
            }
            await self.create(line_set, body)
        return await self.sales.get_json(f"{header_set}({header_id})")

    async def create_quote(
        self, account_id: str, name: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A draft quote with product lines (``{"product", "quantity", "price", "discount"}``)."""
        return await self._document("quotes", "quotedetails", "quoteid", account_id, name, lines)

    async def activate_quote(self, quote_id: str) -> None:
        """Activate a quote (Draft → Active), which makes it eligible for F&O."""
        await self.update("quotes", quote_id, {"statecode": ACTIVE_QUOTE})

    async def create_order(
        self, account_id: str, name: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A draft order with product lines."""
        return await self._document(
            "salesorders", "salesorderdetails", "salesorderid", account_id, name, lines
        )

    async def activate_order(self, order_id: str) -> None:
        """The P2C Activate button: processing status Draft → Active."""
        await self.update("salesorders", order_id, {"msdynce_processingstatus": ACTIVE})


class OrderProcessor:
    """Works in F&O: releases products, takes orders, confirms, ships and invoices."""

    def __init__(self, fno: ApiClient, company: str = "usmf") -> None:
        self.fno = fno
        self.company = company

    def _order_path(self, order_number: str) -> str:
        return key_path(
            "CDSSalesOrderHeaders", {"dataAreaId": self.company, "SalesOrderNumber": order_number}
        )

    async def get(self, entity_set: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """A record by its full key, or ``None``."""
        try:
            return await self.fno.get_json(key_path(entity_set, key), params=CROSS_COMPANY)
        except NotFound:
            return None

    async def find(self, entity_set: str, filter_: str) -> list[dict[str, Any]]:
        """Records matching an OData filter, across companies."""
        params = {**CROSS_COMPANY, "$filter": filter_}
        return list((await self.fno.get_json(entity_set, params=params)).get("value", []))

    async def release_product(
        self, number: str, name: str, price: float, unit: str = "ea"
    ) -> dict[str, Any]:
        """Release a sellable product (one distinct product per variant)."""
        body = {
            "dataAreaId": self.company,
            "ProductNumber": number,
            "ItemNumber": number,
            "ProductName": name,
            "SalesPrice": price,
            "SalesUnitSymbol": unit,
        }
        response = await self.fno.request("POST", "CDSReleasedDistinctProducts", json=body)
        record: dict[str, Any] = response.json()
        return record

    async def create_order(self, customer: str, lines: list[dict[str, Any]]) -> str:
        """A sales order taken in F&O; returns its number."""
        body = {
            "dataAreaId": self.company,
            "OrderingCustomerAccountNumber": customer,
            "InvoiceCustomerAccountNumber": customer,
            "CurrencyCode": "USD",
            "SalesOrderName": "Phone order",
        }
        header = (await self.fno.request("POST", "CDSSalesOrderHeaders", json=body)).json()
        number = str(header["SalesOrderNumber"])
        for line in lines:
            await self.fno.request(
                "POST",
                "CDSSalesOrderLines",
                json={
                    "dataAreaId": self.company,
                    "SalesOrderNumber": number,
                    "ProductNumber": line["product"],
                    "OrderedSalesQuantity": line["quantity"],
                    "SalesPrice": line["price"],
                    "SalesUnitSymbol": line.get("unit", "ea"),
                },
            )
        return number

    async def act(self, order_number: str, action: str) -> None:
        """Run a bound action on an order: Confirm, CalculateTotals, PostPackingSlip, PostInvoice."""
        await self.fno.request(
            "POST",
            f"{self._order_path(order_number)}/{ACTION_NAMESPACE}.{action}",
            json={},
            params=CROSS_COMPANY,
        )

    async def confirm(self, order_number: str) -> None:
        """Confirm the order and run the sales-totals calculation, as F&O's batch would."""
        await self.act(order_number, "Confirm")
        await self.act(order_number, "CalculateTotals")

    async def invoice(self, order_number: str) -> None:
        """Post the packing slip and the invoice."""
        await self.act(order_number, "PostPackingSlip")
        await self.act(order_number, "PostInvoice")
