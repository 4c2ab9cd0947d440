"""Posting a sales invoice in F&O: the ``SalesInvoiceHeadersV2`` record and one
``SalesInvoiceV2Lines`` record per order line, built from an order and its calculated totals.

The header gets ``InvoiceNumber`` and ``LedgerVoucher`` from their per-company number
sequences (``CIV-000001``, ``ARI-000001``), ``InvoiceDate`` = the posting day at 12:00Z, the
order's customer, currency, reference, terms and invoice address, and the totals of
:func:`~bridge.emulators.fno.sales_totals.order_totals`. Each line keeps the order line's
``LineCreationSequenceNumber``, product, quantity (``InvoicedQuantity``), price and unit,
with ``LineAmount``, ``LineTotalTaxAmount`` and ``LineTotalDiscountAmount`` (the Sales-side
discount: quantity x line discount - charges, so charges are folded into it and
``LineTotalChargeAmount`` stays 0). Records are created through
:meth:`~bridge.emulators.fno.tables.FnoTables.insert`, header first, so the usual checks,
data-change business events and ``SalesInvoicePostedBusinessEvent`` follow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.emulators.common.store import StoredRecord
from bridge.emulators.fno.sales_totals import LineTotals, OrderTotals
from bridge.emulators.fno.tables import FnoTables

INVOICE_HEADERS = "SalesInvoiceHeadersV2"
INVOICE_LINES = "SalesInvoiceV2Lines"
_HEADER_COPIES = {
    "CurrencyCode": "CurrencyCode",
    "CustomersOrderReference": "CustomersOrderReference",
    "PaymentTermsName": "PaymentTermsName",
    "DeliveryModeCode": "DeliveryModeCode",
    "DeliveryTermsCode": "DeliveryTermsCode",
    "ContactPersonId": "ContactPersonId",
    "SalesOrderOriginCode": "SalesOrderOriginCode",
    "InvoiceAddressCity": "InvoiceAddressCity",
    "InvoiceAddressStreet": "InvoiceAddressStreet",
    "InvoiceAddressStreetNumber": "InvoiceAddressStreetNumber",
    "InvoiceAddressZipCode": "InvoiceAddressZipCode",
    "InvoiceAddressState": "InvoiceAddressStateId",
    "InvoiceAddressCountryRegionId": "InvoiceAddressCountryRegionId",
    "InvoiceAddressCountryRegionISOCode": "InvoiceAddressCountryRegionISOCode",
}


def posting_date(now: datetime) -> datetime:
    """The invoice date of a posting at ``now``: that day at 12:00 UTC."""
    day = now.astimezone(UTC)
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def invoice_header_values(
    order: Mapping[str, Any], totals: OrderTotals, invoice_date: datetime
) -> dict[str, Any]:
    """The new invoice header (number and voucher left to the number sequences)."""
    values: dict[str, Any] = {
        "dataAreaId": order["dataAreaId"],
        "InvoiceDate": invoice_date,
        "SalesOrderNumber": order["SalesOrderNumber"],
        "InvoiceCustomerAccountNumber": order.get("InvoiceCustomerAccountNumber")
        or order.get("OrderingCustomerAccountNumber", ""),
        "TotalInvoiceAmount": float(totals.amount),
        "TotalTaxAmount": float(totals.tax),
        "TotalDiscountAmount": 0.0,  # header (end) discount only; line discounts are in the lines
        "TotalChargeAmount": float(totals.charges),
        "InvoiceHeaderTaxAmount": float(totals.header_tax),
    }
    for target, source in _HEADER_COPIES.items():
        values[target] = order.get(source) or ""
    return values


def invoice_line_values(
    invoice: Mapping[str, Any], line: Mapping[str, Any], totals: LineTotals
) -> dict[str, Any]:
    """The invoice line of one order line."""
    return {
        "dataAreaId": invoice["dataAreaId"],
        "InvoiceNumber": invoice["InvoiceNumber"],
        "InvoiceDate": invoice["InvoiceDate"],
        "LedgerVoucher": invoice["LedgerVoucher"],
        "LineCreationSequenceNumber": line["LineCreationSequenceNumber"],
        "ProductNumber": line.get("ProductNumber") or "",
        "ProductName": line.get("ProductName") or "",
        "ProductDescription": line.get("LineDescription") or "",
        "InvoicedQuantity": line.get("OrderedSalesQuantity") or 0.0,
        "SalesPrice": line.get("SalesPrice") or 0.0,
        "SalesUnitSymbol": line.get("SalesUnitSymbol") or "",
        "LineAmount": float(totals.amount),
        "LineTotalDiscountAmount": float(totals.sales_discount),
        "LineTotalTaxAmount": float(totals.tax),
        "CurrencyCode": line.get("CurrencyCode") or invoice.get("CurrencyCode") or "",
        "InventorySiteId": line.get("ShippingSiteId") or "",
        "InventoryWarehouseId": line.get("ShippingWarehouseId") or "",
        "ConfirmedShippingDate": line.get("ConfirmedShippingDate"),
    }


def create_invoice(
    tables: FnoTables,
    order: StoredRecord,
    lines: Sequence[StoredRecord],
    totals: OrderTotals,
    principal: str,
) -> StoredRecord:
    """Create the invoice header, then its lines, as ``principal``; returns the header.
    Call inside a store transaction so that a failure leaves no partial invoice."""
    company = str(order.values["dataAreaId"])
    date = posting_date(tables.store.now())
    header_entity = tables.registry.require(INVOICE_HEADERS)
    line_entity = tables.registry.require(INVOICE_LINES)
    values = invoice_header_values(order.values, totals, date)
    header = tables.insert(header_entity, values, principal, company)
    for line, line_totals in zip(lines, totals.lines, strict=True):
        tables.insert(
            line_entity,
            invoice_line_values(header.values, line.values, line_totals),
            principal,
            company,
        )
    return header
