"""Reference data every Dataverse organization has, seeded on start and on reset.

Seeded rows are written by SYSTEM and not counted in write statistics: the root business
unit, one ``systemuser`` per principal, the ``sdkmessages`` Create/Update/Delete and their
``sdkmessagefilters`` per Sales table, the bulk messages CreateMultiple/UpdateMultiple with a
filter per Sales table that supports them and UpsertMultiple/DeleteMultiple without filters (and, with F&O connected, OnExternalCreated/Updated/
Deleted with a filter per virtual table), the USD and EUR currencies, the "Default Unit" unit
group with its units and the "CRM Service USA (sample)" price list. Ids are stable
(``uuid5``) so tests can predict them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.emulators.common.principals import PrincipalDirectory, stable_id
from bridge.emulators.dataverse.entities import sales_entities
from bridge.emulators.dataverse.execution_context import Organization
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.fno.virtual_entities import DATA_EVENT_MESSAGES
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.values import LookupRef

MESSAGES = ("Create", "Update", "Delete")
BULK_FILTERED_MESSAGES = ("CreateMultiple", "UpdateMultiple")
"""Bulk messages with a filter row per table that supports them (dynamics-apis.md A.11)."""
BULK_UNFILTERED_MESSAGES = ("UpsertMultiple", "DeleteMultiple")
"""Bulk messages that exist but have no filter rows on standard tables."""


def message_id(name: str) -> str:
    """The ``sdkmessageid`` of message ``name``."""
    return stable_id("sdkmessage", name)


def message_filter_id(entity: str, message: str) -> str:
    """The ``sdkmessagefilterid`` of ``message`` on ``entity``."""
    return stable_id("sdkmessagefilter", entity, message)


def _seed_users(
    tables: DataverseTables, directory: PrincipalDirectory, organization: Organization, tenant: str
) -> None:
    unit = LookupRef("businessunit", organization.business_unit_id)
    tables.seed(
        "businessunit", {"businessunitid": organization.business_unit_id, "name": organization.name}
    )
    for principal in directory.all():
        tables.seed(
            "systemuser",
            {
                "systemuserid": principal.systemuser_id,
                "fullname": principal.display_name,
                "domainname": f"{principal.client_id}@{tenant}",
                "applicationid": stable_id("application", principal.client_id),
                "azureactivedirectoryobjectid": principal.object_id,
                "businessunitid": unit,
                "isdisabled": False,
            },
        )


def _seed_messages(
    tables: DataverseTables, messages: Sequence[str], entities: Sequence[EntityDef]
) -> None:
    for message in messages:
        tables.seed(
            "sdkmessage", {"sdkmessageid": message_id(message), "name": message, "isprivate": False}
        )
        for entity in entities:
            tables.seed(
                "sdkmessagefilter",
                {
                    "sdkmessagefilterid": message_filter_id(entity.name, message),
                    "name": f"{message} of {entity.name}",
                    "primaryobjecttypecode": entity.name,
                    "secondaryobjecttypecode": "none",
                    "sdkmessageid": LookupRef("sdkmessage", message_id(message)),
                    "iscustomprocessingstepallowed": True,
                },
            )


def _seed_sales_reference(tables: DataverseTables) -> None:
    currencies = (("USD", "US Dollar", "$"), ("EUR", "Euro", "€"))
    for code, name, symbol in currencies:
        tables.seed(
            "transactioncurrency",
            {
                "transactioncurrencyid": stable_id("transactioncurrency", code),
                "isocurrencycode": code,
                "currencyname": name,
                "currencysymbol": symbol,
                "exchangerate": 1.0,
                "currencyprecision": 2,
            },
        )
    schedule_id = stable_id("uomschedule", "Default Unit")
    base_id = stable_id("uom", "Primary Unit")
    tables.seed(
        "uomschedule",
        {"uomscheduleid": schedule_id, "name": "Default Unit", "baseuomname": "Primary Unit"},
    )
    for unit in ("Primary Unit", "ea", "pcs", "Hour"):
        tables.seed(
            "uom",
            {
                "uomid": stable_id("uom", unit),
                "name": unit,
                "uomscheduleid": LookupRef("uomschedule", schedule_id),
                "baseuom": LookupRef("uom", base_id),
                "quantity": 1.0,
                "isschedulebaseuom": unit == "Primary Unit",
            },
        )
    tables.seed(
        "pricelevel",
        {
            "pricelevelid": stable_id("pricelevel", "CRM Service USA (sample)"),
            "name": "CRM Service USA (sample)",
            "transactioncurrencyid": LookupRef(
                "transactioncurrency", stable_id("transactioncurrency", "USD")
            ),
        },
    )


def seed_dataverse(
    tables: DataverseTables,
    directory: PrincipalDirectory,
    organization: Organization,
    tenant: str,
    without_bulk: Sequence[str] = (),
) -> None:
    """Insert the reference data (idempotent per empty store). Every Sales table supports the
    bulk messages except those named in ``without_bulk``."""
    _seed_users(tables, directory, organization, tenant)
    _seed_messages(tables, MESSAGES, sales_entities())
    bulk_tables = [e for e in sales_entities() if e.name not in without_bulk]
    _seed_messages(tables, BULK_FILTERED_MESSAGES, bulk_tables)
    _seed_messages(tables, BULK_UNFILTERED_MESSAGES, [])
    _seed_sales_reference(tables)


def seed_data_event_messages(tables: DataverseTables, virtual: Sequence[EntityDef]) -> None:
    """The ``OnExternalCreated/Updated/Deleted`` messages and their filter per virtual table
    (data events: the virtual tables' event support is enabled)."""
    _seed_messages(tables, DATA_EVENT_MESSAGES, virtual)
