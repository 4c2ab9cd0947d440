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
    ("products", "productnumber", "D0001", "§3 Match key: 'Product number'"),
    ("products", "name", "Mid-range speaker", "§3 [DW] 'PRODUCTNAME→name'"),
    ("products", "description", "Speaker, 2-way", "§3 [DW] 'PRODUCTDESCRIPTION→description'"),
    ("products", "price", 220.5, "§3 [DW] 'SALESPRICE→price'"),
    ("products", "currentcost", 100.0, "§3 [DW] 'UNITCOST→currentcost'"),
    (
        "products",
        "quantitydecimal",
        0,
        "§3 [DW] 'SALESUNITDECIMALPRECISION→quantitydecimal (default 0)'",
    ),
    (
        "products",
        "msdynce_ismaintainedexternally",
        True,
        "§3 'Is Externally Maintained ... Set to Yes by default on import'",
    ),
    (
        "products",
        "defaultuomscheduleid",
        "Default unit",
        "§3 unit group: 'Template default \"Default unit\"'",
    ),
    (
        "products",
        "defaultuomid",
        "ea",
        "§3 'SalesUnitSymbol | DefaultUnit (Name) | value map for the selling UOM'",
    ),
    (
        "products",
        "transactioncurrencyid",
        "USD",
        "§3 'currency ... set to the accounting currency in the legal entity'",
    ),
    # Accounts, Sales → F&O (§4) — field by field in test_mapping_accounts.py
    (
        "accounts",
        "PartyNumber",
        "ACC-01000-BVRCPS",
        "§11 Account: 'Party Number = Account Number'",
    ),
    # Contacts → contact persons (§5)
    (
        "contacts",
        "ContactPersonId",
        "CON-01000-ABCDEF",
        "§5 Key: 'Sales Contact Number (msdynce_contactnumber)'",
    ),
    ("contacts", "FirstName", "Yvonne", "§12 [DW] CDS Contacts V2: 'FIRSTNAME ... = firstname'"),
    ("contacts", "LastName", "McKay", "§12 [DW] CDS Contacts V2: 'LASTNAME = lastname'"),
    (
        "contacts",
        "PrimaryEmailAddress",
        "yvonne@example.com",
        "§12 [DW] CDS Contacts V2: 'PRIMARYEMAILADDRESS = emailaddress1'",
    ),
    (
        "contacts",
        "PrimaryPhoneNumber",
        "555-0101",
        "§12 [DW] CDS Contacts V2: 'PRIMARYPHONENUMBER = telephone1'",
    ),
    (
        "contacts",
        "PrimaryAddressCountryRegionISOCode",
        "USA",
        "§5 Contact→Contact (legacy): 'PrimaryAddressCountryRegionISOCode | default USA'",
    ),
    (
        "contacts",
        "AssociatedPartyNumber",
        "ACC-01000-BVRCPS",
        "§13 Contact: 'No + account parent → FO contact person of that customer'",
    ),
    (
        "contacts",
        "IsContactPersonExternallyMaintained",
        "Yes",
        "§5 F&O flag: 'IsContactPersonExternallyMaintained tags contacts maintained in Sales'",
    ),
    (
        "contacts",
        "dataAreaId",
        "usmf",
        "§1.1 'organization mapping is between the F&O legal entity (company) and the Sales ... "
        "business unit'",
    ),
    # Contacts → customers (§5)
    (
        "contacts-to-customers",
        "CustomerAccount",
        "CON-01000-ABCDEF",
        "§5 Key: 'Sales Contact Number'; §12 [DW] 'CUSTOMERACCOUNT = msdyn_contactpersonid'",
    ),
    (
        "contacts-to-customers",
        "PartyType",
        "Person",
        "§12 [DW] Customers V3 (contacts): 'PartyType == \"Person\"'",
    ),
    ("contacts-to-customers", "CustomerGroupId", "10", "§5 ContactToCustomer: 'default 10'"),
    ("contacts-to-customers", "LanguageId", "en-us", "§5 ContactToCustomer: 'default en-us'"),
    (
        "contacts-to-customers",
        "PersonFirstName",
        "Yvonne",
        "§13 Contact: 'names ... firstname, lastname'",
    ),
    (
        "contacts-to-customers",
        "SalesCurrencyCode",
        "USD",
        "§12 [DW] Customers V3 (contacts): 'SALESCURRENCYCODE = transactioncurrencyid'",
    ),
    (
        "contacts-to-customers",
        "IsExternallyMaintained",
        "Yes",
        "§5 F&O flag: 'Customer IsExternallyMaintained (same entity as accounts)'",
    ),
    # Quotes (§6)
    (
        "quotes",
        "SalesQuotationNumber",
        "QUO-01000-AAAAAA",
        "§6 Key: 'Sales quote number ↔ F&O sales quotation number'",
    ),
    (
        "quotes",
        "SalesQuotationName",
        "Speakers for Fourth Coffee",
        "§12 [DW] quotation header: 'SALESQUOTATIONNAME = name'",
    ),
    (
        "quotes",
        "RequestingCustomerAccountNumber",
        "ACC-01000-BVRCPS",
        "§12 [DW] 'REQUESTINGCUSTOMERACCOUNTNUMBER = customerid.Account(accountnumber)'",
    ),
    (
        "quotes",
        "InvoiceCustomerAccountNumber",
        "ACC-01000-BVRCPS",
        "§11 Order: 'Invoice customer number ← Customer' (quotes alike)",
    ),
    (
        "quotes",
        "CurrencyCode",
        "USD",
        "§12 [DW] quotation header: 'CURRENCYCODE ... as for orders'",
    ),
    (
        "quotes",
        "DeliveryAddressCountryRegionISOCode",
        "US",
        "§6 QuoteHeader: 'Shipto_country ... Blank → US'",
    ),
    (
        "quotes",
        "DeliveryAddressCity",
        "Redmond",
        "§12 [DW] orders: 'DELIVERYADDRESSCITY = shipto_city' (quotes 'as for orders')",
    ),
    (
        "quotes",
        "RequestedShippingDate",
        "2026-12-01T12:00:00Z",
        "§12 [DW] orders: 'REQUESTEDSHIPPINGDATE = requestdeliveryby'",
    ),
    (
        "quote-lines",
        "SalesQuotationNumber",
        "QUO-01000-AAAAAA",
        "§13 Quote: 'line key ... quote number + sequencenumber'",
    ),
    (
        "quote-lines",
        "LineCreationSequenceNumber",
        1,
        "§12 [DW] quotation lines: 'LINECREATIONSEQUENCENUMBER = sequencenumber'",
    ),
    (
        "quote-lines",
        "ProductNumber",
        "D0001",
        "§12 [DW] quotation lines: 'PRODUCTNUMBER = productid.msdyn_productnumber'",
    ),
    (
        "quote-lines",
        "RequestedSalesQuantity",
        3.0,
        "§12 [DW] quotation lines: 'REQUESTEDSALESQUANTITY = quantity'",
    ),
    (
        "quote-lines",
        "SalesUnitSymbol",
        "ea",
        "§6 QuoteLine: 'oumid.name | SalesUnitSymbol | value map'",
    ),
    ("quote-lines", "SalesPrice", 220.5, "§12 [DW] quotation lines: 'SALESPRICE = priceperunit'"),
    (
        "quote-lines",
        "LineDiscountAmount",
        3.33,
        "§7.3 'the full line discount is divided by quantity and stored in F&O Line discount'",
    ),
    (
        "quote-lines",
        "TotalChargesAmount",
        -0.01,
        "§7.3 'the rounding remainder goes to the sales line's Sales charges'",
    ),
    # Orders, Sales → F&O (§7)
    (
        "orders-to-fno",
        "SalesOrderNumber",
        "ORD-01000-AAAAAA",
        "§7.1 Key: 'F&O sales order number ↔ Sales order number'",
    ),
    (
        "orders-to-fno",
        "OrderingCustomerAccountNumber",
        "ACC-01000-BVRCPS",
        "§12 [DW] 'ORDERINGCUSTOMERACCOUNTNUMBER = customerid.Account(accountnumber)'",
    ),
    (
        "orders-to-fno",
        "DeliveryAddressCountryRegionISOCode",
        "DE",
        "§7.4 Sales→F&O OrderHeader: 'Shipto_country ... value map of several countries'",
    ),
    (
        "orders-to-fno",
        "QuotationNumber",
        "QUO-01000-AAAAAA",
        "§12 [DW] orders: 'QUOTATIONNUMBER = msdyn_quotationnumber'",
    ),
    (
        "order-lines-to-fno",
        "SalesOrderNumber",
        "ORD-01000-AAAAAA",
        "§13 Order: 'line key ... order number + sequencenumber'",
    ),
    (
        "order-lines-to-fno",
        "LineCreationSequenceNumber",
        1,
        "§7.1 Key: 'Lines: LineCreationSequenceNumber ↔ sequencenumber'",
    ),
    (
        "order-lines-to-fno",
        "OrderedSalesQuantity",
        3.0,
        "§12 [DW] order lines: 'ORDEREDSALESQUANTITY = quantity'",
    ),
    (
        "order-lines-to-fno",
        "LineDiscountAmount",
        3.33,
        "§7.3 example: 'per-line discount $10.00 ⇄ F&O qty 3, line discount amount $3.33'",
    ),
    (
        "order-lines-to-fno",
        "TotalChargesAmount",
        -0.01,
        "§7.3 example: 'sales charge −$0.01'",
    ),
    # Orders, F&O → Sales (§7)
    (
        "orders-to-sales",
        "ordernumber",
        "SO-000123",
        "§7.1 Key: 'F&O sales order number ↔ Sales order number'",
    ),
    (
        "orders-to-sales",
        "name",
        "SO-000123",
        "§12 [DW] orders: 'SALESORDERNAME > name'; blank → the order number",
    ),
    (
        "orders-to-sales",
        "customerid",
        "ACC-1",
        "§12 [DW] 'ORDERINGCUSTOMERACCOUNTNUMBER = customerid.Account(accountnumber)'",
    ),
    (
        "orders-to-sales",
        "pricelevelid",
        "CRM Service USA (sample)",
        "§7.4 F&O→Sales SalesHeader: pricelevelid.name 'Default CRM Service USA (sample)'",
    ),
    (
        "orders-to-sales",
        "msdynce_processingstatus",
        647390001,
        "§7.2 Processing status option set: '647390001 | Confirmed'",
    ),
    (
        "orders-to-sales",
        "msdynce_ismaintainedexternally",
        True,
        "§7.2 'Is Maintained Externally ... Yes when the order comes from F&O'",
    ),
    (
        "orders-to-sales",
        "totalamount",
        650.0,
        "§12 [DW] orders: 'ORDERTOTALAMOUNT > totalamount'",
    ),
    (
        "orders-to-sales",
        "discountamount",
        10.0,
        "§12 [DW] orders: 'TOTALDISCOUNTAMOUNT > discountamount'",
    ),
    ("orders-to-sales", "totaltax", 52.0, "§12 [DW] orders: 'ORDERTOTALTAXAMOUNT > totaltax'"),
    (
        "orders-to-sales",
        "freightamount",
        15.0,
        "§12 [DW] orders: 'ORDERTOTALCHARGESAMOUNT > freightamount'",
    ),
    (
        "orders-to-sales",
        "msdynce_misctax",
        1.2,
        "§7.3 [SOL] 'The header amount is held in msdynce_misctax'",
    ),
    (
        "orders-to-sales",
        "shipto_country",
        "Germany",
        "§7.4 F&O→Sales SalesHeader: 'DeliveryCountryRegionId | DeliveryAddress_Country'",
    ),
    (
        "orders-to-sales",
        "billto_country",
        "United States",
        "§7.4 F&O→Sales SalesHeader: 'InvoiceCountryRegionId | BillingAddress_Country'",
    ),
    (
        "orders-to-sales",
        "requestdeliveryby",
        "2026-12-01",
        "§12 [DW] orders: 'REQUESTEDSHIPPINGDATE = requestdeliveryby'",
    ),
    (
        "order-lines-to-sales",
        "salesorderid",
        "SO-000123",
        "§12 [DW] order lines: 'SALESORDERNUMBER = salesorderid.msdyn_salesordernumber'",
    ),
    (
        "order-lines-to-sales",
        "sequencenumber",
        2,
        "§12 [DW] order lines: 'LINECREATIONSEQUENCENUMBER = sequencenumber'",
    ),
    (
        "order-lines-to-sales",
        "productid",
        "D0001",
        "§12 [DW] order lines: 'PRODUCTNUMBER = productid.msdyn_productnumber'",
    ),
    (
        "order-lines-to-sales",
        "uomid",
        "Hour",
        "§7.4 F&O→Sales SalesLine: 'SalesUnitSymbol | oumid.name | value map'",
    ),
    (
        "order-lines-to-sales",
        "quantity",
        3.0,
        "§12 [DW] order lines: 'ORDEREDSALESQUANTITY = quantity'",
    ),
    (
        "order-lines-to-sales",
        "manualdiscountamount",
        10.0,
        "§7.3 example: 'Back in Sales: (3 × $3.33) + $0.01 = $10.00'",
    ),
    (
        "order-lines-to-sales",
        "ispriceoverridden",
        True,
        "§12 [DW] order lines: 'none >> ispriceoverridden = true'",
    ),
    # Invoices, F&O → Sales (§8)
    ("invoices", "invoicenumber", "CIV-000042", "§8 Key: '[INF] Invoice number'"),
    (
        "invoices",
        "msdynce_invoicedate",
        "2026-11-22",
        "§13 Invoice: 'invoice date | msdynce_invoicedate (header and line)'",
    ),
    (
        "invoices",
        "salesorderid",
        "SO-000123",
        "§13 Invoice: 'sales order link | sales order number | salesorderid'",
    ),
    (
        "invoices",
        "customerid",
        "ACC-1",
        "§12 [DW] invoice headers: 'INVOICECUSTOMERACCOUNTNUMBER > customerid'",
    ),
    (
        "invoices",
        "pricelevelid",
        "CRM Service USA (sample)",
        "§8 pricelevelid.name: 'USD = CRM Service USA (sample)'",
    ),
    (
        "invoices",
        "totalamount",
        702.0,
        "§12 [DW] invoice headers: 'TOTALINVOICEAMOUNT > msdyn_totalamount'",
    ),
    (
        "invoices",
        "totaltax",
        52.0,
        "§12 [DW] invoice headers: 'TOTALTAXAMOUNT > msdyn_totaltax'",
    ),
    (
        "invoices",
        "freightamount",
        15.0,
        "§12 [DW] invoice headers: 'TOTALCHARGEAMOUNT > freightamount'",
    ),
    (
        "invoices",
        "description",
        "PO-77",
        "§12 [DW] invoice headers: 'CUSTOMERSORDERREFERENCE > description'",
    ),
    (
        "invoices",
        "ispricelocked",
        False,
        "§12 [DW] invoice headers: 'none >> ispricelocked False'",
    ),
    (
        "invoice-lines",
        "invoiceid",
        "CIV-000042",
        "§12 [DW] invoice lines: 'INVOICENUMBER > invoiceid.msdyn_invoicenumber'",
    ),
    (
        "invoice-lines",
        "sequencenumber",
        1,
        "§12 [DW] invoice lines: 'LINECREATIONSEQUENCENUMBER > sequencenumber'",
    ),
    (
        "invoice-lines",
        "quantity",
        3.0,
        "§12 [DW] invoice lines: 'INVOICEDQUANTITY > quantity'",
    ),
    (
        "invoice-lines",
        "manualdiscountamount",
        10.0,
        "§12 [DW] invoice lines: 'LINETOTALDISCOUNTAMOUNT > manualdiscountamount'",
    ),
    ("invoice-lines", "tax", 17.6, "§12 [DW] invoice lines: 'LINETOTALTAXAMOUNT > tax'"),
    (
        "invoice-lines",
        "msdynce_invoicenumber",
        "CIV-000042",
        "§8 Key: '[SOL] Lines carry msdynce_invoicenumber'",
    ),
]


@pytest.mark.parametrize(
    ("template", "field", "expected", "why"), ROWS, ids=[f"{r[0]}:{r[1]}" for r in ROWS]
)
def test_template_field(template: str, field: str, expected: Any, why: str) -> None:
    assert value(writes(template)[0], field) == expected, why


SELECTION = [
    (
        "quotes",
        {"statecode": 0},
        "statecode",
        "§6 Selection: '(2) the quote is active, i.e. after Activate quote'",
    ),
    (
        "quotes",
        {"msdynce_hasexternallymaintainedproductsonly": False},
        "externally",
        "§6 Selection: '(1) all quote products are externally maintained'",
    ),
    (
        "quote-lines",
        {"quote.state": 0},
        "quote.state",
        "§6 Selection: 'the quote is active' (a line follows its quote)",
    ),
    (
        "orders-to-fno",
        {"msdynce_processingstatus": 647390011},
        "processingstatus",
        "§7.1 Selection: 'Only orders that are activated in Sales'",
    ),
    (
        "orders-to-fno",
        {"msdynce_ismaintainedexternally": True},
        "ismaintainedexternally",
        "§7.1 [SOL] 'Activation requires ... msdynce_ismaintainedexternally = false'",
    ),
    (
        "order-lines-to-fno",
        {"_productid_value": None},
        "productid",
        "§7.1 Selection: 'there can be no write-in products'",
    ),
    (
        "orders-to-sales",
        {"SalesOrderProcessingStatus": "Active"},
        "ProcessingStatus",
        "§7.1 F&O→Sales: '(2) the order must be Confirmed or in a later processing status'",
    ),
    (
        "orders-to-sales",
        {"OrderingCustomerIsExternallyMaintained": "No"},
        "ExternallyMaintained",
        "§7.1 F&O→Sales: '(1) both the ordering and the invoicing customer must originate'",
    ),
    (
        "orders-to-sales",
        {"AreTotalsUpdated": "No"},
        "AreTotalsUpdated",
        "§7.1 F&O→Sales: '(3) Calculate sales totals must have run'",
    ),
    (
        "invoices",
        {"SalesOrderNumber": ""},
        "SalesOrderNumber",
        "§12 [DW] Sales invoice headers V2: 'Source filter SalesOrderNumber != \"\"'",
    ),
    (
        "contacts",
        {"msdynce_iscompanyanaccount": False},
        "iscompanyanaccount",
        "§5 Selection: 'Company ... points to an Account, not a Contact'",
    ),
    (
        "contacts",
        {"msdynce_isactivecustomer": True},
        "isactivecustomer",
        "§5 Selection (Contact → Contact): 'Is Active Customer = No'",
    ),
    (
        "contacts-to-customers",
        {"msdynce_isactivecustomer": False},
        "isactivecustomer",
        "§5 Selection (Contact → Customer): 'Is Active Customer = Yes'",
    ),
    (
        "products",
        {"SalesUnitSymbol": ""},
        "SalesUnitSymbol",
        "§3 Records selected: 'products that have the information they need to be used on a "
        "sales order'",
    ),
]


@pytest.mark.parametrize(
    ("template", "change", "reason", "spec"),
    SELECTION,
    ids=[f"{r[0]}:{r[2]}" for r in SELECTION],
)
def test_selection_filters(template: str, change: dict[str, Any], reason: str, spec: str) -> None:
    image = {**IMAGES[template], **change}
    result = map_event(TEMPLATES[template], event_for(template, image), CONTEXT)
    assert result.writes == (), spec
    assert result.skipped is not None and reason in result.skipped, spec


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
