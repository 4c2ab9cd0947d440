"""The source entities the bridge captures: where each lives, how it is keyed, its topic.

This is data. Adding a source entity means adding a row here and a schema file in
``schemas/`` named ``<system>.<topic name>.avsc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.contract.envelope import System
from bridge.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SourceEntity:
    """One capturable entity of one system.

    ``name`` is the topic's last segment and the schema file's stem; ``entity`` is the
    system's own name for it (Dataverse logical name, F&O entity set).
    """

    system: System
    name: str
    entity: str
    entity_set: str
    id_attribute: str | None
    key_attributes: tuple[str, ...]
    business_key: str

    def record_id(self, record: Mapping[str, Any]) -> str:
        """The stable identity of a record: its GUID, or F&O's key values joined by ``|``."""
        return "|".join(str(record.get(k, "")) for k in self.key_attributes).lower()

    def business_key_of(self, record: Mapping[str, Any]) -> str | None:
        """The record's business key as text (line sequence numbers are numbers)."""
        value = record.get(self.business_key)
        return None if value in (None, "") else str(value)

    @property
    def schema_file(self) -> str:
        """The file in ``schemas/`` holding this entity's envelope schema."""
        return f"{self.system.lower()}.{self.name}.avsc"

    def topic(self, prefix: str) -> str:
        """The topic of this entity's change events."""
        return f"{prefix}.{self.system.lower()}.{self.name}"


def _sales(name: str, entity_set: str, business_key: str) -> SourceEntity:
    return SourceEntity(
        system=System.SALES,
        name=name,
        entity=name,
        entity_set=entity_set,
        id_attribute=f"{name}id",
        key_attributes=(f"{name}id",),
        business_key=business_key,
    )


def _fno(name: str, entity_set: str, keys: tuple[str, ...], business_key: str) -> SourceEntity:
    return SourceEntity(
        system=System.FNO,
        name=name,
        entity=entity_set,
        entity_set=entity_set,
        id_attribute=None,
        key_attributes=keys,
        business_key=business_key,
    )


SOURCE_ENTITIES: tuple[SourceEntity, ...] = (
    _sales("account", "accounts", "accountnumber"),
    _sales("contact", "contacts", "msdynce_contactnumber"),
    _sales("quote", "quotes", "quotenumber"),
    _sales("quotedetail", "quotedetails", "sequencenumber"),
    _sales("salesorder", "salesorders", "ordernumber"),
    _sales("salesorderdetail", "salesorderdetails", "sequencenumber"),
    _fno(
        "product", "CDSReleasedDistinctProducts", ("dataAreaId", "ProductNumber"), "ProductNumber"
    ),
    _fno(
        "salesorderheader",
        "CDSSalesOrderHeaders",
        ("dataAreaId", "SalesOrderNumber"),
        "SalesOrderNumber",
    ),
    _fno(
        "salesorderline",
        "CDSSalesOrderLines",
        ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"),
        "SalesOrderNumber",
    ),
    _fno(
        "invoiceheader",
        "SalesInvoiceHeadersV2",
        ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher"),
        "InvoiceNumber",
    ),
    _fno(
        "invoiceline",
        "SalesInvoiceV2Lines",
        (
            "dataAreaId",
            "InvoiceNumber",
            "LineCreationSequenceNumber",
            "InvoiceDate",
            "LedgerVoucher",
        ),
        "InvoiceNumber",
    ),
)


def source_entity(system: System, entity: str) -> SourceEntity:
    """Find a source entity by system and its system-side name (case-insensitive)."""
    wanted = entity.lower()
    for candidate in SOURCE_ENTITIES:
        if candidate.system is system and wanted in (
            candidate.entity.lower(),
            candidate.name,
            candidate.entity_set.lower(),
        ):
            return candidate
    raise ConfigError(f"unknown {system.lower()} entity {entity!r}")


def find_source_entity(system: System, entity: str) -> SourceEntity | None:
    """Like :func:`source_entity` but returns ``None`` for an entity the bridge does not know."""
    try:
        return source_entity(system, entity)
    except ConfigError:
        return None
