"""Dataverse metadata: ``EntityDefinitions``, their ``Attributes`` and option sets.

Generated from the entity definitions, in the Web API's metadata shapes: entity metadata
(``LogicalName``, ``EntitySetName``, ``PrimaryIdAttribute``...), attribute metadata
(``AttributeType``, ``RequiredLevel``...) with type casts such as
``Microsoft.Dynamics.CRM.PicklistAttributeMetadata`` and
``$expand=OptionSet($select=Options)`` giving ``Options[].Value`` and
``Options[].Label.UserLocalizedLabel.Label``. ``$select`` and ``$filter`` work on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request
from bridge.emulators.common.principals import stable_id
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, json_response
from bridge.emulators.odata.entities import (
    OPTION_KINDS,
    EntityDef,
    EntityRegistry,
    FieldDef,
    FieldKind,
)
from bridge.emulators.odata.filter import DATAVERSE, compile_filter
from bridge.emulators.odata.keys import Segment, parse_key
from bridge.emulators.odata.query import filter_rows, parse_expand

CRM = "Microsoft.Dynamics.CRM."
_ATTRIBUTE_TYPES = {
    FieldKind.STRING: "String",
    FieldKind.MEMO: "Memo",
    FieldKind.INTEGER: "Integer",
    FieldKind.BIGINT: "BigInt",
    FieldKind.DECIMAL: "Decimal",
    FieldKind.MONEY: "Money",
    FieldKind.BOOLEAN: "Boolean",
    FieldKind.DATETIME: "DateTime",
    FieldKind.DATE: "DateTime",
    FieldKind.GUID: "Uniqueidentifier",
    FieldKind.PICKLIST: "Picklist",
    FieldKind.STATE: "State",
    FieldKind.STATUS: "Status",
    FieldKind.LOOKUP: "Lookup",
}
_METADATA_CLASS = {"Uniqueidentifier": "UniqueIdentifier", "Customer": "Lookup", "Owner": "Lookup"}


def label(text: str) -> dict[str, Any]:
    """A Dataverse ``Label`` with one 1033 localized label."""
    localized = {
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": True,
        "MetadataId": stable_id("label", text),
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def _attribute_type(field: FieldDef) -> str:
    if field.kind is FieldKind.LOOKUP and field.name == "ownerid":
        return "Owner"
    if field.kind is FieldKind.LOOKUP and len(field.targets) > 1:
        return "Customer" if set(field.targets) == {"account", "contact"} else "Lookup"
    return _ATTRIBUTE_TYPES[field.kind]


def metadata_class(field: FieldDef) -> str:
    """The metadata type name, e.g. ``PicklistAttributeMetadata``."""
    kind = _attribute_type(field)
    return f"{_METADATA_CLASS.get(kind, kind)}AttributeMetadata"


def entity_metadata(entity: EntityDef) -> dict[str, Any]:
    """The ``EntityMetadata`` of a table (virtual tables name their external entity)."""
    body: dict[str, Any] = {
        "MetadataId": stable_id("entity", entity.name),
        "LogicalName": entity.name,
        "SchemaName": entity.name.capitalize(),
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": entity.object_type_code,
        "ChangeTrackingEnabled": entity.change_tracking,
        "IsCustomEntity": bool(entity.external_name),
        "OwnershipType": "OrganizationOwned" if entity.organization_owned else "UserOwned",
        "DisplayName": label(entity.name.capitalize()),
        "TableType": "Virtual" if entity.external_name else "Standard",
    }
    if entity.external_name:
        body["ExternalName"] = entity.external_name
        body["ExternalCollectionName"] = entity.external_name
    return body


def _required_level(entity: EntityDef, field: FieldDef) -> str:
    if field.name == entity.primary_id:
        return "SystemRequired"
    return "ApplicationRequired" if field.required else "None"


def attribute_metadata(entity: EntityDef, field: FieldDef) -> dict[str, Any]:
    """The ``AttributeMetadata`` of a column."""
    kind = _attribute_type(field)
    body: dict[str, Any] = {
        "@odata.type": f"#{CRM}{metadata_class(field)}",
        "MetadataId": stable_id("attribute", entity.name, field.name),
        "LogicalName": field.name,
        "SchemaName": field.name.capitalize(),
        "EntityLogicalName": entity.name,
        "AttributeType": kind,
        "AttributeTypeName": {"Value": f"{kind}Type"},
        "IsPrimaryId": field.name == entity.primary_id,
        "IsPrimaryName": field.name == entity.primary_name,
        "IsValidForCreate": field.writable,
        "IsValidForUpdate": field.writable and field.name != entity.primary_id,
        "IsValidForRead": field.readable,
        "RequiredLevel": {"Value": _required_level(entity, field), "CanBeChanged": True},
        "DisplayName": label(field.name),
    }
    if field.max_length is not None:
        body["MaxLength"] = field.max_length
    if field.external_name:
        body["ExternalName"] = field.external_name
    if field.is_lookup:
        body["Targets"] = list(field.targets)
    return body


def option_set(entity: EntityDef, field: FieldDef) -> dict[str, Any]:
    """The ``OptionSet`` of a choice, state, status or two-option column; an F&O enum of a
    virtual table is a global option set whose options carry the enum symbol as
    ``ExternalValue``."""
    shared = bool(field.external_name and field.enum_type)
    body: dict[str, Any] = {
        "MetadataId": stable_id(
            "optionset", *((field.enum_type,) if shared else (entity.name, field.name))
        ),
        "Name": f"mserp_{field.enum_type.lower()}" if shared else f"{entity.name}_{field.name}",
        "IsGlobal": shared,
        "OptionSetType": _attribute_type(field),
    }
    if field.kind is FieldKind.BOOLEAN:
        body["TrueOption"] = {"Value": 1, "Label": label("Yes")}
        body["FalseOption"] = {"Value": 0, "Label": label("No")}
        return body
    options = []
    for value, text in field.options.items():
        option: dict[str, Any] = {"Value": value, "Label": label(text)}
        if shared:
            option["ExternalValue"] = text
        if field.kind is FieldKind.STATUS:
            option["State"] = field.option_states.get(value)
        options.append(option)
    body["Options"] = options
    return body


def _select(
    item: Mapping[str, Any], select: str | None, type_name: str = "EntityMetadata"
) -> dict[str, Any]:
    if not select:
        return dict(item)
    names = {name.strip() for name in select.split(",")}
    unknown = names - set(item)
    if unknown:
        raise bad_request(
            f"Could not find a property named '{sorted(unknown)[0]}' on type '{CRM}{type_name}'."
        )
    return {k: v for k, v in item.items() if k in names or k in ("MetadataId", "@odata.type")}


def _schema_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, FieldDef]:
    kinds = {bool: FieldKind.BOOLEAN, int: FieldKind.INTEGER, str: FieldKind.STRING}
    schema: dict[str, FieldDef] = {}
    for row in rows:
        for name, value in row.items():
            schema.setdefault(name, FieldDef(name, kinds.get(type(value), FieldKind.STRING)))
    return schema


def _filtered(rows: list[dict[str, Any]], text: str | None, type_name: str) -> list[dict[str, Any]]:
    if not text:
        return rows
    node = compile_filter(text, _schema_of(rows).get, type_name, DATAVERSE)
    return filter_rows(rows, node, lambda row, name: row.get(name), DATAVERSE)


class DataverseMetadata:
    """Answers ``EntityDefinitions`` requests."""

    def __init__(self, registry: EntityRegistry) -> None:
        self.registry = registry

    def handle(self, request: ApiRequest, segments: Sequence[Segment]) -> ApiResponse:
        """Dispatch a GET under ``EntityDefinitions``."""
        if request.method != "GET":
            raise ApiError(405, "Metadata is read-only in the emulator.")
        root = f"{request.service_root}$metadata#EntityDefinitions"
        if segments[0].key is None:
            rows = _filtered(
                [entity_metadata(e) for e in self.registry],
                request.query.get("$filter"),
                f"{CRM}EntityMetadata",
            )
            value = [_select(row, request.query.get("$select")) for row in rows]
            return json_response({"@odata.context": root, "value": value})
        entity = self._entity(segments[0].key)
        if len(segments) == 1:
            body = {
                "@odata.context": f"{root}/$entity",
                **_select(entity_metadata(entity), request.query.get("$select")),
            }
            return json_response(body)
        if segments[1].name != "Attributes":
            raise bad_request(f"Resource not found for the segment '{segments[1].name}'.")
        return self._attributes(
            request, entity, segments[1], segments[2:], f"{root}('{entity.name}')/Attributes"
        )

    def _entity(self, key_text: str) -> EntityDef:
        predicate = parse_key(key_text)
        name = predicate.named.get("LogicalName")
        for entity in self.registry:
            if (
                entity.name == name
                or stable_id("entity", entity.name) == str(predicate.single).lower()
            ):
                return entity
        raise ApiError(404, f"Could not find entity with key '{key_text}'.", code="0x80040217")

    def _attributes(
        self,
        request: ApiRequest,
        entity: EntityDef,
        segment: Segment,
        rest: Sequence[Segment],
        context: str,
    ) -> ApiResponse:
        cast = rest[0].name.removeprefix(CRM) if rest else None
        fields = [f for f in entity.fields.values() if cast is None or metadata_class(f) == cast]
        if segment.key is not None:
            wanted = parse_key(segment.key).named.get("LogicalName")
            fields = [f for f in fields if f.name == wanted]
            if not fields:
                raise ApiError(
                    404,
                    f"Could not find attribute '{wanted}' of entity '{entity.name}'.",
                    code="0x80040217",
                )
        by_name = {f.name: f for f in fields}
        full = _filtered(
            [attribute_metadata(entity, f) for f in fields],
            request.query.get("$filter"),
            f"{CRM}AttributeMetadata",
        )
        rows = [
            self._attribute_row(entity, by_name[row["LogicalName"]], row, request) for row in full
        ]
        suffix = f"/{CRM}{cast}" if cast else ""
        if segment.key is not None:
            return json_response({"@odata.context": f"{context}{suffix}/$entity", **rows[0]})
        return json_response({"@odata.context": f"{context}{suffix}", "value": rows})

    def _attribute_row(
        self, entity: EntityDef, field: FieldDef, row: dict[str, Any], request: ApiRequest
    ) -> dict[str, Any]:
        expand = parse_expand(request.query.get("$expand"))
        selected = _select(row, request.query.get("$select"), "AttributeMetadata")
        for item in expand:
            if item.name not in ("OptionSet", "GlobalOptionSet"):
                raise bad_request(
                    f"Could not find a property named '{item.name}' on type '{CRM}AttributeMetadata'."
                )
            has_options = field.kind in OPTION_KINDS or field.kind is FieldKind.BOOLEAN
            selected[item.name] = (
                _select(option_set(entity, field), item.options.get("$select"), "OptionSetMetadata")
                if has_options
                else None
            )
        return selected
