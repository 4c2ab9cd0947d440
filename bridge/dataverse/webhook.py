"""Dataverse webhook notifications (RemoteExecutionContext JSON) → change events.

Only what the bridge needs is validated: message name, primary entity and id, the Target,
the pre/post entity images, the initiating user and the operation time. Anything else in
the body is ignored. A body that is not a valid notification raises
:class:`InvalidNotification`, which the receiver answers with 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.contract.catalog import SourceEntity, find_source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.records import (
    normalize_entity_attributes,
    parse_iso,
    parse_wcf_date,
)
from bridge.errors import InvalidNotification, NotCaptured

_OPERATIONS = {"Create": Operation.CREATE, "Update": Operation.UPDATE, "Delete": Operation.DELETE}


class _KeyValue(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    value: Any = None


class RemoteExecutionContext(BaseModel):
    """The fields of Microsoft.Xrm.Sdk.RemoteExecutionContext the bridge reads."""

    model_config = ConfigDict(extra="ignore")

    MessageName: str
    PrimaryEntityName: str = Field(min_length=1)
    PrimaryEntityId: UUID
    CorrelationId: UUID | None = None
    InitiatingUserId: UUID | None = None
    UserId: UUID | None = None
    OperationCreatedOn: str | None = None
    InputParameters: list[_KeyValue] = Field(default_factory=list)
    PreEntityImages: list[_KeyValue] = Field(default_factory=list)
    PostEntityImages: list[_KeyValue] = Field(default_factory=list)


def parse_notification(body: Any) -> RemoteExecutionContext:
    """Validate a decoded JSON body as a webhook notification."""
    try:
        return RemoteExecutionContext.model_validate(body)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        raise InvalidNotification(
            f"not a RemoteExecutionContext: invalid {', '.join(fields)}"
        ) from None


def image_of(pairs: list[_KeyValue]) -> dict[str, Any] | None:
    """The attributes of the first entity image among ``pairs`` (pre or post images)."""
    for pair in pairs:
        value = pair.value
        if isinstance(value, dict) and isinstance(value.get("Attributes"), list):
            return normalize_entity_attributes(value["Attributes"])
    return None


def target_of(context: RemoteExecutionContext) -> dict[str, Any]:
    """The attributes of the ``Target`` input parameter (empty when it is not an entity)."""
    target = next((p.value for p in context.InputParameters if p.key == "Target"), None)
    if isinstance(target, dict) and isinstance(target.get("Attributes"), list):
        return normalize_entity_attributes(target["Attributes"])
    return {}


def notification_entity(context: RemoteExecutionContext) -> SourceEntity:
    """The captured entity a notification is about; unknown entities are invalid input."""
    entity = find_source_entity(System.SALES, context.PrimaryEntityName)
    if entity is None:
        raise NotCaptured(f"entity {context.PrimaryEntityName!r} is not captured")
    return entity


def operation_of(context: RemoteExecutionContext) -> Operation:
    """The change operation of a notification's message."""
    try:
        return _OPERATIONS[context.MessageName]
    except KeyError:
        raise NotCaptured(f"message {context.MessageName!r} is not captured") from None


def notification_images(
    context: RemoteExecutionContext, entity: SourceEntity
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(before, after)`` images: pre/post images, the Target when no post image exists."""
    images = _images(context, entity, operation_of(context))
    return images.before, images.after


@dataclass(frozen=True, slots=True)
class _Images:
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    post_version: Any


def _images(context: RemoteExecutionContext, entity: SourceEntity, operation: Operation) -> _Images:
    """Each image of a notification, normalized once (the webhook hot path reads them all)."""
    before = image_of(context.PreEntityImages)
    if operation is Operation.DELETE:
        return _Images(before, None, None)
    after = image_of(context.PostEntityImages)
    post_version = None if after is None else after.get("versionnumber")
    if after is None:
        after = {**(before or {}), **target_of(context)}
    if entity.id_attribute:
        after[entity.id_attribute] = str(context.PrimaryEntityId)
    return _Images(before, after, post_version)


@dataclass(frozen=True, slots=True)
class SalesNotification:
    """A notification about a captured Sales entity: its operation and images, normalized
    once. Building one raises :class:`NotCaptured` for an entity or message the bridge does
    not capture and :class:`InvalidNotification` for malformed images."""

    context: RemoteExecutionContext
    entity: SourceEntity
    operation: Operation
    images: _Images

    @classmethod
    def of(cls, context: RemoteExecutionContext) -> SalesNotification:
        """Check what ``context`` is about and normalize its images."""
        entity = notification_entity(context)
        operation = operation_of(context)
        return cls(context, entity, operation, _images(context, entity, operation))

    @property
    def needs_read(self) -> bool:
        """Whether the body lacks a post image with a version, so the record must be read."""
        return self.operation is not Operation.DELETE and self.images.post_version is None

    def event(self, after: dict[str, Any] | None = None) -> ChangeEvent:
        """The change event; ``after`` overrides the body's after image (a freshly read
        record when the body carries no version)."""
        context = self.context
        before = self.images.before
        after = after if after is not None else self.images.after
        image = after or before or {}
        when = (
            parse_iso(image.get("modifiedon"))
            or parse_wcf_date(context.OperationCreatedOn or "")
            or datetime.now(UTC)
        )
        principal = context.InitiatingUserId or context.UserId
        source = Source(
            system=System.SALES,
            entity=self.entity.entity,
            record_id=str(context.PrimaryEntityId),
            business_key=self.entity.business_key_of(image),
            record_version=_version(image.get("versionnumber")),
            change_time=when,
            changed_by=str(principal) if principal else None,
            capture=Capture.WEBHOOK,
        )
        correlation = str(context.CorrelationId) if context.CorrelationId else None
        return ChangeEvent.create(
            source, self.operation, before=before, after=after, correlation_id=correlation
        )


def notification_to_event(
    context: RemoteExecutionContext, entity: SourceEntity, after: dict[str, Any] | None = None
) -> ChangeEvent:
    """Build the change event of a notification. ``after`` overrides the body's after image
    (the receiver passes a freshly read record when the body carries no version)."""
    operation = operation_of(context)
    return SalesNotification(context, entity, operation, _images(context, entity, operation)).event(
        after
    )


def _version(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        raise InvalidNotification("versionnumber is not a number") from None


def needs_fresh_read(context: RemoteExecutionContext) -> bool:
    """Whether the body lacks a post image with a version, so the record must be read."""
    if operation_of(context) is Operation.DELETE:
        return False
    after = image_of(context.PostEntityImages)
    return after is None or after.get("versionnumber") is None
