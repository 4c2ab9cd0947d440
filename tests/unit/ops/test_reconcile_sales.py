"""Reconcile of the flows into Sales: lookups read back as business keys, drift read like a
business table, against an in-memory Dataverse that the flows' writes converged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.config import Settings
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import ChangeEvent
from bridge.dataverse.metadata import DataverseMetadata
from bridge.engine.flow import Flow, resolve_flow
from bridge.mapping.engine import MappingContext, map_event
from bridge.ops.drift import DriftReport
from bridge.ops.headers import FORCE
from bridge.ops.reconcile import reconcile, repair
from bridge.ops.targets import DataverseTargetRecords, target_columns
from tests.unit.ops.fakes import MemoryDataverse, PagedSource, RecordingSender, fno_record

SALES_FLOWS = ("products", "orders-to-sales", "order-lines-to-sales", "invoices", "invoice-lines")
ORDER = {
    "OrderingCustomerIsExternallyMaintained": "Yes",
    "InvoiceCustomerIsExternallyMaintained": "Yes",
    "SalesOrderProcessingStatus": "Confirmed",
}
SOURCES: dict[str, list[ChangeEvent]] = {
    "products": [
        fno_record(
            "product",
            ProductNumber=number,
            ProductName=f"Speaker {number}",
            SalesUnitSymbol=unit,
            SalesPrice=10.0,
            CurrencyCode="USD",
        )
        for number, unit in (("P-1", "ea"), ("P-2", "h"))
    ],
    "orders-to-sales": [
        fno_record(
            "salesorderheader",
            SalesOrderNumber="SO-1",
            SalesOrderName="Phone order",
            OrderingCustomerAccountNumber="C-1",
            CurrencyCode="USD",
            OrderTotalAmount=17.5,
            RequestedShippingDate="2026-02-01T00:00:00Z",
            AreTotalsUpdated="Yes",
            **ORDER,
        )
    ],
    "order-lines-to-sales": [
        fno_record(
            "salesorderline",
            SalesOrderNumber="SO-1",
            LineCreationSequenceNumber=1,
            ProductNumber="P-1",
            SalesUnitSymbol="ea",
            OrderedSalesQuantity=2.0,
            SalesPrice=10.0,
            LineDiscountAmount=1.25,
            AreSalesOrderTotalsUpdated="Yes",  # spec §7.1: lines once the totals are calculated
            AreTotalsCalculated="Yes",
            **ORDER,
        )
    ],
    "invoices": [
        fno_record(
            "invoiceheader",
            InvoiceNumber="INV-1",
            InvoiceDate="2026-02-03T00:00:00Z",
            LedgerVoucher="V-1",
            SalesOrderNumber="SO-1",
            InvoiceCustomerAccountNumber="CT-1",
            CurrencyCode="USD",
            TotalInvoiceAmount=17.5,
            # the F&O lookup of the invoice's customer, resolved (spec §8: only invoices of
            # customers the P2C solution maintains)
            **{"customer.external": "Yes"},
        )
    ],
    "invoice-lines": [
        fno_record(
            "invoiceline",
            InvoiceNumber="INV-1",
            InvoiceDate="2026-02-03T00:00:00Z",
            LedgerVoucher="V-1",
            LineCreationSequenceNumber=1,
            ProductNumber="P-2",
            SalesUnitSymbol="h",
            InvoicedQuantity=3.0,
            SalesPrice=50.0,
            **{"invoice.order": "SO-1", "invoice.customer": "CT-1", "customer.external": "Yes"},
        )
    ],
}
CODEC = EventCodec.from_directory()


def flow(name: str) -> Flow:
    return resolve_flow(Settings(), name)


def converged_sales() -> MemoryDataverse:
    """Sales with its reference data and every flow's source records applied."""
    sales = MemoryDataverse()
    sales.add("uomschedules", name="Default unit")
    for unit in ("ea", "Hour"):
        sales.add("uoms", name=unit)
    usd = sales.add("transactioncurrencies", isocurrencycode="USD")
    sales.add("pricelevels", name="CRM Service USA (sample)", _transactioncurrencyid_value=usd)
    sales.add("accounts", accountnumber="C-1")
    sales.add("accounts", accountnumber="C-2")
    sales.add("contacts", msdynce_contactnumber="CT-1")
    for name in SALES_FLOWS:
        for event in SOURCES[name]:
            result = map_event(flow(name).template, event, MappingContext(company="usmf"))
            sales.store(result.writes[0])
    return sales


async def reconciled(
    name: str, sales: MemoryDataverse, events: list[ChangeEvent] | None = None
) -> DriftReport:
    """Reconcile ``name`` with its :data:`SOURCES` (or ``events``) against ``sales``."""
    async with sales.client() as api:
        source = PagedSource(flow(name), SOURCES[name] if events is None else events)
        target = DataverseTargetRecords(api, DataverseMetadata(api))
        return await reconcile(flow(name), source, target, page_size=2)


def drift(report: DriftReport) -> list[tuple[str, str, str, Any, Any]]:
    """Every drifted record and field as ``(kind, target key, field, expected, actual)``."""
    rows: list[tuple[str, str, str, Any, Any]] = []
    for record in (*report.missing, *report.different, *report.extra):
        kind, key = record.kind.value, record.target_key
        rows += [(kind, key, f.field, f.expected, f.actual) for f in record.fields]
        if not record.fields:
            rows.append((kind, key, "", None, None))
    return rows


@pytest.mark.parametrize("name", SALES_FLOWS)
async def test_a_converged_sales_has_no_drift(name: str) -> None:
    report = await reconciled(name, converged_sales())
    assert report.checked == len(SOURCES[name])
    assert drift(report) == [] and report.unmappable == []
    assert not report.drifted


Bind = tuple[str, str, Any] | None


def user_edit(
    entity_set: str,
    column: str,
    value: Any,
    *,
    binds: dict[str, Bind] | None = None,
    **changes: Any,
) -> Callable[[MemoryDataverse], None]:
    """A user changes columns of the record of ``entity_set`` whose ``column`` is ``value``;
    ``binds`` points lookups at the record ``(entity_set, column, value)`` or clears them."""

    def edit(sales: MemoryDataverse) -> None:
        bound = {
            f"_{name}_value": sales.find(*ref) if ref else None
            for name, ref in (binds or {}).items()
        }
        sales.change(entity_set, sales.find(entity_set, column, value), **changes, **bound)

    return edit


def user_delete(entity_set: str, column: str, value: Any) -> Callable[[MemoryDataverse], None]:
    def delete(sales: MemoryDataverse) -> None:
        sales.delete(entity_set, sales.find(entity_set, column, value))

    return delete


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        pytest.param(
            "products",
            user_edit("products", "productnumber", "P-1", name="Tampered"),
            [("different", "productnumber=P-1", "name", "Speaker P-1", "Tampered")],
            id="products: a field",
        ),
        pytest.param(
            "products",
            user_edit(
                "products", "productnumber", "P-2", binds={"defaultuomid": ("uoms", "name", "ea")}
            ),
            [("different", "productnumber=P-2", "defaultuomid", "Hour", "ea")],
            id="products: a lookup names another unit",
        ),
        pytest.param(
            "products",
            user_delete("products", "productnumber", "P-1"),
            [("missing", "productnumber=P-1", "", None, None)],
            id="products: deleted",
        ),
        pytest.param(
            "orders-to-sales",
            user_edit(
                "salesorders",
                "ordernumber",
                "SO-1",
                totalamount=99.0,
                binds={"customerid": ("contacts", "msdynce_contactnumber", "CT-1")},
            ),
            [
                ("different", "ordernumber=SO-1", "totalamount", 17.5, 99.0),
                ("different", "ordernumber=SO-1", "customerid", "C-1", "CT-1"),
            ],
            id="orders: an amount, and the customer is a contact",
        ),
        pytest.param(
            "orders-to-sales",
            user_edit("salesorders", "ordernumber", "SO-1", requestdeliveryby="2026-02-02"),
            [("different", "ordernumber=SO-1", "requestdeliveryby", "2026-02-01", "2026-02-02")],
            id="orders: a date",
        ),
        pytest.param(
            "order-lines-to-sales",
            user_edit(
                "salesorderdetails",
                "sequencenumber",
                1,
                manualdiscountamount=0.0,
                binds={"productid": ("products", "productnumber", "P-2")},
            ),
            [
                (
                    "different",
                    "salesorderid=SO-1,sequencenumber=1",
                    "manualdiscountamount",
                    2.5,
                    0.0,
                ),
                ("different", "salesorderid=SO-1,sequencenumber=1", "productid", "P-1", "P-2"),
            ],
            id="order lines: the rule's discount, and another product",
        ),
        pytest.param(
            "order-lines-to-sales",
            user_edit("salesorders", "ordernumber", "SO-1", ordernumber="SO-9"),
            [
                ("missing", "salesorderid=SO-1,sequencenumber=1", "", None, None),
                ("extra", "salesorderid=SO-9,sequencenumber=1", "", None, None),
            ],
            id="order lines: their order renumbered in Sales",
        ),
        pytest.param(
            "invoices",
            user_edit(
                "invoices",
                "invoicenumber",
                "INV-1",
                binds={"salesorderid": None},
                msdynce_invoicedate=None,
            ),
            [
                ("different", "invoicenumber=INV-1", "msdynce_invoicedate", "2026-02-03", None),
                ("different", "invoicenumber=INV-1", "salesorderid", "SO-1", None),
            ],
            id="invoices: the order and the date cleared",
        ),
        pytest.param(
            "invoice-lines",
            user_edit(
                "invoicedetails", "sequencenumber", 1, binds={"uomid": ("uoms", "name", "ea")}
            ),
            [("different", "invoiceid=INV-1,sequencenumber=1", "uomid", "Hour", "ea")],
            id="invoice lines: another unit",
        ),
    ],
)
async def test_drift_made_in_sales_is_reported(
    name: str, edit: Callable[[MemoryDataverse], None], expected: list[tuple[Any, ...]]
) -> None:
    sales = converged_sales()
    edit(sales)
    report = await reconciled(name, sales)
    assert drift(report) == expected
    assert report.drifted == any(row[0] != "extra" for row in expected)


async def test_a_lookup_naming_a_deleted_record_shows_its_guid() -> None:
    sales = converged_sales()
    product = sales.find("products", "productnumber", "P-1")
    sales.delete("products", product)
    report = await reconciled("order-lines-to-sales", sales)
    assert drift(report) == [
        (
            "different",
            "salesorderid=SO-1,sequencenumber=1",
            "productid",
            "P-1",
            f"{product} (not in products)",
        )
    ]


async def test_only_records_the_flow_wrote_are_extra_and_they_are_not_drift() -> None:
    sales = converged_sales()
    hour = sales.find("uoms", "name", "Hour")
    sales.add("products", productnumber="P-SALES", name="Made in Sales", _defaultuomid_value=hour)
    sales.add(
        "products",
        productnumber="P-GONE",
        name="Deleted in F&O",
        msdynce_ismaintainedexternally=True,
        _defaultuomid_value=hour,
    )
    sales.add("products", productnumber="P-HALF", msdynce_ismaintainedexternally=True)
    report = await reconciled("products", sales)
    assert drift(report) == [("extra", "productnumber=P-GONE", "", None, None)]
    assert not report.drifted


async def test_the_freight_tax_line_of_an_order_is_not_the_line_flows() -> None:
    sales = converged_sales()
    image = {k: v for k, v in SOURCES["orders-to-sales"][0].image.items() if k != "dataAreaId"}
    header = fno_record("salesorderheader", **image, OrderHeaderTaxAmount=4.2)
    orders = flow("orders-to-sales").template
    main, freight_tax_line = map_event(orders, header, MappingContext(company="usmf")).writes
    sales.store(main)
    sales.store(freight_tax_line)
    assert drift(await reconciled("orders-to-sales", sales, [header])) == []
    lines = await reconciled("order-lines-to-sales", sales)
    assert drift(lines) == [], "the write-in line has no product, which every flow line has"


async def test_repair_publishes_the_fno_snapshots_of_what_drifted_in_sales() -> None:
    sales = converged_sales()
    user_delete("products", "productnumber", "P-2")(sales)
    user_edit("products", "productnumber", "P-1", price=1.0)(sales)
    report = await reconciled("products", sales)
    send = RecordingSender()
    products = flow("products")
    assert await repair(products, report, send, CODEC) == 2
    assert [(topic, key, headers) for topic, _, key, headers in send.sent] == [
        (products.topic, b"usmf|p-2", [FORCE]),
        (products.topic, b"usmf|p-1", [FORCE]),
    ]
    assert products.topic.endswith(".fno.product")


@pytest.mark.parametrize(
    ("name", "fields", "lookups"),
    [
        ("products", ["productnumber", "name", "price"], ["defaultuomid", "transactioncurrencyid"]),
        ("orders-to-sales", ["ordernumber", "msdynce_misctax"], ["customerid", "pricelevelid"]),
        ("order-lines-to-sales", ["sequencenumber", "manualdiscountamount"], ["salesorderid"]),
    ],
)
def test_the_columns_read_include_what_rules_add_and_name_lookups_apart(
    name: str, fields: list[str], lookups: list[str]
) -> None:
    template = flow(name).template
    context = MappingContext(company="usmf")
    writes = [map_event(template, event, context).writes[0] for event in SOURCES[name]]
    columns = target_columns(template, writes)
    assert set(fields) <= set(columns.fields)
    assert set(lookups) <= set(columns.lookups)
    assert not set(columns.fields) & set(columns.lookups)
