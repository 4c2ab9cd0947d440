"""``Microsoft.Xrm.Sdk.RemoteExecutionContext`` JSON, as Dataverse posts it to webhooks.

Shape per dynamics-apis.md A.9 (DataContract JSON: collections are ``{"key", "value"}``
lists, dates ``/Date(ms)/``). Typed attribute values (decided, see docs/emulators.md):
choices are ``OptionSetValue``, currency ``Money``, lookups ``EntityReference`` (attribute
name = logical name), all with ``__type`` ``<Type>:http://schemas.microsoft.com/xrm/2011/
Contracts``. Create has ``OutputParameters`` ``[{"key": "id", ...}]``; Delete's Target is an
``EntityReference``. A data event's Target (``OnExternal*`` on a virtual table) is an
``Entity`` whose ``RowVersion`` is the F&O ``SysRowVersion`` of the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bridge.emulators.common.principals import Principal
from bridge.emulators.odata.entities import OPTION_KINDS, EntityDef, FieldKind
from bridge.emulators.odata.values import LookupRef, wcf_date

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"


@dataclass(frozen=True)
class Organization:
    """The organization the context comes from."""

    organization_id: str
    name: str
    business_unit_id: str


@dataclass(frozen=True)
class Image:
    """A registered entity image to include: alias and attributes (None = all)."""

    alias: str
    attributes: frozenset[str] | None


def typed_value(entity: EntityDef, name: str, value: Any) -> Any:
    """An attribute value in DataContract JSON."""
    field = entity.field(name)
    if value is None or field is None:
        return value
    if isinstance(value, LookupRef):
        return entity_reference(value.entity, value.id)
    if field.kind in OPTION_KINDS:
        return {"__type": f"OptionSetValue:{CONTRACTS}", "Value": value}
    if field.kind is FieldKind.MONEY:
        return {"__type": f"Money:{CONTRACTS}", "Value": value}
    if isinstance(value, datetime | date):
        return wcf_date(value)
    return value


def entity_reference(logical_name: str, record_id: str, name: str | None = None) -> dict[str, Any]:
    """An ``EntityReference``."""
    return {
        "__type": f"EntityReference:{CONTRACTS}",
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "Name": name,
        "RowVersion": None,
    }


def entity_json(
    entity: EntityDef,
    record_id: str,
    attributes: Mapping[str, Any],
    *,
    typed: bool = True,
    row_version: int | None = None,
) -> dict[str, Any]:
    """An ``Entity`` with ``Attributes`` and ``FormattedValues`` for choices (and its
    ``RowVersion`` when given)."""
    pairs = [
        {"key": name, "value": typed_value(entity, name, value)}
        for name, value in attributes.items()
    ]
    formatted = []
    for name, value in attributes.items():
        field = entity.field(name)
        if field is not None and field.kind in OPTION_KINDS and value in field.options:
            formatted.append({"key": name, "value": field.options[value]})
    body: dict[str, Any] = {"__type": f"Entity:{CONTRACTS}"} if typed else {}
    body.update(
        {
            "Attributes": pairs,
            "EntityState": None,
            "FormattedValues": formatted,
            "Id": record_id,
            "KeyAttributes": [],
            "LogicalName": entity.name,
            "RelatedEntities": [],
            "RowVersion": None if row_version is None else str(row_version),
        }
    )
    return body


def image_attributes(view: Mapping[str, Any], image: Image) -> dict[str, Any]:
    """The non-null attributes of a record an image carries."""
    return {
        k: v
        for k, v in view.items()
        if v is not None and (image.attributes is None or k in image.attributes)
    }


@dataclass(frozen=True)
class ContextInput:
    """Everything one notification is built from."""

    message: str
    entity: EntityDef
    record_id: str
    target: Mapping[str, Any] | None
    pre_images: Sequence[tuple[Image, Mapping[str, Any]]]
    post_images: Sequence[tuple[Image, Mapping[str, Any]]]
    principal: Principal
    step_id: str
    step_name: str
    mode: int
    correlation_id: str
    created_on: datetime
    depth: int = 1
    row_version: int | None = None


def build_context(data: ContextInput, org: Organization) -> dict[str, Any]:
    """The RemoteExecutionContext of one step for one operation."""
    entity = data.entity
    if data.target is None:
        target: dict[str, Any] = entity_reference(entity.name, data.record_id)
    else:
        target = entity_json(entity, data.record_id, data.target, row_version=data.row_version)
    outputs = [{"key": "id", "value": data.record_id}] if data.message == "Create" else []
    return {
        "BusinessUnitId": org.business_unit_id,
        "CorrelationId": data.correlation_id,
        "Depth": data.depth,
        "InitiatingUserAzureActiveDirectoryObjectId": data.principal.object_id,
        "InitiatingUserId": data.principal.systemuser_id,
        "InputParameters": [{"key": "Target", "value": target}],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": data.message,
        "Mode": data.mode,
        "OperationCreatedOn": wcf_date(data.created_on),
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": org.organization_id,
        "OrganizationName": org.name,
        "OutputParameters": outputs,
        "OwningExtension": {
            "Id": data.step_id,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": data.step_name,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": [
            {"key": image.alias, "value": entity_json(entity, data.record_id, values, typed=False)}
            for image, values in data.post_images
        ],
        "PreEntityImages": [
            {"key": image.alias, "value": entity_json(entity, data.record_id, values, typed=False)}
            for image, values in data.pre_images
        ],
        "PrimaryEntityId": data.record_id,
        "PrimaryEntityName": entity.name,
        "RequestId": str(uuid.uuid4()),
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserAzureActiveDirectoryObjectId": data.principal.object_id,
        "UserId": data.principal.systemuser_id,
    }
