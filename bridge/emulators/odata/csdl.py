"""A minimal OData CSDL (``$metadata``) document generated from entity definitions.

Enough for tools that list entity sets, keys and property types: entity types with keys and
properties, F&O enum types with their known members, entity sets, actions, and the Dataverse
``Org.OData.Capabilities.V1.ChangeTracking`` annotation on change-tracked sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from bridge.emulators.odata.entities import EntityDef, EntityRegistry, FieldKind, System
from bridge.emulators.odata.values import edm_type


def _entity_type(entity: EntityDef, namespace: str) -> list[str]:
    lines = [f"<EntityType Name={quoteattr(entity.type_name)}>", "<Key>"]
    lines += [f"<PropertyRef Name={quoteattr(key)} />" for key in entity.keys]
    lines.append("</Key>")
    for field in entity.fields.values():
        if not field.readable:
            continue
        type_name = edm_type(field)
        if field.kind is FieldKind.ENUM:
            type_name = f"{namespace}.{field.enum_type}"
        nullable = "true" if field.nullable else "false"
        lines.append(
            f'<Property Name={quoteattr(field.web_name)} Type={quoteattr(type_name)} Nullable="{nullable}" />'
        )
    lines.append("</EntityType>")
    return lines


def _enum_types(registry: EntityRegistry) -> list[str]:
    seen: dict[str, tuple[str, ...]] = {}
    for entity in registry:
        for field in entity.fields.values():
            if field.kind is FieldKind.ENUM:
                seen.setdefault(field.enum_type, field.enum_symbols)
    lines = []
    for name, symbols in sorted(seen.items()):
        members = "".join(
            f'<Member Name={quoteattr(s)} Value="{i}" />' for i, s in enumerate(symbols)
        )
        lines.append(f"<EnumType Name={quoteattr(name)}>{members}</EnumType>")
    return lines


def _entity_set(entity: EntityDef, namespace: str) -> str:
    opening = f"<EntitySet Name={quoteattr(entity.entity_set)} EntityType={quoteattr(f'{namespace}.{entity.type_name}')}"
    if entity.system is System.DATAVERSE and entity.change_tracking:
        tracking = (
            '<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record>'
            '<PropertyValue Property="Supported" Bool="true" /></Record></Annotation>'
        )
        return f"{opening}>{tracking}</EntitySet>"
    return f"{opening} />"


def csdl(
    registry: EntityRegistry,
    namespace: str,
    container: str,
    actions: Sequence[str] = (),
    imports: Sequence[str] = (),
) -> bytes:
    """The EDMX document of ``registry`` plus ``actions`` (schema elements) and ``imports``
    (entity container elements)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        f'<Schema Namespace="{namespace}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        *_enum_types(registry),
    ]
    for entity in registry:
        lines += _entity_type(entity, namespace)
    lines += actions
    lines.append(f"<EntityContainer Name={quoteattr(container)}>")
    lines += [_entity_set(entity, namespace) for entity in registry]
    lines += imports
    lines += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(lines).encode()
