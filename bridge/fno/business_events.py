"""F&O business events → change events.

The emulator (and a customised F&O) raises ``<EntitySet>Changed`` business events whose
contract carries ``EntityName``, ``ChangeType`` (Created, Updated, Deleted), ``DataAreaId``,
the record's natural key fields and ``RecordVersion``. Business events are thin, so the
receiver reads the record itself to publish a full image. ``ControlNumber`` (increasing per
environment) is the version when ``RecordVersion`` is absent. The initiating user's Entra
object id tells the bridge's own writes from everyone else's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.contract.catalog import SourceEntity, find_source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.records import parse_iso, parse_wcf_date
from bridge.errors import InvalidNotification, NotCaptured

_OPERATIONS = {
    "Created": Operation.CREATE,
    "Updated": Operation.UPDATE,
    "Deleted": Operation.DELETE,
}


class BusinessEvent(BaseModel):
    """The documented envelope of an F&O business event plus the data-change contract."""

    model_config = ConfigDict(extra="allow")

    BusinessEventId: str = Field(min_length=1)
    ControlNumber: int
    EventId: str = Field(min_length=1)
    EventTime: str | None = None
    EventTimeIso8601: str | None = None
    BusinessEventLegalEntity: str | None = None
    InitiatingUserAADObjectId: str | None = None
    EntityName: str | None = None
    ChangeType: str | None = None
    DataAreaId: str | None = None
    RecordVersion: int | None = None

    def field(self, name: str) -> Any:
        """A contract field that is not part of the envelope (e.g. a key field)."""
        return (self.model_extra or {}).get(name)


def parse_business_event(body: Any) -> BusinessEvent:
    """Validate a decoded JSON body as a business event."""
    try:
        return BusinessEvent.model_validate(body)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        raise InvalidNotification(f"not a business event: invalid {', '.join(fields)}") from None


def event_entity(event: BusinessEvent) -> SourceEntity:
    """The captured entity a data-change event is about."""
    if not event.EntityName or not event.ChangeType:
        raise NotCaptured(f"business event {event.BusinessEventId!r} is not a data change")
    entity = find_source_entity(System.FNO, event.EntityName)
    if entity is None:
        raise NotCaptured(f"entity {event.EntityName!r} is not captured")
    if event.ChangeType not in _OPERATIONS:
        raise InvalidNotification(f"unknown ChangeType {event.ChangeType!r}")
    return entity


def event_key(event: BusinessEvent, entity: SourceEntity) -> dict[str, Any]:
    """The key fields of the changed record, as the event gives them."""
    key: dict[str, Any] = {}
    for name in entity.key_attributes:
        value = event.DataAreaId if name == "dataAreaId" else event.field(name)
        if value in (None, ""):
            raise InvalidNotification(f"business event lacks key field {name}")
        key[name] = _iso_if_date(value)
    return key


def _iso_if_date(value: Any) -> Any:
    moment = parse_wcf_date(value) if isinstance(value, str) else None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else value


def business_event_to_change(
    event: BusinessEvent, entity: SourceEntity, record: dict[str, Any] | None
) -> ChangeEvent:
    """The change event of a business event; ``record`` is the freshly read record."""
    operation = _OPERATIONS[event.ChangeType or ""]
    key = event_key(event, entity)
    image = record if record is not None else key
    when = (
        parse_iso(event.EventTimeIso8601)
        or parse_wcf_date(event.EventTime or "")
        or datetime.now(UTC)
    )
    source = Source(
        system=System.FNO,
        entity=entity.entity,
        record_id=entity.record_id(image),
        business_key=entity.business_key_of(image),
        company=str(key.get("dataAreaId", "")) or None,
        record_version=event.RecordVersion
        if event.RecordVersion is not None
        else event.ControlNumber,
        change_time=when,
        changed_by=(event.InitiatingUserAADObjectId or "").strip("{}").lower() or None,
        capture=Capture.BUSINESS_EVENT,
    )
    if operation is Operation.DELETE:
        return ChangeEvent.create(source, operation, before=image)
    return ChangeEvent.create(source, operation, after=image)
