"""Every prospect-to-cash template, mapped line by line against the spec's tables.

Each row: template, target field, expected value, and where the spec says so. Source
images carry the lookup columns the resolver adds (``customer.number`` and the like).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source
from bridge.errors import MappingError
from bridge.mapping.engine import BindRef, MappingContext, TargetWrite, WriteKind, map_event
from bridge.mapping.loader import load_templates
from bridge.mapping.rules import FREIGHT_TAX_SEQUENCE

TEMPLATES = load_templates()
CONTEXT = MappingContext(company="usmf")

PRODUCT = {
    "dataAreaId": "usmf",
    "ProductNumber": "D0001",
    "ItemNumber": "D0001",
    "ProductName": "Mid-range speaker",
    "ProductDescription": "Speaker, 2-way",
    "SalesPrice": 220.5,
    "UnitCost": 100.0,
    "CurrencyCode": "USD",
    "SalesUnitSymbol": "ea",
    "SalesUnitDecimalPrecision": 0,
}
CONTACT = {
    "contactid": "c1",
    "msdynce_contactnumber": "CON-01000-ABCDEF",
    "firstname": "Yvonne",
    "lastname": "McKay",
    "fullname": "Yvonne McKay",
    "emailaddress1": "yvonne@example.com",
    "telephone1": "555-0101",
    "address1_city": "Seattle",
    "address1_country": "",
    "jobtitle": "Buyer",
    "company.number": "ACC-01000-BVRCPS",
    "msdynce_iscompanyanaccount": True,
    "msdynce_isactivecustomer": False,
    "currency.code": "USD",
}
QUOTE = {
    "quoteid": "q1",
    "quotenumber": "QUO-01000-AAAAAA",
    "name": "Speakers for Fourth Coffee",
    "statecode": 1,
    "msdynce_hasexternallymaintainedproductsonly": True,
    "customer.number": "ACC-01000-BVRCPS",
    "currency.code": "USD",
    "shipto_country": "",
    "shipto_city": "Redmond",
    "requestdeliveryby": "2026-12-01",
}
QUOTE_LINE = {
    "quotedetailid": "ql1",
    "sequencenumber": 1,
    "quantity": 3.0,
    "priceperunit": 220.5,
    "manualdiscountamount": 10.0,
    "productdescription": "Speaker",
    "_productid_value": "p1",
    "quote.number": "QUO-01000-AAAAAA",
    "quote.state": 1,
    "quote.external_only": True,
    "product.number": "D0001",
    "unit.name": "ea",
}
ORDER = {
    "salesorderid": "o1",
    "ordernumber": "ORD-01000-AAAAAA",
    "name": "Order for Fourth Coffee",
    "msdynce_processingstatus": 647390000,
    "msdynce_hasexternallymaintainedproductsonly": True,
    "msdynce_ismaintainedexternally": False,
    "customer.number": "ACC-01000-BVRCPS",
    "currency.code": "USD",
    "shipto_country": "Germany",
    "quote.number": "QUO-01000-AAAAAA",
}
ORDER_LINE = {
    **{k: v for k, v in QUOTE_LINE.items() if not k.startswith("quote")},
    "salesorderdetailid": "ol1",
    "order.number": "ORD-01000-AAAAAA",
    "order.status": 647390000,
    "order.external_only": True,
    "order.external": False,
}
FNO_ORDER = {
    "dataAreaId": "usmf",
    "SalesOrderNumber": "SO-000123",
    "SalesOrderName": "",
    "OrderingCustomerAccountNumber": "ACC-1",
    "InvoiceCustomerAccountNumber": "ACC-1",
    "CurrencyCode": "USD",
    "SalesOrderProcessingStatus": "Confirmed",
    "OrderingCustomerIsExternallyMaintained": "Yes",
    "InvoiceCustomerIsExternallyMaintained": "Yes",
    "AreTotalsUpdated": "Yes",
    "OrderTotalAmount": 650.0,
    "TotalDiscountAmount": 10.0,
    "OrderTotalTaxAmount": 52.0,
    "OrderTotalChargesAmount": 15.0,
    "OrderHeaderTaxAmount": 1.2,
    "DeliveryAddressCountryRegionId": "DEU",
    "InvoiceAddressCountryRegionId": "USA",
    "RequestedShippingDate": "2026-12-01T12:00:00Z",
}
FNO_ORDER_LINE = {
    "dataAreaId": "usmf",
    "SalesOrderNumber": "SO-000123",
    "LineCreationSequenceNumber": 2,
    "ProductNumber": "D0001",
    "OrderedSalesQuantity": 3.0,
    "SalesUnitSymbol": "h",
    "SalesPrice": 220.5,
    "LineDiscountAmount": 3.33,
    "TotalChargesAmount": -0.01,
    "TotalTaxAmount": 17.6,
    "SalesOrderProcessingStatus": "Confirmed",
    "OrderingCustomerIsExternallyMaintained": "Yes",
    "InvoiceCustomerIsExternallyMaintained": "Yes",
    "AreSalesOrderTotalsUpdated": "Yes",
    "AreTotalsCalculated": "Yes",
}
INVOICE = {
    "dataAreaId": "usmf",
    "InvoiceNumber": "CIV-000042",
    "InvoiceDate": "2026-11-22T12:00:00Z",
    "LedgerVoucher": "V-1",
    "SalesOrderNumber": "SO-000123",
    "InvoiceCustomerAccountNumber": "ACC-1",
    "CurrencyCode": "USD",
    "TotalInvoiceAmount": 702.0,
    "TotalTaxAmount": 52.0,
    "TotalDiscountAmount": 10.0,
    "TotalChargeAmount": 15.0,
    "InvoiceHeaderTaxAmount": 1.2,
    "CustomersOrderReference": "PO-77",
    "InvoiceAddressCountryRegionId": "USA",
    "InvoiceAddressCity": "Redmond",
    "customer.external": "Yes",
}
INVOICE_LINE = {
    "dataAreaId": "usmf",
    "InvoiceNumber": "CIV-000042",
    "LineCreationSequenceNumber": 1,
    "InvoiceDate": "2026-11-22T12:00:00Z",
    "LedgerVoucher": "V-1",
    "ProductNumber": "D0001",
    "InvoicedQuantity": 3.0,
    "SalesPrice": 220.5,
    "SalesUnitSymbol": "ea",
    "LineTotalDiscountAmount": 10.0,
    "LineTotalTaxAmount": 17.6,
    "invoice.customer": "ACC-1",
    "invoice.order": "SO-000123",
    "customer.external": "Yes",
}
IMAGES = {
    "accounts": {"accountid": "a1", "accountnumber": "ACC-01000-BVRCPS", "name": "Fourth Coffee"},
    "products": PRODUCT,
    "contacts": CONTACT,
    "contacts-to-customers": {**CONTACT, "msdynce_isactivecustomer": True},
    "quotes": QUOTE,
    "quote-lines": QUOTE_LINE,
    "orders-to-fno": ORDER,
    "order-lines-to-fno": ORDER_LINE,
    "orders-to-sales": FNO_ORDER,
    "order-lines-to-sales": FNO_ORDER_LINE,
    "invoices": INVOICE,
    "invoice-lines": INVOICE_LINE,
}


def event_for(
    template_name: str, image: dict[str, Any], operation: Operation = Operation.UPDATE
) -> ChangeEvent:
    template = TEMPLATES[template_name]
    entity = source_entity(template.source.system, template.source.entity)
    source = Source(
        system=entity.system,
        entity=entity.entity,
        record_id="r",
        change_time=datetime.now(UTC),
        capture=Capture.WEBHOOK,
        record_version=1,
        company="usmf",
    )
    return ChangeEvent.create(source, operation, after=image)


def writes(template_name: str, image: dict[str, Any] | None = None) -> tuple[TargetWrite, ...]:
    result = map_event(
        TEMPLATES[template_name], event_for(template_name, image or IMAGES[template_name]), CONTEXT
    )
    assert result.skipped is None, result.skipped
    return result.writes


def value(write: TargetWrite, field: str) -> Any:
    found = write.binds.get(field, write.key.get(field, write.body.get(field)))
    return found.value if isinstance(found, BindRef) else found


ROWS = [
    # Products, F&O → Sales (§3)
    ("products", "productnumber", "D0001", "§3 match key: product number"),
    ("products", "name", "Mid-range speaker", "[DW] PRODUCTNAME → name"),
    ("products", "description", "Speaker, 2-way", "[DW] PRODUCTDESCRIPTION → description"),
    ("products", "price", 220.5, "[DW] SALESPRICE → price"),
    ("products", "currentcost", 100.0, "[DW] UNITCOST → currentcost"),
    (
        "products",
        "quantitydecimal",
        0,
        "[DW] SALESUNITDECIMALPRECISION → quantitydecimal (default 0)",
    ),
    ("products", "msdynce_ismaintainedexternally", True, "§3 Is Externally Maintained = Yes"),
    ("products", "defaultuomscheduleid", "Default unit", "§3 unit group default 'Default unit'"),
    ("products", "defaultuomid", "ea", "§3 SalesUnitSymbol → DefaultUnit (value map)"),
    ("products", "transactioncurrencyid", "USD", "[DW] CURRENCYCODE → transactioncurrencyid"),
    # Accounts, Sales → F&O (§4) — field by field in test_mapping_accounts.py
    ("accounts", "PartyNumber", "ACC-01000-BVRCPS", "§11 Party Number = Account Number"),
    # Contacts → contact persons (§5)
    ("contacts", "ContactPersonId", "CON-01000-ABCDEF", "§5 key: Contact Number"),
    ("contacts", "FirstName", "Yvonne", "[DW] FIRSTNAME = firstname"),
    ("contacts", "LastName", "McKay", "[DW] LASTNAME = lastname"),
    (
        "contacts",
        "PrimaryEmailAddress",
        "yvonne@example.com",
        "[DW] PRIMARYEMAILADDRESS = emailaddress1",
    ),
    ("contacts", "PrimaryPhoneNumber", "555-0101", "[DW] PRIMARYPHONENUMBER = telephone1"),
    ("contacts", "PrimaryAddressCountryRegionISOCode", "USA", "§5 legacy default USA"),
    ("contacts", "AssociatedPartyNumber", "ACC-01000-BVRCPS", "§5 company is an account"),
    ("contacts", "IsContactPersonExternallyMaintained", "Yes", "§5 F&O flag"),
    ("contacts", "dataAreaId", "usmf", "company from configuration"),
    # Contacts → customers (§5)
    ("contacts-to-customers", "CustomerAccount", "CON-01000-ABCDEF", "§5 key: Contact Number"),
    ("contacts-to-customers", "PartyType", "Person", "[DW] PartyType == Person"),
    ("contacts-to-customers", "CustomerGroupId", "10", "§5 default 10"),
    ("contacts-to-customers", "LanguageId", "en-us", "§5 default en-us"),
    ("contacts-to-customers", "PersonFirstName", "Yvonne", "name"),
    ("contacts-to-customers", "SalesCurrencyCode", "USD", "[DW] SALESCURRENCYCODE"),
    ("contacts-to-customers", "IsExternallyMaintained", "Yes", "§13 externally maintained"),
    # Quotes (§6)
    ("quotes", "SalesQuotationNumber", "QUO-01000-AAAAAA", "§6 key: quote number"),
    (
        "quotes",
        "SalesQuotationName",
        "Speakers for Fourth Coffee",
        "[DW] SALESQUOTATIONNAME = name",
    ),
    (
        "quotes",
        "RequestingCustomerAccountNumber",
        "ACC-01000-BVRCPS",
        "[DW] customerid.Account(accountnumber)",
    ),
    ("quotes", "InvoiceCustomerAccountNumber", "ACC-01000-BVRCPS", "invoice account"),
    ("quotes", "CurrencyCode", "USD", "[DW] CURRENCYCODE"),
    (
        "quotes",
        "DeliveryAddressCountryRegionISOCode",
        "US",
        "§6 Shipto_country value map, Blank → US",
    ),
    ("quotes", "DeliveryAddressCity", "Redmond", "ship-to address"),
    ("quotes", "RequestedShippingDate", "2026-12-01T12:00:00Z", "requested delivery date"),
    (
        "quote-lines",
        "SalesQuotationNumber",
        "QUO-01000-AAAAAA",
        "§13 line key: quote number + sequence",
    ),
    ("quote-lines", "LineCreationSequenceNumber", 1, "§13 line key: sequencenumber"),
    ("quote-lines", "ProductNumber", "D0001", "[DW] PRODUCTNUMBER = productid.msdyn_productnumber"),
    ("quote-lines", "RequestedSalesQuantity", 3.0, "[DW] REQUESTEDSALESQUANTITY = quantity"),
    ("quote-lines", "SalesUnitSymbol", "ea", "§6 uomid.name → SalesUnitSymbol value map"),
    ("quote-lines", "SalesPrice", 220.5, "[DW] SALESPRICE = priceperunit"),
    ("quote-lines", "LineDiscountAmount", 3.33, "§7.3 discount / quantity"),
    ("quote-lines", "TotalChargesAmount", -0.01, "§7.3 rounding remainder to charges"),
    # Orders, Sales → F&O (§7)
    ("orders-to-fno", "SalesOrderNumber", "ORD-01000-AAAAAA", "[DW] SALESORDERNUMBER"),
    (
        "orders-to-fno",
        "OrderingCustomerAccountNumber",
        "ACC-01000-BVRCPS",
        "[DW] ORDERINGCUSTOMERACCOUNTNUMBER",
    ),
    ("orders-to-fno", "DeliveryAddressCountryRegionISOCode", "DE", "§7.4 Shipto_country value map"),
    ("orders-to-fno", "QuotationNumber", "QUO-01000-AAAAAA", "[DW] QUOTATIONNUMBER"),
    ("order-lines-to-fno", "SalesOrderNumber", "ORD-01000-AAAAAA", "line key: order number"),
    ("order-lines-to-fno", "LineCreationSequenceNumber", 1, "line key: sequence"),
    ("order-lines-to-fno", "OrderedSalesQuantity", 3.0, "[DW] ORDEREDSALESQUANTITY = quantity"),
    ("order-lines-to-fno", "LineDiscountAmount", 3.33, "§7.3: $10.00 over qty 3 → $3.33"),
    ("order-lines-to-fno", "TotalChargesAmount", -0.01, "§7.3: sales charge −$0.01"),
    # Orders, F&O → Sales (§7)
    ("orders-to-sales", "ordernumber", "SO-000123", "key: order number"),
    ("orders-to-sales", "name", "SO-000123", "name falls back to the number"),
    ("orders-to-sales", "customerid", "ACC-1", "[DW] ORDERINGCUSTOMERACCOUNTNUMBER = customerid"),
    ("orders-to-sales", "pricelevelid", "CRM Service USA (sample)", "§7.4 price list default"),
    ("orders-to-sales", "msdynce_processingstatus", 647390001, "§7.2 Confirmed"),
    ("orders-to-sales", "msdynce_ismaintainedexternally", True, "§7.2 came from F&O"),
    ("orders-to-sales", "totalamount", 650.0, "[DW] ORDERTOTALAMOUNT > totalamount"),
    ("orders-to-sales", "discountamount", 10.0, "[DW] TOTALDISCOUNTAMOUNT > discountamount"),
    ("orders-to-sales", "totaltax", 52.0, "[DW] ORDERTOTALTAXAMOUNT > totaltax"),
    ("orders-to-sales", "freightamount", 15.0, "[DW] ORDERTOTALCHARGESAMOUNT > freightamount"),
    ("orders-to-sales", "msdynce_misctax", 1.2, "§7.3 header tax held in msdynce_misctax"),
    ("orders-to-sales", "shipto_country", "Germany", "§7.4 DeliveryCountryRegionId value map"),
    ("orders-to-sales", "billto_country", "United States", "§7.4 InvoiceCountryRegionId value map"),
    (
        "orders-to-sales",
        "requestdeliveryby",
        "2026-12-01",
        "REQUESTEDSHIPPINGDATE = requestdeliveryby",
    ),
    ("order-lines-to-sales", "salesorderid", "SO-000123", "line key: order"),
    (
        "order-lines-to-sales",
        "sequencenumber",
        2,
        "line key: LINECREATIONSEQUENCENUMBER = sequencenumber",
    ),
    ("order-lines-to-sales", "productid", "D0001", "PRODUCTNUMBER = productid"),
    ("order-lines-to-sales", "uomid", "Hour", "§7.4 SalesUnitSymbol → unit value map"),
    ("order-lines-to-sales", "quantity", 3.0, "ORDEREDSALESQUANTITY = quantity"),
    ("order-lines-to-sales", "manualdiscountamount", 10.0, "§7.3: (3 × $3.33) + $0.01 = $10.00"),
    ("order-lines-to-sales", "ispriceoverridden", True, "[DW] none >> ispriceoverridden = true"),
    # Invoices, F&O → Sales (§8)
    ("invoices", "invoicenumber", "CIV-000042", "§8 key: invoice number"),
    ("invoices", "msdynce_invoicedate", "2026-11-22", "§8 invoice date"),
    ("invoices", "salesorderid", "SO-000123", "§8 related order"),
    ("invoices", "customerid", "ACC-1", "INVOICECUSTOMERACCOUNTNUMBER > customerid"),
    ("invoices", "pricelevelid", "CRM Service USA (sample)", "§8 USD = CRM Service USA (sample)"),
    ("invoices", "totalamount", 702.0, "TOTALINVOICEAMOUNT"),
    ("invoices", "totaltax", 52.0, "TOTALTAXAMOUNT"),
    ("invoices", "freightamount", 15.0, "TOTALCHARGEAMOUNT > freightamount"),
    ("invoices", "description", "PO-77", "CUSTOMERSORDERREFERENCE > description"),
    ("invoices", "ispricelocked", False, "[DW] none >> ispricelocked False"),
    ("invoice-lines", "invoiceid", "CIV-000042", "line key: invoice"),
    ("invoice-lines", "sequencenumber", 1, "LINECREATIONSEQUENCENUMBER > sequencenumber"),
    ("invoice-lines", "quantity", 3.0, "INVOICEDQUANTITY > quantity"),
    (
        "invoice-lines",
        "manualdiscountamount",
        10.0,
        "LINETOTALDISCOUNTAMOUNT > manualdiscountamount",
    ),
    ("invoice-lines", "tax", 17.6, "LINETOTALTAXAMOUNT > tax"),
    ("invoice-lines", "msdynce_invoicenumber", "CIV-000042", "§10 line invoice number"),
]


@pytest.mark.parametrize(
    ("template", "field", "expected", "why"), ROWS, ids=[f"{r[0]}:{r[1]}" for r in ROWS]
)
def test_template_field(template: str, field: str, expected: Any, why: str) -> None:
    assert value(writes(template)[0], field) == expected, why


@pytest.mark.parametrize(
    ("template", "change", "reason"),
    [
        ("quotes", {"statecode": 0}, "statecode"),
        ("quotes", {"msdynce_hasexternallymaintainedproductsonly": False}, "externally"),
        ("quote-lines", {"quote.state": 0}, "quote.state"),
        ("orders-to-fno", {"msdynce_processingstatus": 647390011}, "processingstatus"),
        ("orders-to-fno", {"msdynce_ismaintainedexternally": True}, "ismaintainedexternally"),
        ("order-lines-to-fno", {"_productid_value": None}, "productid"),
        ("orders-to-sales", {"SalesOrderProcessingStatus": "Active"}, "ProcessingStatus"),
        (
            "orders-to-sales",
            {"OrderingCustomerIsExternallyMaintained": "No"},
            "ExternallyMaintained",
        ),
        ("orders-to-sales", {"AreTotalsUpdated": "No"}, "AreTotalsUpdated"),
        ("invoices", {"SalesOrderNumber": ""}, "SalesOrderNumber"),
        ("contacts", {"msdynce_iscompanyanaccount": False}, "iscompanyanaccount"),
        ("contacts", {"msdynce_isactivecustomer": True}, "isactivecustomer"),
        ("contacts-to-customers", {"msdynce_isactivecustomer": False}, "isactivecustomer"),
        ("products", {"SalesUnitSymbol": ""}, "SalesUnitSymbol"),
    ],
)
def test_selection_filters(template: str, change: dict[str, Any], reason: str) -> None:
    image = {**IMAGES[template], **change}
    result = map_event(TEMPLATES[template], event_for(template, image), CONTEXT)
    assert result.writes == ()
    assert result.skipped is not None and reason in result.skipped


def test_product_goes_on_the_first_price_list_of_its_currency() -> None:
    main, price = writes("products")
    assert price.entity_set == "productpricelevels"
    assert price.kind is WriteKind.UPSERT
    (candidate,) = price.key["pricelevelid"].candidates
    assert candidate.via is not None and candidate.via.entity_set == "transactioncurrencies"
    assert candidate.order_by == "name"
    assert value(price, "amount") == 220.5


def test_invoice_marks_the_order_invoiced() -> None:
    also = writes("invoices")[-1]
    assert (also.entity_set, also.kind) == ("salesorders", WriteKind.UPDATE)
    assert also.body["msdynce_processingstatus"] == 647390003


def test_freight_tax_becomes_one_write_in_line() -> None:
    header, line = writes("orders-to-sales")
    assert line.entity_set == "salesorderdetails"
    assert line.key["sequencenumber"] == FREIGHT_TAX_SEQUENCE
    assert line.body["productdescription"] == "Freight Tax"
    assert line.body["priceperunit"] == 1.2 and line.body["msdynce_ismisctax"] is True
    assert line.kind is WriteKind.UPSERT


def test_order_created_in_sales_keeps_its_origin_flag() -> None:
    header = writes("orders-to-sales")[0]
    assert "msdynce_ismaintainedexternally" in header.create_only


def test_sales_edits_after_confirmation_lose() -> None:
    guard = writes("orders-to-fno")[0].guard
    assert guard is not None and "Confirmed" in guard.conditions[0].value


@pytest.mark.parametrize(
    ("template", "requirement"),
    [
        ("quote-lines", "CDSSalesQuotationHeaders"),
        ("order-lines-to-fno", "CDSSalesOrderHeaders"),
        ("contacts", "CustomersV3"),
    ],
)
def test_lines_require_their_header(template: str, requirement: str) -> None:
    assert writes(template)[0].requires[0][0] == requirement


def test_unknown_processing_status_is_a_mapping_error() -> None:
    template = TEMPLATES["orders-to-sales"].override({"filter": []})
    event = event_for("orders-to-sales", {**FNO_ORDER, "SalesOrderProcessingStatus": "Teleported"})
    with pytest.raises(MappingError, match="msdynce_processingstatus"):
        map_event(template, event, CONTEXT)
