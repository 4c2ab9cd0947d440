"""The emulated F&O data entities, built from :mod:`bridge.emulators.fno.catalog` plus the
behaviour the catalog cannot carry: type names, number sequences, navigation properties,
required fields, defaults, referential checks, known enum symbols and read-only (computed)
fields, whose values in request bodies are ignored (see :mod:`bridge.emulators.fno.sales`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.emulators.fno.catalog import CATALOG, split_items
from bridge.emulators.odata.entities import (
    EntityDef,
    EntityRegistry,
    FieldDef,
    FieldKind,
    NavDef,
    NumberSequence,
    Reference,
    System,
)

EMPTY_DATE = "1900-01-01T12:00:00Z"

ENUM_SYMBOLS: Mapping[str, tuple[str, ...]] = {
    "NoYes": ("No", "Yes"),
    "CustVendorBlocked": ("No", "Invoice", "All", "Payment", "Requisition", "Never"),
    "SalesStatus": ("None", "Backorder", "Delivered", "Invoiced", "Canceled"),
    "SalesOrderProcessingStatus": (
        "Active",
        "Confirmed",
        "Picked",
        "PartiallyDelivered",
        "Delivered",
        "Invoiced",
        "PartiallyInvoiced",
        "Canceled",
        "DeliveredPartiallyInvoiced",
    ),
    "SalesQuotationStatus": (
        "Created",
        "Sent",
        "Confirmed",
        "Lost",
        "Cancelled",
        "Reset",
        "Modified",
        "Submitted",
        "Approved",
        "Revised",
    ),
    "EcoResProductType": ("Item", "Service"),
    "Gender": ("Unknown", "Male", "Female", "NonSpecific"),
    "Abc": ("None", "A", "B", "C"),
    "MonthsOfYear": (
        "None",
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

_EDM_KINDS = {
    "String": FieldKind.STRING,
    "Int32": FieldKind.INTEGER,
    "Int64": FieldKind.BIGINT,
    "Decimal": FieldKind.DECIMAL,
    "DateTimeOffset": FieldKind.DATETIME,
    "Guid": FieldKind.GUID,
    "Boolean": FieldKind.BOOLEAN,
}


@dataclass(frozen=True)
class _Behaviour:
    type_name: str
    write_name: str
    table_label: str
    sequences: tuple[NumberSequence, ...] = ()
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    navigations: tuple[NavDef, ...] = ()
    references: tuple[Reference, ...] = ()
    copy_defaults: tuple[tuple[str, str], ...] = ()
    read_only: tuple[str, ...] = ()


_CUSTOMER_FLAGS = (
    "OrderingCustomerIsExternallyMaintained",
    "InvoiceCustomerIsExternallyMaintained",
)


def _customer_ref(attribute: str) -> Reference:
    return Reference(attribute, "CustomersV3", "CustomerAccount", "Customer account")


def _product_ref() -> Reference:
    return Reference(
        "ProductNumber", "CDSReleasedDistinctProducts", "ProductNumber", "Product number"
    )


def _join(name: str, target: str, many: bool, *attributes: str) -> NavDef:
    pairs = tuple((attribute, attribute) for attribute in ("dataAreaId", *attributes))
    return NavDef(name, target, many, pairs)


_LINE_SEQUENCE = "LineCreationSequenceNumber"

_BEHAVIOUR: Mapping[str, _Behaviour] = {
    "CustomersV3": _Behaviour(
        "CustomerV3",
        "CustCustomerV3Entity",
        "Customers (CustTable)",
        sequences=(
            NumberSequence("CustomerAccount", "CUS-{n:06d}"),
            NumberSequence("PartyNumber", "{n:09d}", shared=True),
        ),
        required=("CustomerGroupId",),
        defaults={"PartyType": "Organization", "LanguageId": "en-us"},
    ),
    "ContactPersons": _Behaviour(
        "ContactPerson",
        "ContactPersonEntity",
        "Contact persons (ContactPerson)",
        sequences=(
            NumberSequence("ContactPersonId", "CP-{n:06d}"),
            NumberSequence("ContactPersonPartyNumber", "{n:09d}", shared=True),
        ),
    ),
    "CDSContactPersonsV2": _Behaviour(
        "CDSContactPersonV2",
        "SmmContactPersonCDSV2Entity",
        "Contact persons (ContactPerson)",
        sequences=(
            NumberSequence("ContactPersonPartyNumber", "{n:09d}", shared=True),
            NumberSequence("ContactPersonId", "CP-{n:06d}"),
        ),
    ),
    "CDSReleasedDistinctProducts": _Behaviour(
        "CDSReleasedDistinctProduct",
        "EcoResReleasedDistinctProductCDSEntity",
        "Released products (InventTable)",
        defaults={"ProductType": "Item", "IsStockedProduct": "Yes"},
    ),
    "ReleasedProductsV2": _Behaviour(
        "ReleasedProductV2",
        "EcoResReleasedProductV2Entity",
        "Released products (InventTable)",
        defaults={"ProductType": "Item"},
    ),
    "CDSSalesQuotationHeaders": _Behaviour(
        "CDSSalesQuotationHeader",
        "SalesQuotationHeaderCDSEntity",
        "Sales quotations (SalesQuotationTable)",
        sequences=(NumberSequence("SalesQuotationNumber", "{n:06d}"),),
        required=("RequestingCustomerAccountNumber",),
        navigations=(
            _join("CDSSalesQuotationLines", "CDSSalesQuotationLines", True, "SalesQuotationNumber"),
        ),
        references=(
            _customer_ref("RequestingCustomerAccountNumber"),
            _customer_ref("InvoiceCustomerAccountNumber"),
        ),
        copy_defaults=(("InvoiceCustomerAccountNumber", "RequestingCustomerAccountNumber"),),
    ),
    "CDSSalesQuotationLines": _Behaviour(
        "CDSSalesQuotationLine",
        "SalesQuotationLineCDSEntity",
        "Quotation lines (SalesQuotationLine)",
        sequences=(NumberSequence(_LINE_SEQUENCE, None, scope=("SalesQuotationNumber",)),),
        navigations=(
            _join(
                "CDSSalesQuotationHeader", "CDSSalesQuotationHeaders", False, "SalesQuotationNumber"
            ),
        ),
        references=(
            Reference(
                "SalesQuotationNumber",
                "CDSSalesQuotationHeaders",
                "SalesQuotationNumber",
                "Quotation",
            ),
            _product_ref(),
        ),
    ),
    "CDSSalesOrderHeaders": _Behaviour(
        "CDSSalesOrderHeader",
        "SalesOrderHeaderCDSEntity",
        "Sales orders (SalesTable)",
        sequences=(NumberSequence("SalesOrderNumber", "{n:06d}"),),
        required=("OrderingCustomerAccountNumber",),
        navigations=(_join("CDSSalesOrderLines", "CDSSalesOrderLines", True, "SalesOrderNumber"),),
        references=(
            _customer_ref("OrderingCustomerAccountNumber"),
            _customer_ref("InvoiceCustomerAccountNumber"),
        ),
        copy_defaults=(("InvoiceCustomerAccountNumber", "OrderingCustomerAccountNumber"),),
        read_only=("AreTotalsUpdated", *_CUSTOMER_FLAGS),
    ),
    "CDSSalesOrderLines": _Behaviour(
        "CDSSalesOrderLine",
        "SalesOrderLineCDSEntity",
        "Order lines (SalesLine)",
        sequences=(NumberSequence(_LINE_SEQUENCE, None, scope=("SalesOrderNumber",)),),
        navigations=(
            _join("CDSSalesOrderHeader", "CDSSalesOrderHeaders", False, "SalesOrderNumber"),
        ),
        references=(
            Reference(
                "SalesOrderNumber", "CDSSalesOrderHeaders", "SalesOrderNumber", "Sales order"
            ),
            _product_ref(),
        ),
        read_only=("AreTotalsCalculated", "AreSalesOrderTotalsUpdated", *_CUSTOMER_FLAGS),
    ),
    "SalesInvoiceHeadersV2": _Behaviour(
        "SalesInvoiceHeaderV2",
        "SalesInvoiceHeaderV2Entity",
        "Customer invoice journal (CustInvoiceJour)",
        sequences=(
            NumberSequence("InvoiceNumber", "CIV-{n:06d}"),
            NumberSequence("LedgerVoucher", "ARI-{n:06d}"),
        ),
        navigations=(
            _join(
                "SalesInvoiceLinesV2",
                "SalesInvoiceV2Lines",
                True,
                "InvoiceNumber",
                "InvoiceDate",
                "LedgerVoucher",
            ),
        ),
        references=(_customer_ref("InvoiceCustomerAccountNumber"),),
    ),
    "SalesInvoiceV2Lines": _Behaviour(
        "SalesInvoiceV2Line",
        "SalesInvoiceLineV2Entity",
        "Customer invoice lines (CustInvoiceTrans)",
        sequences=(NumberSequence(_LINE_SEQUENCE, None, scope=("InvoiceNumber",)),),
        navigations=(
            _join(
                "SalesInvoiceHeaderV2",
                "SalesInvoiceHeadersV2",
                False,
                "InvoiceNumber",
                "InvoiceDate",
                "LedgerVoucher",
            ),
        ),
        references=(
            Reference("InvoiceNumber", "SalesInvoiceHeadersV2", "InvoiceNumber", "Invoice"),
        ),
    ),
}


def _typed_field(item: str, behaviour: _Behaviour) -> FieldDef:
    name, _, edm = item.partition(":")
    nullable = edm.endswith("?")
    kind = _EDM_KINDS[edm.rstrip("?")]
    return FieldDef(
        name,
        kind,
        nullable=nullable,
        required=name in behaviour.required,
        writable=name not in behaviour.read_only,
        default=behaviour.defaults.get(name),
    )


def _enum_field(item: str, behaviour: _Behaviour) -> FieldDef:
    name, _, enum_type = item.partition(":")
    symbols = ENUM_SYMBOLS.get(enum_type, ())
    default = behaviour.defaults.get(name, symbols[0] if symbols else "")
    return FieldDef(
        name,
        FieldKind.ENUM,
        nullable=False,
        required=name in behaviour.required,
        writable=name not in behaviour.read_only,
        enum_type=enum_type,
        enum_symbols=symbols,
        default=default,
    )


def _entity(entity_set: str, modified_field: str) -> EntityDef:
    raw = CATALOG[entity_set]
    behaviour = _BEHAVIOUR[entity_set]
    fields = {f.name: f for f in (_typed_field(i, behaviour) for i in split_items(raw.fields))}
    fields.update({f.name: f for f in (_enum_field(i, behaviour) for i in split_items(raw.enums))})
    for key in raw.keys:
        fields[key] = replace(fields[key], nullable=False)
    if modified_field:
        fields[modified_field] = FieldDef(modified_field, FieldKind.DATETIME, writable=False)
    return EntityDef(
        system=System.FNO,
        name=entity_set,
        entity_set=entity_set,
        type_name=behaviour.type_name,
        fields=fields,
        keys=raw.keys,
        change_tracking=False,
        navigations={nav.name: nav for nav in behaviour.navigations},
        sequences=behaviour.sequences,
        references=behaviour.references,
        copy_defaults=behaviour.copy_defaults,
        table_label=behaviour.table_label,
        write_name=behaviour.write_name,
    )


def build_registry(modified_field: str = "") -> EntityRegistry:
    """Every emulated F&O entity; ``modified_field`` (if set) adds a maintained
    ``DateTimeOffset`` field of that name to each (a customised environment's polling field)."""
    return EntityRegistry(_entity(name, modified_field) for name in CATALOG)


FNO_ENTITIES = build_registry()
