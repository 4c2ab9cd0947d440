"""The emulated Dataverse tables: Sales (prospect-to-cash) tables plus the platform tables
the bridge touches (webhook registration, system jobs, users).

Columns follow dynamics-apis.md A.3 and prospect-to-cash.md §10/§12/§13 (the ``msdynce_*``
columns of the P2C solution). Alternate keys on Sales tables other than
``contact.msdynce_contactnumber`` are emulator deployment assumptions (Sales has none by
default, see docs/emulators.md).
"""

from __future__ import annotations

from bridge.emulators.dataverse import optionsets as opt
from bridge.emulators.dataverse.documents import invoice_tables, order_tables, quote_tables
from bridge.emulators.dataverse.fields import (
    address,
    children,
    choice,
    day,
    decimal,
    flag,
    guid,
    integer,
    lookup,
    memo,
    moment,
    money,
    table,
    text,
)
from bridge.emulators.dataverse.webhook_entities import webhook_entities
from bridge.emulators.odata.entities import (
    AutoNumber,
    EntityDef,
    EntityRegistry,
    FieldDef,
    FieldKind,
)

_CUSTOMER = ("account", "contact")


def _account() -> EntityDef:
    columns = [
        text("name", 160, required=True),
        text("accountnumber", 20),
        text("telephone1", 50),
        text("telephone2", 50),
        text("fax", 50),
        text("emailaddress1", 100),
        text("emailaddress2", 100),
        text("websiteurl", 200),
        *address("address1"),
        *address("address2"),
        money("creditlimit"),
        flag("creditonhold"),
        money("revenue"),
        integer("numberofemployees"),
        choice("customertypecode", opt.CUSTOMER_TYPE),
        choice("industrycode", opt.INDUSTRY),
        choice("accountcategorycode", opt.ACCOUNT_CATEGORY),
        choice("paymenttermscode", opt.PAYMENT_TERMS),
        choice("shippingmethodcode", opt.SHIPPING_METHOD),
        memo("description"),
        lookup("transactioncurrencyid", "transactioncurrency"),
        lookup("primarycontactid", "contact"),
        lookup("parentaccountid", "account"),
        lookup("defaultpricelevelid", "pricelevel"),
    ]
    return table(
        "account",
        "accounts",
        columns,
        primary_name="name",
        object_type_code=1,
        states=opt.ACTIVE_INACTIVE,
        alternate_keys=(("accountnumber",),),
        autonumbers=(AutoNumber("accountnumber", "ACC"),),
        navigations=children(
            "contact_customer_accounts", "contact", "accountid", "parentcustomerid"
        ),
    )


def _contact() -> EntityDef:
    columns = [
        FieldDef("fullname", FieldKind.STRING, max_length=160, writable=False),
        text("firstname", 50),
        text("middlename", 50),
        text("lastname", 50),
        text("jobtitle", 100),
        text("emailaddress1", 100),
        text("telephone1", 50),
        text("mobilephone", 50),
        *address("address1"),
        *address("address2"),
        lookup("parentcustomerid", *_CUSTOMER),
        lookup("transactioncurrencyid", "transactioncurrency"),
        choice("gendercode", opt.GENDER),
        choice("accountrolecode", opt.ACCOUNT_ROLE),
        day("birthdate"),
        memo("description"),
        text("msdynce_contactnumber", 100),
        flag("msdynce_isactivecustomer"),
        flag("msdynce_iscompanyanaccount"),
    ]
    return table(
        "contact",
        "contacts",
        columns,
        primary_name="fullname",
        object_type_code=2,
        states=opt.ACTIVE_INACTIVE,
        alternate_keys=(("msdynce_contactnumber",),),
        autonumbers=(AutoNumber("msdynce_contactnumber", "CON"),),
    )


def _product() -> EntityDef:
    columns = [
        text("name", 100, required=True),
        text("productnumber", 100),
        memo("description"),
        money("price"),
        money("currentcost"),
        money("standardcost"),
        choice("producttypecode", opt.PRODUCT_TYPE),
        choice("productstructure", opt.PRODUCT_STRUCTURE),
        integer("quantitydecimal"),
        lookup("defaultuomid", "uom"),
        lookup("defaultuomscheduleid", "uomschedule"),
        lookup("pricelevelid", "pricelevel"),
        lookup("transactioncurrencyid", "transactioncurrency"),
        flag("msdynce_ismaintainedexternally"),
    ]
    return table(
        "product",
        "products",
        columns,
        primary_name="name",
        object_type_code=1024,
        states=opt.PRODUCT_STATES,
        alternate_keys=(("productnumber",),),
        organization_owned=True,
    )


def _pricing_tables() -> list[EntityDef]:
    pricelevel = table(
        "pricelevel",
        "pricelevels",
        [
            text("name", 100, required=True),
            memo("description"),
            moment("begindate"),
            moment("enddate"),
            lookup("transactioncurrencyid", "transactioncurrency"),
        ],
        primary_name="name",
        object_type_code=1022,
        states=opt.PRICE_LEVEL_STATES,
        alternate_keys=(("name",),),
        organization_owned=True,
        navigations=children(
            "price_level_product_price_levels", "productpricelevel", "pricelevelid", "pricelevelid"
        ),
    )
    item = table(
        "productpricelevel",
        "productpricelevels",
        [
            text("name", 100),
            lookup("pricelevelid", "pricelevel", required=True),
            lookup("productid", "product", required=True),
            lookup("uomid", "uom", required=True),
            lookup("uomscheduleid", "uomschedule"),
            lookup("transactioncurrencyid", "transactioncurrency"),
            money("amount"),
            choice("quantitysellingcode", opt.QUANTITY_SELLING),
            choice("pricingmethodcode", opt.PRICING_METHOD),
        ],
        primary_name="name",
        object_type_code=1026,
        alternate_keys=(("pricelevelid", "productid", "uomid"),),
        organization_owned=True,
    )
    return [pricelevel, item]


def _unit_tables() -> list[EntityDef]:
    schedule = table(
        "uomschedule",
        "uomschedules",
        [text("name", 200, required=True), text("baseuomname", 100), memo("description")],
        primary_name="name",
        object_type_code=1056,
        states=opt.ACTIVE_INACTIVE,
        alternate_keys=(("name",),),
        organization_owned=True,
    )
    unit = table(
        "uom",
        "uoms",
        [
            text("name", 100, required=True),
            lookup("uomscheduleid", "uomschedule", required=True),
            lookup("baseuom", "uom"),
            decimal("quantity"),
            flag("isschedulebaseuom"),
        ],
        primary_name="name",
        object_type_code=1055,
        alternate_keys=(("uomscheduleid", "name"),),
        organization_owned=True,
    )
    currency = table(
        "transactioncurrency",
        "transactioncurrencies",
        [
            text("currencyname", 100, required=True),
            text("isocurrencycode", 5, required=True),
            text("currencysymbol", 10),
            decimal("exchangerate"),
            integer("currencyprecision"),
        ],
        primary_name="currencyname",
        object_type_code=9105,
        states=opt.ACTIVE_INACTIVE,
        alternate_keys=(("isocurrencycode",),),
        organization_owned=True,
    )
    return [schedule, unit, currency]


def _platform_tables() -> list[EntityDef]:
    user = table(
        "systemuser",
        "systemusers",
        [
            text("fullname", 200),
            text("domainname", 1024),
            guid("applicationid"),
            guid("azureactivedirectoryobjectid"),
            lookup("businessunitid", "businessunit"),
            flag("isdisabled"),
        ],
        primary_name="fullname",
        object_type_code=8,
        change_tracking=False,
        organization_owned=True,
    )
    unit = table(
        "businessunit",
        "businessunits",
        [text("name", 160, required=True)],
        primary_name="name",
        object_type_code=10,
        change_tracking=False,
        organization_owned=True,
    )
    return [user, unit]


def sales_entities() -> list[EntityDef]:
    """The Sales tables the prospect-to-cash flows read and write."""
    return [
        _account(),
        _contact(),
        _product(),
        *_pricing_tables(),
        *_unit_tables(),
        *quote_tables(),
        *order_tables(),
        *invoice_tables(),
    ]


def build_registry() -> EntityRegistry:
    """Every emulated Dataverse table, webhook registration tables included."""
    return EntityRegistry([*sales_entities(), *_platform_tables(), *webhook_entities()])


DATAVERSE_ENTITIES = build_registry()
