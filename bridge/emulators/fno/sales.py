"""F&O sales order processing rules that run on every write (the table methods of
``SalesTable``/``SalesLine``), and the computed fields of the CDS sales entities.

Writes (plug-in steps, :mod:`bridge.emulators.common.plugins`):

- New ``CDSSalesOrderHeaders``: ``SalesOrderProcessingStatus`` Active (the enum default),
  ``SalesOrderStatus`` Backorder and ``OrderCreationDateTime`` now, unless given;
  ``SalesOrderNumber`` from the number sequence when omitted; ``AreTotalsUpdated`` No.
- New ``CDSSalesOrderLines``: ``SalesOrderLineStatus`` Backorder and
  ``SalesOrderProcessingStatus`` = the header's, unless given; ``CurrencyCode`` = the
  header's, ``ProductName``/``SalesUnitSymbol`` = the released product's when empty,
  ``SalesPrice`` = the product's when not given; ``LineCreationSequenceNumber`` next per
  order when omitted (number sequence).
- Every order or quotation line write recomputes ``LineAmount``
  (:func:`~bridge.emulators.fno.sales_totals.line_amount`).
- Totals go stale: any write to a header sets its ``AreTotalsUpdated`` to No, and any line
  create/update/delete sets the line's ``AreTotalsCalculated`` to No and, by a derived
  header write (only when the header says Yes), the header's ``AreTotalsUpdated`` to No;
  writes tagged :data:`TOTALS_TAG` (the totals calculation itself) are exempt.
- New ``CDSReleasedDistinctProducts`` (releasing a product): ``CurrencyCode`` defaults to
  the company's accounting currency (settings ``accounting_currencies``: usmf/usrt USD,
  demf EUR; others ``default_accounting_currency``).

Computed fields (read-only for clients; stored on every write, recomputed on every read):
``OrderingCustomerIsExternallyMaintained``/``InvoiceCustomerIsExternallyMaintained`` on
headers and lines = ``IsExternallyMaintained`` of that ``CustomersV3`` account in the same
company (``No`` when there is none), and the lines' ``AreSalesOrderTotalsUpdated`` = the
header's ``AreTotalsUpdated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.emulators.common.plugins import PluginContext, Stage
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import Op, StoredRecord
from bridge.emulators.fno.sales_totals import LineInput, line_amount
from bridge.emulators.fno.tables import FnoTables, key_part
from bridge.emulators.odata.entities import EntityDef

HEADERS = "CDSSalesOrderHeaders"
LINES = "CDSSalesOrderLines"
QUOTATION_LINES = "CDSSalesQuotationLines"
PRODUCTS = "CDSReleasedDistinctProducts"
CUSTOMERS = "CustomersV3"
TOTALS_TAG = "sales-totals"
YES, NO = "Yes", "No"
_LINES_INDEX = "order-lines"
_CUSTOMER_INDEX = "customer-account"
_ORDERING, _INVOICE = (
    "OrderingCustomerIsExternallyMaintained",
    "InvoiceCustomerIsExternallyMaintained",
)


def _by_order(values: Mapping[str, Any]) -> tuple[Any, Any]:
    return (values.get("dataAreaId"), key_part(values.get("SalesOrderNumber")))


def _by_account(values: Mapping[str, Any]) -> tuple[Any, Any]:
    return (values.get("dataAreaId"), key_part(values.get("CustomerAccount")))


class SalesOrders:
    """The sales order rules of one F&O emulator and the lookups the actions share."""

    def __init__(self, tables: FnoTables, settings: EmulatorSettings) -> None:
        self.tables = tables
        self.settings = settings
        self.headers: EntityDef = tables.registry.require(HEADERS)
        self.lines: EntityDef = tables.registry.require(LINES)

    def install(self) -> None:
        """Define the indexes, register the steps and the computed fields."""
        store, register = self.tables.store, self.tables.plugins.register
        store.define_index(LINES, _LINES_INDEX, _by_order)
        store.define_index(CUSTOMERS, _CUSTOMER_INDEX, _by_account)
        writes = (Op.CREATE, Op.UPDATE)
        register(HEADERS, Stage.PRE_OPERATION, self._new_header, ops=(Op.CREATE,))
        register(HEADERS, Stage.PRE_OPERATION, _header_goes_stale, ops=writes)
        register(LINES, Stage.PRE_OPERATION, self._new_line, ops=(Op.CREATE,))
        register(LINES, Stage.PRE_OPERATION, _line_written, ops=writes)
        register(LINES, Stage.POST_OPERATION, self._stale_header)
        register(QUOTATION_LINES, Stage.PRE_OPERATION, _quotation_line_written, ops=writes)
        register(PRODUCTS, Stage.PRE_OPERATION, self._product_currency, ops=(Op.CREATE,))
        computed = self.tables.add_computed
        computed(HEADERS, _ORDERING, lambda v: self._flag(v, "OrderingCustomerAccountNumber"))
        computed(HEADERS, _INVOICE, lambda v: self._flag(v, "InvoiceCustomerAccountNumber"))
        computed(LINES, _ORDERING, lambda v: self._line_flag(v, "OrderingCustomerAccountNumber"))
        computed(LINES, _INVOICE, lambda v: self._line_flag(v, "InvoiceCustomerAccountNumber"))
        computed(LINES, "AreSalesOrderTotalsUpdated", self._header_totals_updated)

    def header_of(self, values: Mapping[str, Any]) -> StoredRecord | None:
        """The order header of a line (or of any values with the order's keys)."""
        return self.tables.get(self.headers, values)

    def lines_of(self, header: Mapping[str, Any]) -> list[StoredRecord]:
        """The lines of an order, by ``LineCreationSequenceNumber``."""
        found = self.tables.store.find(LINES, _LINES_INDEX, _by_order(header))
        return sorted(found, key=lambda r: int(r.values.get("LineCreationSequenceNumber") or 0))

    def customer_maintained_externally(self, company: Any, account: Any) -> str:
        """``IsExternallyMaintained`` of a customer account (``No`` when unknown)."""
        if not account:
            return NO
        found = self.tables.store.find(CUSTOMERS, _CUSTOMER_INDEX, (company, key_part(account)))
        return YES if any(r.values.get("IsExternallyMaintained") == YES for r in found) else NO

    def _flag(self, values: Mapping[str, Any], account_field: str) -> str:
        return self.customer_maintained_externally(
            values.get("dataAreaId"), values.get(account_field)
        )

    def _line_flag(self, values: Mapping[str, Any], account_field: str) -> str:
        header = self.header_of(values)
        return self._flag(header.values, account_field) if header else NO

    def _header_totals_updated(self, values: Mapping[str, Any]) -> Any:
        header = self.header_of(values)
        return header.values.get("AreTotalsUpdated", NO) if header else NO

    def _new_header(self, context: PluginContext) -> None:
        values = context.values
        if "SalesOrderStatus" not in context.written:
            values["SalesOrderStatus"] = "Backorder"
        if values.get("OrderCreationDateTime") is None:
            values["OrderCreationDateTime"] = self.tables.store.now()

    def _new_line(self, context: PluginContext) -> None:
        values, written = context.values, context.written
        if "SalesOrderLineStatus" not in written:
            values["SalesOrderLineStatus"] = "Backorder"
        header = self.header_of(values)
        if header is not None:
            if "SalesOrderProcessingStatus" not in written:
                values["SalesOrderProcessingStatus"] = header.values["SalesOrderProcessingStatus"]
            if not values.get("CurrencyCode"):
                values["CurrencyCode"] = header.values.get("CurrencyCode", "")
        product = self.tables.get(
            self.tables.registry.require(PRODUCTS),
            {"dataAreaId": values.get("dataAreaId"), "ProductNumber": values.get("ProductNumber")},
        )
        if product is not None:
            for name in ("ProductName", "SalesUnitSymbol"):
                if not values.get(name):
                    values[name] = product.values.get(name, "")
            if "SalesPrice" not in written:
                values["SalesPrice"] = product.values.get("SalesPrice", 0.0)

    def _stale_header(self, context: PluginContext) -> None:
        if context.tagged(TOTALS_TAG):
            return
        header = self.header_of(context.values)
        if header is not None and header.values.get("AreTotalsUpdated") == YES:
            self.tables.derived_update(context, self.headers, header, {"AreTotalsUpdated": NO})

    def _product_currency(self, context: PluginContext) -> None:
        if not context.values.get("CurrencyCode"):
            company = str(context.values.get("dataAreaId", "")).casefold()
            currencies = {k.casefold(): v for k, v in self.settings.accounting_currencies.items()}
            context.values["CurrencyCode"] = currencies.get(
                company, self.settings.default_accounting_currency
            )


def _header_goes_stale(context: PluginContext) -> None:
    if not context.tagged(TOTALS_TAG):
        context.values["AreTotalsUpdated"] = NO


def _line_written(context: PluginContext) -> None:
    context.values["LineAmount"] = float(line_amount(LineInput.of(context.values)))
    if not context.tagged(TOTALS_TAG):
        context.values["AreTotalsCalculated"] = NO


def _quotation_line_written(context: PluginContext) -> None:
    line = LineInput.of(context.values, quantity="RequestedSalesQuantity")
    context.values["LineAmount"] = float(line_amount(line))
