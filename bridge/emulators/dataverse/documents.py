"""Dataverse sales document tables: quotes, orders and invoices with their lines.

Headers share the customer/price list/currency/totals/address columns; lines share the
product/quantity/price/amount columns (dynamics-apis.md A.3) and the P2C ``msdynce_*``
columns (prospect-to-cash.md §10). Line alternate keys ``(<header lookup>, sequencenumber)``
are emulator deployment assumptions. Line ``baseamount``/``extendedamount`` are read-only
(computed, see :mod:`bridge.emulators.dataverse.lines`).
"""

from __future__ import annotations

from bridge.emulators.dataverse import optionsets as opt
from bridge.emulators.dataverse.fields import (
    address,
    children,
    choice,
    day,
    decimal,
    flag,
    integer,
    lookup,
    memo,
    moment,
    money,
    table,
    text,
)
from bridge.emulators.odata.entities import AutoNumber, EntityDef, FieldDef

_CUSTOMER = ("account", "contact")


def _document_header(number: str) -> list[FieldDef]:
    """Columns shared by quote, salesorder and invoice headers."""
    return [
        text("name", 300),
        text(number, 100),
        lookup("customerid", *_CUSTOMER),
        lookup("pricelevelid", "pricelevel"),
        lookup("transactioncurrencyid", "transactioncurrency"),
        money("totalamount"),
        money("totallineitemamount"),
        money("totaltax"),
        money("totaldiscountamount"),
        money("discountamount"),
        decimal("discountpercentage"),
        money("freightamount"),
        day("requestdeliveryby"),
        choice("paymenttermscode", opt.PAYMENT_TERMS),
        choice("shippingmethodcode", opt.SHIPPING_METHOD),
        choice("freighttermscode", opt.FREIGHT_TERMS),
        memo("description"),
        *address("shipto"),
        *address("billto"),
        flag("msdynce_hasexternallymaintainedproductsonly"),
        flag("msdynce_ismaintainedexternally"),
    ]


def _document_line(parent: str, name_attribute: str) -> list[FieldDef]:
    """Columns shared by quote, order and invoice lines."""
    return [
        text(name_attribute, 500),
        lookup(parent, parent.removesuffix("id"), required=True),
        lookup("productid", "product"),
        text("productdescription", 500),
        flag("isproductoverridden"),
        flag("ispriceoverridden"),
        decimal("quantity"),
        money("priceperunit"),
        money("baseamount", writable=False),
        money("extendedamount", writable=False),
        money("manualdiscountamount"),
        money("tax"),
        lookup("uomid", "uom"),
        integer("lineitemnumber"),
        integer("sequencenumber"),
        choice("producttypecode", opt.LINE_PRODUCT_TYPE),
        day("requestdeliveryby"),
        memo("description"),
        lookup("transactioncurrencyid", "transactioncurrency"),
        flag("msdynce_ismaintainedexternally"),
    ]


def quote_tables() -> list[EntityDef]:
    """``quote`` and ``quotedetail``."""
    quote = table(
        "quote",
        "quotes",
        [
            *_document_header("quotenumber"),
            integer("revisionnumber"),
            moment("effectivefrom"),
            moment("effectiveto"),
        ],
        primary_name="name",
        object_type_code=1084,
        states=opt.QUOTE_STATES,
        alternate_keys=(("quotenumber",),),
        autonumbers=(AutoNumber("quotenumber", "QUO"),),
        navigations=children("quote_details", "quotedetail", "quoteid", "quoteid"),
    )
    detail = table(
        "quotedetail",
        "quotedetails",
        [
            *_document_line("quoteid", "quotedetailname"),
            flag("msdynce_quotehasexternalmaintainedproductsonly"),
            integer("msdynce_quoterevisionnumber"),
        ],
        primary_name="quotedetailname",
        object_type_code=1085,
        alternate_keys=(("quoteid", "sequencenumber"),),
    )
    return [quote, detail]


def order_tables() -> list[EntityDef]:
    """``salesorder`` and ``salesorderdetail``."""
    order = table(
        "salesorder",
        "salesorders",
        [
            *_document_header("ordernumber"),
            lookup("quoteid", "quote"),
            moment("datefulfilled"),
            choice("msdynce_processingstatus", opt.PROCESSING_STATUS),
            money("msdynce_misctax"),
            money("msdynce_misctax_base", writable=False),
        ],
        primary_name="name",
        object_type_code=1088,
        states=opt.ORDER_STATES,
        alternate_keys=(("ordernumber",),),
        autonumbers=(AutoNumber("ordernumber", "ORD"),),
        navigations=children("order_details", "salesorderdetail", "salesorderid", "salesorderid"),
    )
    detail = table(
        "salesorderdetail",
        "salesorderdetails",
        [
            *_document_line("salesorderid", "salesorderdetailname"),
            lookup("quotedetailid", "quotedetail"),
            flag("msdynce_ismisctax"),
            flag("msdynce_orderhasexternalmaintainedproductsonly"),
            flag("msdynce_orderissubmitted"),
            text("msdynce_ordernumber", 100),
        ],
        primary_name="salesorderdetailname",
        object_type_code=1089,
        alternate_keys=(("salesorderid", "sequencenumber"),),
    )
    return [order, detail]


def invoice_tables() -> list[EntityDef]:
    """``invoice`` and ``invoicedetail``."""
    invoice = table(
        "invoice",
        "invoices",
        [
            *_document_header("invoicenumber"),
            lookup("salesorderid", "salesorder"),
            day("datedelivered"),
            day("duedate"),
            flag("ispricelocked"),
            day("msdynce_invoicedate"),
            money("msdynce_misctax"),
            money("msdynce_misctax_base", writable=False),
        ],
        primary_name="name",
        object_type_code=1090,
        states=opt.INVOICE_STATES,
        alternate_keys=(("invoicenumber",),),
        autonumbers=(AutoNumber("invoicenumber", "INV"),),
        navigations=children("invoice_details", "invoicedetail", "invoiceid", "invoiceid"),
    )
    detail = table(
        "invoicedetail",
        "invoicedetails",
        [
            *_document_line("invoiceid", "invoicedetailname"),
            lookup("salesorderdetailid", "salesorderdetail"),
            choice("propertyconfigurationstatus", opt.PROPERTY_CONFIGURATION),
            day("msdynce_invoicedate"),
            text("msdynce_invoicenumber", 100),
            flag("msdynce_ismisctax"),
        ],
        primary_name="invoicedetailname",
        object_type_code=1091,
        alternate_keys=(("invoiceid", "sequencenumber"),),
    )
    return [invoice, detail]
