"""Dataverse records as Web API JSON: ``@odata.etag``, ``_x_value`` lookups, ISO dates,
``$select``, ``$expand`` and the annotations asked for with ``odata.include-annotations``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from bridge.emulators.common.errors import bad_request
from bridge.emulators.common.protocol import Preferences
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.odata.entities import OPTION_KINDS, EntityDef, FieldDef, FieldKind
from bridge.emulators.odata.filter import DATAVERSE, compile_filter
from bridge.emulators.odata.query import (
    Expand,
    filter_rows,
    order_rows,
    parse_int_option,
    parse_orderby,
    parse_select,
)
from bridge.emulators.odata.values import LookupRef, iso_utc

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"


def etag(version: int) -> str:
    """The weak ETag of a record version: ``W/"<versionnumber>"``."""
    return f'W/"{version}"'


def json_value(value: Any) -> Any:
    """A stored value as Web API JSON."""
    if isinstance(value, LookupRef):
        return value.id
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def formatted_value(field: FieldDef, value: Any) -> str | None:
    """The ``FormattedValue`` annotation of a value (``None`` when it has none)."""
    if field.kind in OPTION_KINDS:
        return field.options.get(value)
    if field.kind is FieldKind.BOOLEAN:
        return "Yes" if value else "No"
    if field.kind is FieldKind.MONEY:
        return f"${value:,.2f}"
    if field.kind in (FieldKind.INTEGER, FieldKind.BIGINT):
        return f"{value:,}"
    if field.kind is FieldKind.DECIMAL:
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        hour = value.hour % 12 or 12
        return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"
    if isinstance(value, date):
        return f"{value.month}/{value.day}/{value.year}"
    return None


def select_context(entity: EntityDef, select: Sequence[str] | None) -> str:
    """``accounts`` or ``accounts(name,accountnumber)`` for ``@odata.context``."""
    return f"{entity.entity_set}({','.join(select)})" if select else entity.entity_set


class DataverseRenderer:
    """Renders records of one request (its service root and preferences)."""

    def __init__(self, tables: DataverseTables, service_root: str, prefer: Preferences) -> None:
        self.tables = tables
        self.service_root = service_root
        self.prefer = prefer
        self._formatted = prefer.wants_annotation(FORMATTED)  # asked once, not per attribute

    def context(self, entity: EntityDef, select: Sequence[str] | None, suffix: str = "") -> str:
        """The ``@odata.context`` URL of a response about ``entity``."""
        return f"{self.service_root}$metadata#{select_context(entity, select)}{suffix}"

    def entity_url(self, entity: EntityDef, record_id: str) -> str:
        """``<root>accounts(<id>)`` (the ``OData-EntityId`` header)."""
        return f"{self.service_root}{entity.entity_set}({record_id})"

    def record(
        self,
        entity: EntityDef,
        record: StoredRecord,
        select: Sequence[str] | None,
        expand: Sequence[Expand] = (),
    ) -> dict[str, Any]:
        """One record as JSON."""
        view = self.tables.view(entity, record)
        body: dict[str, Any] = {"@odata.etag": etag(record.version)}
        for field in entity.fields.values():
            wanted = select is None or field.web_name in select or field.name == entity.primary_id
            if field.readable and wanted:
                self._attribute(body, field, view.get(field.name))
        for item in expand:
            body[item.name] = self._expand(entity, view, item)
        return body

    def _attribute(self, body: dict[str, Any], field: FieldDef, value: Any) -> None:
        body[field.web_name] = json_value(value)
        if value is None:
            return
        if isinstance(value, LookupRef):
            self._lookup_annotations(body, field, value)
            return
        text = formatted_value(field, value) if self._formatted else None
        if text is not None:
            body[f"{field.web_name}@{FORMATTED}"] = text

    def _lookup_annotations(self, body: dict[str, Any], field: FieldDef, value: LookupRef) -> None:
        prefix = f"{field.web_name}@"
        if self.prefer.wants_annotation(FORMATTED):
            name = self.tables.primary_name(value)
            if name is not None:
                body[prefix + FORMATTED] = name
        if self.prefer.wants_annotation(NAVIGATION):
            nav = next(n for n, target in field.nav_properties().items() if target == value.entity)
            body[prefix + NAVIGATION] = nav
        if self.prefer.wants_annotation(LOGICAL_NAME):
            body[prefix + LOGICAL_NAME] = value.entity

    def _expand(self, entity: EntityDef, view: dict[str, Any], item: Expand) -> Any:
        if "$expand" in item.options:
            raise bad_request("Nested $expand is not supported by the emulator.")
        single = entity.nav_property(item.name)
        if single is not None:
            return self._expand_single(view.get(single[0].name), item)
        nav = entity.navigations.get(item.name)
        if nav is None or not nav.many:
            raise bad_request(
                f"Could not find a property named '{item.name}' on type '{entity.qualified_type}'."
            )
        target = self.tables.entity(nav.target)
        local, remote = nav.pairs[0]
        parent_id = view.get(local)
        children = [
            r
            for r in self.tables.store.records(target.name)
            if _ref_id(r.values.get(remote)) == parent_id
        ]
        return self._children(target, children, item)

    def _expand_single(self, value: Any, item: Expand) -> Any:
        if not isinstance(value, LookupRef):
            return None
        target = self.tables.entity(value.entity)
        record = self.tables.get(target, value.id)
        if record is None:
            return None
        select = parse_select(item.options.get("$select"), target.web_field, target.qualified_type)
        return self.record(target, record, select)

    def _children(
        self, target: EntityDef, rows: list[StoredRecord], item: Expand
    ) -> list[dict[str, Any]]:
        schema, type_name = target.web_field, target.qualified_type
        select = parse_select(item.options.get("$select"), schema, type_name)
        text = item.options.get("$filter")
        node = compile_filter(text, schema, type_name, DATAVERSE) if text else None
        resolve = self.tables.resolver(target)
        rows = filter_rows(rows, node, resolve, DATAVERSE)
        rows = order_rows(
            rows, parse_orderby(item.options.get("$orderby"), schema, type_name), resolve
        )
        top = parse_int_option("$top", item.options.get("$top"))
        return [self.record(target, row, select) for row in rows[:top]]


def _ref_id(value: Any) -> Any:
    return value.id if isinstance(value, LookupRef) else value
