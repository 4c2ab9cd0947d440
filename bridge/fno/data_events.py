"""F&O data events → change events.

With Power Platform integration, an F&O create, update or delete of an entity raises a data
event (spec B.4): Dataverse runs the steps registered for ``OnExternalCreated`` /
``OnExternalUpdated`` / ``OnExternalDeleted`` on the entity's virtual table
``mserp_<physical entity name>``, and a webhook step posts a ``RemoteExecutionContext`` to
the bridge's Dataverse receiver. The bridge registers those steps with images (post image on
create, both on update, pre image on delete), so the record's key is in the body; it then
reads the full record from F&O's OData (the event's columns are ``mserp_<field>``, and an
update carries only what changed) and publishes a change event on the entity's existing
F&O topic, with the same schema and key as every other F&O capture path.

- Version: the change's ``SysRowVersion`` (``Target.RowVersion``, else the image's
  ``versionnumber``), one counter across the environment, so a record's events order.
- Who: ``InitiatingUserId`` is the Dataverse user of the F&O writer's Entra object id; the
  bridge's own F&O writes therefore show the bridge's Dataverse identity (``WhoAmI``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.contract.catalog import SourceEntity, find_source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.records import parse_iso, parse_wcf_date
from bridge.dataverse.webhook import RemoteExecutionContext, image_of, target_of
from bridge.errors import InvalidNotification, NotCaptured

VIRTUAL_TABLES: Mapping[str, str] = {
    "CDSReleasedDistinctProducts": "mserp_ecoresreleaseddistinctproductcdsentity",
    "CDSSalesOrderHeaders": "mserp_salesorderheadercdsentity",
    "CDSSalesOrderLines": "mserp_salesorderlinecdsentity",
    "SalesInvoiceHeadersV2": "mserp_salesinvoiceheaderv2entity",
    "SalesInvoiceV2Lines": "mserp_salesinvoicelinev2entity",
}
"""F&O entity set → the logical name of its Dataverse virtual table."""

MESSAGES: Mapping[str, Operation] = {
    "OnExternalCreated": Operation.CREATE,
    "OnExternalUpdated": Operation.UPDATE,
    "OnExternalDeleted": Operation.DELETE,
}
VIRTUAL_PREFIX = "mserp_"
_ENTITY_SETS = {table: entity_set for entity_set, table in VIRTUAL_TABLES.items()}


def is_data_event(context: RemoteExecutionContext) -> bool:
    """Whether a Dataverse notification is an F&O data event (on a virtual table)."""
    return context.PrimaryEntityName.lower().startswith(VIRTUAL_PREFIX)


def virtual_table(entity: SourceEntity) -> str | None:
    """The virtual table of a captured F&O entity, if it has one."""
    return VIRTUAL_TABLES.get(entity.entity_set)


def column(field: str) -> str:
    """The virtual-table column of an F&O field."""
    return f"{VIRTUAL_PREFIX}{field.lower()}"


def data_event_entity(context: RemoteExecutionContext) -> SourceEntity:
    """The captured F&O entity a data event is about."""
    entity_set = _ENTITY_SETS.get(context.PrimaryEntityName.lower())
    entity = find_source_entity(System.FNO, entity_set) if entity_set else None
    if entity is None:
        raise NotCaptured(f"virtual table {context.PrimaryEntityName!r} is not captured")
    if context.MessageName not in MESSAGES:
        raise NotCaptured(f"message {context.MessageName!r} is not captured")
    return entity


def key_from_columns(entity: SourceEntity, columns: Mapping[str, Any]) -> dict[str, Any] | None:
    """The F&O key fields (as F&O spells them) from virtual-table columns; ``None`` when
    one is missing. Dates take F&O's OData form, so every capture path keys alike."""
    key: dict[str, Any] = {}
    for name in entity.key_attributes:
        value = columns.get(column(name))
        if value in (None, ""):
            return None
        key[name] = _odata_date(value)
    return key


def data_event_key(context: RemoteExecutionContext, entity: SourceEntity) -> dict[str, Any] | None:
    """The changed record's key, from the images the steps were registered with, else
    from the target (a create carries every set column)."""
    for columns in (
        image_of(context.PostEntityImages),
        image_of(context.PreEntityImages),
        target_of(context),
    ):
        key = key_from_columns(entity, columns or {})
        if key is not None:
            return key
    return None


def data_event_version(context: RemoteExecutionContext) -> int | None:
    """The change's row version: ``Target.RowVersion``, else an image's ``versionnumber``."""
    target = next((p.value for p in context.InputParameters if p.key == "Target"), None)
    candidates = [target.get("RowVersion") if isinstance(target, dict) else None]
    for images in (context.PostEntityImages, context.PreEntityImages):
        candidates.append((image_of(images) or {}).get("versionnumber"))
    for value in candidates:
        if value not in (None, ""):
            try:
                return int(str(value))
            except ValueError:
                raise InvalidNotification("RowVersion is not a number") from None
    return None


def data_event_to_change(
    context: RemoteExecutionContext,
    entity: SourceEntity,
    key: Mapping[str, Any],
    record: Mapping[str, Any] | None,
) -> ChangeEvent:
    """The change event of a data event; ``record`` is the record read from F&O (``None``
    for a delete, whose image is its key)."""
    operation = MESSAGES[context.MessageName]
    image = dict(record) if record is not None else dict(key)
    principal = context.InitiatingUserId or context.UserId
    source = Source(
        system=System.FNO,
        entity=entity.entity,
        record_id=entity.record_id(image),
        business_key=entity.business_key_of(image),
        company=str(image.get("dataAreaId") or "") or None,
        record_version=data_event_version(context),
        change_time=parse_wcf_date(context.OperationCreatedOn or "")
        or parse_iso(context.OperationCreatedOn)
        or datetime.now(UTC),
        changed_by=str(principal).lower() if principal else None,
        capture=Capture.WEBHOOK,
    )
    correlation = str(context.CorrelationId) if context.CorrelationId else None
    if operation is Operation.DELETE:
        return ChangeEvent.create(source, operation, before=image, correlation_id=correlation)
    return ChangeEvent.create(source, operation, after=image, correlation_id=correlation)


def _odata_date(value: Any) -> Any:
    looks_like_moment = isinstance(value, str) and value[4:5] == "-" and "T" in value
    moment = parse_iso(value) if looks_like_moment else None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else value
