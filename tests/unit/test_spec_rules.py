"""The spec's rules, to the letter: selections, defaults, dates, the Freight Tax line,
invoices, run order. Each row or test cites the line of ``prospect-to-cash.md`` it checks
(section and a short quote); decisions where the spec is ambiguous are in
``docs/architecture.md`` ("Spec rules implemented, and not").

Selection comes before lookups (:func:`~bridge.mapping.engine.selection_miss`): a condition
on the record's own attributes is judged before any lookup is resolved, a condition on a
lookup's column once that lookup is resolved. So a record the spec leaves out is skipped
(its version is not recorded; it may qualify later) and never dead-lettered because a
lookup it should not need failed.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bridge.mapping.engine import (
    WriteKind,
    lookup_columns,
    lookup_match,
    map_event,
    selection_miss,
)
from bridge.mapping.rules import FREIGHT_TAX_SEQUENCE
from tests.unit.test_mapping_templates import (
    CONTACT,
    CONTEXT,
    IMAGES,
    TEMPLATES,
    event_for,
    value,
    writes,
)

# An image as captured, before the processor adds any lookup column.
RAW = {
    name: {k: v for k, v in image.items() if TEMPLATES[name].lookup_of(k) is None}
    for name, image in IMAGES.items()
}
CONTACT_UNDER_A_CONTACT = {
    **RAW["contacts"],
    "_parentcustomerid_value": "c-parent",
    "_parentcustomerid_entity": "contact",
    "msdynce_iscompanyanaccount": False,
}

# (template, change to the image, lookups resolved so far, the filter it misses, spec)
BEFORE_LOOKUPS = [
    (
        "contacts",
        {"_parentcustomerid_entity": "contact", "msdynce_iscompanyanaccount": False},
        (),
        "msdynce_iscompanyanaccount",
        "§5 Selection: 'Company (parent account/contact) points to an Account, not a Contact'",
    ),
    (
        "contacts",
        {"msdynce_isactivecustomer": True},
        (),
        "msdynce_isactivecustomer",
        "§5 Selection (Contact → Contact): 'Is Active Customer = No'",
    ),
    (
        "contacts-to-customers",
        {"msdynce_isactivecustomer": False},
        (),
        "msdynce_isactivecustomer",
        "§5 Selection (Contact → Customer): 'Is Active Customer = Yes'",
    ),
    (
        "order-lines-to-fno",
        {"msdynce_ismisctax": True},
        (),
        "msdynce_ismisctax",
        "§7.3 'write-in product named \"Freight Tax\"' is F&O's header tax, not an order line",
    ),
    (
        "order-lines-to-fno",
        {"_productid_value": None},
        (),
        "_productid_value",
        "§7.1 Selection: 'there can be no write-in products'",
    ),
    (
        "quote-lines",
        {"_productid_value": None},
        (),
        "_productid_value",
        "§6 Selection: 'all quote products are externally maintained'",
    ),
    (
        "orders-to-fno",
        {"msdynce_processingstatus": 647390011},
        (),
        "msdynce_processingstatus",
        "§7.1 Selection: 'Only orders that are activated in Sales'",
    ),
]


@pytest.mark.parametrize(
    ("template", "change", "resolved", "missed", "spec"),
    BEFORE_LOOKUPS,
    ids=[f"{r[0]}:{r[3]}" for r in BEFORE_LOOKUPS],
)
def test_left_out_before_any_lookup(
    template: str, change: dict[str, Any], resolved: tuple[str, ...], missed: str, spec: str
) -> None:
    reason = selection_miss(TEMPLATES[template], {**RAW[template], **change}, resolved)
    assert reason is not None and missed in reason, spec


@pytest.mark.parametrize(
    "template", ["contacts", "quote-lines", "order-lines-to-fno", "orders-to-fno", "quotes"]
)
def test_a_selected_record_passes_before_its_lookups(template: str) -> None:
    """Conditions on lookup columns wait for their lookup: nothing is judged on a column
    that is not there yet."""
    assert selection_miss(TEMPLATES[template], RAW[template], resolved=()) is None


def test_a_contact_whose_parent_is_a_contact_is_skipped_not_a_mapping_error() -> None:
    """§5 Selection: 'Company ... points to an Account, not a Contact'. Without the
    ``company`` lookup (which reads accounts only) the contact maps to a skip, not to a
    missing required ``AssociatedPartyNumber`` nor a missing prerequisite."""
    result = map_event(
        TEMPLATES["contacts"], event_for("contacts", CONTACT_UNDER_A_CONTACT), CONTEXT
    )
    assert result.writes == ()
    assert result.skipped is not None and "msdynce_iscompanyanaccount" in result.skipped


def test_a_contact_under_an_account_still_maps_once_its_company_is_resolved() -> None:
    image = {**RAW["contacts"], "_parentcustomerid_entity": "account"}
    assert selection_miss(TEMPLATES["contacts"], image, resolved=()) is None
    result = map_event(
        TEMPLATES["contacts"],
        event_for("contacts", {**image, "company.number": CONTACT["company.number"]}),
        CONTEXT,
    )
    assert result.skipped is None


def test_a_condition_on_a_lookup_column_is_judged_once_that_lookup_is_resolved() -> None:
    template = TEMPLATES["quote-lines"]
    draft = {**IMAGES["quote-lines"], "quote.state": 0}
    assert selection_miss(template, draft, resolved=()) is None
    assert selection_miss(template, draft, resolved=("quote",)) == "filter quote.state eq 1"
    assert selection_miss(template, draft) == "filter quote.state eq 1", "None = all resolved"


# F&O writes "no date" as 1900-01-01 (dynamics-apis.md, F&O OData: 'Empty dates appear as
# "1900-01-01T12:00:00Z"'; virtual tables: 'F&O empty date 1900-01-01 → null').
EMPTY_DATES = [
    "1900-01-01T12:00:00Z",
    "1900-01-01T00:00:00Z",
    "1900-01-01",
    "1899-12-31T16:00:00-08:00",
    "0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("empty", EMPTY_DATES)
@pytest.mark.parametrize(
    ("template", "source", "target"),
    [
        ("orders-to-sales", "RequestedShippingDate", "requestdeliveryby"),
        ("invoices", "InvoiceDate", "msdynce_invoicedate"),
        ("invoice-lines", "InvoiceDate", "msdynce_invoicedate"),
    ],
)
def test_an_empty_f_and_o_date_is_not_copied_as_a_date(
    template: str, source: str, target: str, empty: str
) -> None:
    (main, *_) = writes(template, {**IMAGES[template], source: empty})
    assert main.body[target] is None, "dynamics-apis.md: 'F&O empty date 1900-01-01 → null'"


@pytest.mark.parametrize(
    ("date", "expected"),
    [("2026-12-01T12:00:00Z", "2026-12-01"), ("1900-01-02T12:00:00Z", "1900-01-02")],
)
def test_a_real_f_and_o_date_is_copied(date: str, expected: str) -> None:
    main = writes("orders-to-sales", {**IMAGES["orders-to-sales"], "RequestedShippingDate": date})
    assert main[0].body["requestdeliveryby"] == expected


# §7.3: 'Header-level tax from F&O, such as tax on freight, is synced as a write-in product
# named "Freight Tax" carrying the tax amount'; [SOL] 'Only one Freight Tax line is allowed
# per order'; §13 invariant 7: 'The sync is upsert-only'.
FREIGHT_TAX = [
    (1.2, WriteKind.UPSERT, 1.2, "§7.3 the line carries the header tax amount"),
    (0, WriteKind.UPDATE_IF_EXISTS, 0.0, "§7.3/§13.7 no header tax: an existing line is zeroed"),
    (None, WriteKind.UPDATE_IF_EXISTS, 0.0, "§7.3 no header tax at all counts as zero"),
]


@pytest.mark.parametrize(("tax", "kind", "price", "spec"), FREIGHT_TAX)
def test_the_freight_tax_line_carries_the_header_tax_or_is_zeroed(
    tax: float | None, kind: WriteKind, price: float, spec: str
) -> None:
    header, line = writes(
        "orders-to-sales", {**IMAGES["orders-to-sales"], "OrderHeaderTaxAmount": tax}
    )
    assert (line.entity_set, line.key["sequencenumber"]) == (
        "salesorderdetails",
        FREIGHT_TAX_SEQUENCE,
    ), "[SOL] one Freight Tax line per order"
    assert line.kind is kind, spec
    assert line.body["priceperunit"] == price, spec
    assert line.body["productdescription"] == "Freight Tax", "§7.3 'named \"Freight Tax\"'"
    assert header.body["msdynce_misctax"] == price, "§7.3 [SOL] header amount in msdynce_misctax"


# Defaults spelled as the spec spells them: (template, source change, field, value, spec).
NO_DATE = {"requestdeliveryby": None}
DEFAULTS = [
    (
        "products",
        {},
        "defaultuomscheduleid",
        "Default unit",
        "§3 defaultuomscheduleid.name: 'Template default \"Default unit\"'",
    ),
    (
        "quotes",
        NO_DATE,
        "RequestedShippingDate",
        "2020-01-01T12:00:00Z",
        "§6 QuoteHeader: 'Requested delivery date | required in F&O; default 1/1/2020'",
    ),
    (
        "quotes",
        {"requestdeliveryby": "1900-01-01"},
        "RequestedShippingDate",
        "2020-01-01T12:00:00Z",
        "§6 default 1/1/2020 ('must be a fixed date'); an empty date is no date",
    ),
    (
        "quote-lines",
        {},
        "RequestedShippingDate",
        "2020-01-01T12:00:00Z",
        "§6 QuoteLine: 'Requested delivery date | default 1/1/2020'",
    ),
    (
        "quote-lines",
        {"requestdeliveryby": "2026-12-01"},
        "RequestedShippingDate",
        "2026-12-01T12:00:00Z",
        "[DW] quotation lines: REQUESTEDSHIPPINGDATE = requestdeliveryby",
    ),
    (
        "orders-to-fno",
        NO_DATE,
        "RequestedShippingDate",
        "2020-01-01T12:00:00Z",
        "§6 default 1/1/2020, for orders too (decision in architecture.md)",
    ),
    (
        "orders-to-sales",
        {},
        "statecode",
        0,
        "§7.4 F&O→Sales SalesHeader: 'Statecode [Status] | default Active' (salesorder 0 Active)",
    ),
]


@pytest.mark.parametrize(
    ("template", "change", "field", "expected", "spec"),
    DEFAULTS,
    ids=[f"{r[0]}:{r[2]}:{i}" for i, r in enumerate(DEFAULTS)],
)
def test_defaults_as_the_spec_spells_them(
    template: str, change: dict[str, Any], field: str, expected: Any, spec: str
) -> None:
    (main, *_) = writes(template, {**IMAGES[template], **change})
    assert value(main, field) == expected, spec


# Filters of the F&O → Sales order flows, header and lines alike (§7.1 F&O → Sales
# selection, §13 invariant 4): (template, change, the filter it misses, spec).
ORDERS_TO_SALES = [
    (
        "orders-to-sales",
        {"AreTotalsUpdated": "No"},
        "AreTotalsUpdated",
        "§7.1 '(3) Calculate sales totals must have run since the order was created or changed'",
    ),
    (
        "order-lines-to-sales",
        {"AreSalesOrderTotalsUpdated": "No"},
        "AreSalesOrderTotalsUpdated",
        "§1.2 'Only orders whose totals have been calculated are synced to Sales' (the order's)",
    ),
    (
        "order-lines-to-sales",
        {"AreTotalsCalculated": "No"},
        "AreTotalsCalculated",
        "§13 'FO→CE only when ≥ Confirmed and totals calculated' (the line's own)",
    ),
    (
        "order-lines-to-sales",
        {"AreTotalsCalculated": None},
        "AreTotalsCalculated",
        "§7.1 totals not known to be calculated are not calculated",
    ),
    (
        "order-lines-to-sales",
        {"SalesOrderProcessingStatus": "Active"},
        "SalesOrderProcessingStatus",
        "§7.1 '(2) the order must be Confirmed or in a later processing status'",
    ),
    (
        "order-lines-to-sales",
        {"InvoiceCustomerIsExternallyMaintained": "No"},
        "InvoiceCustomerIsExternallyMaintained",
        "§7.1 '(1) both the ordering and the invoicing customer must originate in Sales'",
    ),
    (
        "order-lines-to-sales",
        {"OrderingCustomerIsExternallyMaintained": "No"},
        "OrderingCustomerIsExternallyMaintained",
        "§7.1 '(1) both the ordering and the invoicing customer must originate in Sales'",
    ),
]


@pytest.mark.parametrize(
    ("template", "change", "missed", "spec"),
    ORDERS_TO_SALES,
    ids=[f"{r[0]}:{r[2]}:{i}" for i, r in enumerate(ORDERS_TO_SALES)],
)
def test_orders_reach_sales_only_confirmed_with_totals_calculated(
    template: str, change: dict[str, Any], missed: str, spec: str
) -> None:
    result = map_event(
        TEMPLATES[template], event_for(template, {**IMAGES[template], **change}), CONTEXT
    )
    assert result.writes == (), spec
    assert result.skipped is not None and missed in result.skipped, spec


# §8 Selection: 'The F&O entities contain only invoices for externally maintained customers:
# the accounts page says the customer flag "is used to filter invoices that are
# synchronized to Sales"'; §13: 'invoice account (must be externally maintained)'. The
# bridge reads SalesInvoiceHeadersV2/SalesInvoiceV2Lines, which hold every invoice, so the
# templates read the invoice customer's IsExternallyMaintained (lines: through their header).
INVOICES = [
    (
        "invoices",
        {"customer.external": "No"},
        ("customer",),
        "customer.external",
        "§8 'only invoices for externally maintained customers'",
    ),
    (
        "invoices",
        {"customer.external": None},
        ("customer",),
        "customer.external",
        "§8 a customer not known to be externally maintained is not",
    ),
    (
        "invoices",
        {"SalesOrderNumber": ""},
        (),
        "SalesOrderNumber",
        "§12 [DW] Sales invoice headers V2: 'Source filter SalesOrderNumber != \"\"'",
    ),
    (
        "invoice-lines",
        {"customer.external": "No"},
        ("invoice", "customer"),
        "customer.external",
        "§8 Entity set: 'Externally maintained customer sales invoice lines'",
    ),
    (
        "invoice-lines",
        {"invoice.order": None},
        ("invoice",),
        "invoice.order",
        "§8 lines follow their header's selection",
    ),
]


@pytest.mark.parametrize(
    ("template", "change", "resolved", "missed", "spec"),
    INVOICES,
    ids=[f"{r[0]}:{r[3]}:{i}" for i, r in enumerate(INVOICES)],
)
def test_invoices_only_for_externally_maintained_customers(
    template: str, change: dict[str, Any], resolved: tuple[str, ...], missed: str, spec: str
) -> None:
    image = {**IMAGES[template], **change}
    reason = selection_miss(TEMPLATES[template], image, resolved)
    assert reason is not None and missed in reason, spec
    assert map_event(TEMPLATES[template], event_for(template, image), CONTEXT).writes == ()


@pytest.mark.parametrize("template", ["invoices", "invoice-lines"])
def test_an_invoice_of_an_externally_maintained_customer_is_synced(template: str) -> None:
    assert selection_miss(TEMPLATES[template], RAW[template], resolved=()) is None
    assert writes(template)[0].entity_set in ("invoices", "invoicedetails")


def test_f_and_o_lookup_reads_the_record_its_match_names() -> None:
    lookup = TEMPLATES["invoice-lines"].fno_lookups[0]
    line = IMAGES["invoice-lines"]
    assert lookup_match(lookup, line) == {
        "dataAreaId": "usmf",
        "InvoiceNumber": "CIV-000042",
        "InvoiceDate": "2026-11-22T12:00:00Z",
        "LedgerVoucher": "V-1",
    }
    assert lookup_match(lookup, {**line, "InvoiceNumber": " "}) is None, "blank names none"
    header = {"InvoiceCustomerAccountNumber": "ACC-1", "SalesOrderNumber": "SO-1"}
    assert lookup_columns(lookup, header) == {"invoice.customer": "ACC-1", "invoice.order": "SO-1"}
    assert lookup_columns(lookup, None) == {"invoice.customer": None, "invoice.order": None}


def test_a_lookup_may_use_only_lookups_resolved_before_it() -> None:
    lookups = TEMPLATES["invoice-lines"].model_dump(mode="json")["fno_lookups"]
    with pytest.raises(ValidationError, match="before they resolve"):
        TEMPLATES["invoice-lines"].override({"fno_lookups": lookups[::-1]})
    with pytest.raises(ValidationError, match="used twice"):
        TEMPLATES["invoice-lines"].override({"fno_lookups": [lookups[0], lookups[0]]})


# §8 SalesInvoiceHeader mappings: (change to the F&O invoice, field, expected, spec).
INVOICE_HEADER = [
    (
        {},
        "billto_country",
        "United States",
        "§8 'InvoiceCountryRegionId | BillingAddress_Country | value map of several countries'",
    ),
    (
        {"InvoiceAddressCountryRegionId": "DEU"},
        "billto_country",
        "Germany",
        "§8 'InvoiceCountryRegionId | BillingAddress_Country | value map of several countries'",
    ),
    ({}, "billto_city", "Redmond", "[DW] invoice headers: 'INVOICEADDRESS* > billto_*'"),
    (
        {},
        "ownerid",
        "SO-000123",
        "§8 'the owner of the sales order becomes the owner of the invoice'",
    ),
    (
        {"CurrencyCode": "usd"},
        "pricelevelid",
        "CRM Service USA (sample)",
        "§8 'value map based on currency: USD = CRM Service USA (sample)'",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "expected", "spec"),
    INVOICE_HEADER,
    ids=[f"{r[1]}:{i}" for i, r in enumerate(INVOICE_HEADER)],
)
def test_invoice_header(change: dict[str, Any], field: str, expected: Any, spec: str) -> None:
    assert value(writes("invoices", {**IMAGES["invoices"], **change})[0], field) == expected, spec


def test_the_invoice_owner_is_the_owner_of_its_sales_order() -> None:
    """§8: 'When a related invoice from F&O is synced, the Sales order status changes
    automatically to Invoiced, and the owner of the sales order becomes the owner of the
    invoice.' The owner is bound through the order: the user or team that the order with
    the invoice's order number names in ``_ownerid_value``."""
    invoice, invoiced = writes("invoices")
    owner = invoice.binds["ownerid"]
    assert [(c.nav, c.entity_set) for c in owner.candidates] == [
        ("ownerid", "systemusers"),
        ("ownerid", "teams"),
    ]
    for candidate in owner.candidates:
        assert candidate.through is not None
        assert (candidate.through.entity_set, candidate.through.match) == (
            "salesorders",
            "ordernumber",
        )
        assert candidate.through.field == "_ownerid_value"
    assert invoiced.body["msdynce_processingstatus"] == 647390003, "§8 order status Invoiced"


def test_tax_on_invoice_header_charges_is_not_synced() -> None:
    """§8 Rules: 'Tax on header charges is not synced (Sales has no header-level tax)'."""
    invoice = writes("invoices", {**IMAGES["invoices"], "InvoiceHeaderTaxAmount": 5.0})[0]
    assert "msdynce_misctax" not in invoice.body


# §1.4 run order: every template's prerequisites ('Must run before it'), header before lines.
RUN_ORDER = [
    ("products", set(), "§1.4 #1 Products: 'none'"),
    ("accounts", set(), "§1.4 #2 Accounts: 'none'"),
    ("contacts", {"accounts"}, "§1.4 #3 Contacts: 'Accounts (Sales to Fin and Ops)'"),
    ("contacts-to-customers", {"accounts"}, "§1.4 #3 Contacts to Customer: 'Accounts'"),
    (
        "quotes",
        {"products", "accounts", "contacts-to-customers"},
        "§1.4 #4 'Products - Direct; Accounts - Direct (if used); Contacts to Customers'",
    ),
    ("quote-lines", {"quotes"}, "§1.4 'QuoteHeader→QuoteLine'"),
    (
        "orders-to-fno",
        {"products", "accounts", "contacts-to-customers"},
        "§1.4 #5 'Products - Direct; Accounts - Direct (if used); Contacts to Customers'",
    ),
    (
        "orders-to-sales",
        {"products", "accounts", "contacts-to-customers"},
        "§1.4 #5 'Products - Direct; Accounts - Direct (if used); Contacts to Customers'",
    ),
    ("order-lines-to-fno", {"orders-to-fno"}, "§1.4 'OrderHeader→OrderLine'"),
    ("order-lines-to-sales", {"orders-to-sales"}, "§1.4 'OrderHeader→OrderLine'"),
    (
        "invoices",
        {"products", "accounts", "contacts", "orders-to-sales", "order-lines-to-sales"},
        "§1.4 #6 'Products; Accounts (if used); Contacts (Sales to …) (if used); "
        "Sales order header and lines (F&O to Sales)'",
    ),
    ("invoice-lines", {"invoices"}, "§1.4 'SalesInvoiceHeader→SalesInvoiceLine'"),
]


@pytest.mark.parametrize(("template", "before", "spec"), RUN_ORDER, ids=[r[0] for r in RUN_ORDER])
def test_run_order(template: str, before: set[str], spec: str) -> None:
    assert set(TEMPLATES[template].depends_on) == before, spec


def test_every_template_has_its_run_order_row() -> None:
    assert {row[0] for row in RUN_ORDER} == set(TEMPLATES)


def test_a_bind_names_exactly_one_way_to_its_record() -> None:
    through = {"entity_set": "salesorders", "match": "ordernumber", "field": "_ownerid_value"}
    both = {"nav": "ownerid", "entity_set": "systemusers", "match": "x", "through": through}
    with pytest.raises(ValidationError, match="exactly one of match, via or through"):
        TEMPLATES["invoices"].override(
            {"fields": [{"target": "ownerid", "source": "SalesOrderNumber", "bind": [both]}]}
        )


@pytest.mark.parametrize("template", ["quotes", "orders-to-fno"])
def test_quotes_and_orders_take_the_customers_language(template: str) -> None:
    """§4: 'a language is required to generate quotations and sales orders; by default the
    customer's language from the order header is used' (the customer's LanguageId, template
    default en-us). Writing en-us on the document would override a customer's language."""
    assert "LanguageId" not in writes(template)[0].body
