"""Map a change event to target writes with a template. Pure: no I/O, no clock, no logger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from bridge.contract.envelope import ChangeEvent, Operation
from bridge.errors import MappingError
from bridge.mapping.template import Condition, FieldRule, Template, ValueMap


class WriteKind(StrEnum):
    """What a sink must do with a mapped record."""

    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class TargetWrite:
    """One idempotent write: the target record identified by ``key``, with ``body``."""

    kind: WriteKind
    entity_set: str
    key: Mapping[str, Any]
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key_text(self) -> str:
        """The key as one readable string, for logs and counters."""
        return ",".join(f"{name}={value}" for name, value in self.key.items())


@dataclass(frozen=True, slots=True)
class MappingContext:
    """What a mapping needs besides the event: the target company (F&O ``dataAreaId``)."""

    company: str | None = None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The writes for one event, or why there are none."""

    writes: tuple[TargetWrite, ...] = ()
    skipped: str | None = None


def map_event(template: Template, event: ChangeEvent, context: MappingContext) -> MappingResult:
    """Map one event with one template.

    A delete maps to a delete of the target key only when the template applies deletes; a
    record outside the template's filter maps to nothing. Raises :class:`MappingError` when a
    required field or a key field is empty or a strict value map has no entry.
    """
    if event.operation is Operation.DELETE and not template.apply_deletes:
        return MappingResult(skipped="deletes are not applied by this template")
    image = event.image
    failed = next((c for c in template.filter if not condition_holds(c, image)), None)
    if failed is not None:
        return MappingResult(skipped=f"filter {failed.field} {failed.op} {failed.value!r}")
    body = map_fields(template, image)
    if template.target.company_field:
        if not context.company:
            raise MappingError(f"no company for {template.name}")
        body[template.target.company_field] = context.company
    key = {name: body.get(name) for name in template.target.key}
    empty = [name for name, value in key.items() if value in (None, "")]
    if empty:
        raise MappingError(f"key field(s) {', '.join(empty)} empty for {event.source.record_id}")
    kind = WriteKind.DELETE if event.operation is Operation.DELETE else WriteKind.UPSERT
    write = TargetWrite(
        kind, template.target.entity_set, key, body if kind is WriteKind.UPSERT else {}
    )
    return MappingResult(writes=(write,))


def map_fields(template: Template, image: Mapping[str, Any]) -> dict[str, Any]:
    """Apply every field rule of ``template`` to a source image."""
    return {rule.target: map_field(rule, image, template.value_maps) for rule in template.fields}


def map_field(rule: FieldRule, image: Mapping[str, Any], maps: Mapping[str, ValueMap]) -> Any:
    """The value of one target field."""
    if rule.constant is not None:
        return rule.constant
    value = image.get(rule.source) if rule.source else None
    if rule.value_map:
        value = translate(maps[rule.value_map], value, rule.target)
    if rule.transform and not _blank(value):
        value = _transform(rule.transform, value, rule.target)
    if _blank(value):
        value = rule.default
    if rule.required and _blank(value):
        raise MappingError(f"required field {rule.target} (from {rule.source}) is empty")
    if rule.max_length and isinstance(value, str) and len(value) > rule.max_length:
        raise MappingError(f"{rule.target} longer than {rule.max_length} characters")
    return value


def translate(value_map: ValueMap, value: Any, target: str) -> Any:
    """Look ``value`` up in a value map (case- and blank-insensitive)."""
    needle = "" if _blank(value) else str(value).strip().lower()
    for source_value, target_value in value_map.values.items():
        if source_value.strip().lower() == needle:
            return target_value
    if value_map.strict and needle:
        raise MappingError(f"{target}: no value map entry for {value!r}")
    return value


def condition_holds(condition: Condition, image: Mapping[str, Any]) -> bool:
    """Evaluate one filter condition against a source image."""
    actual = image.get(condition.field)
    match condition.op:
        case "eq":
            return bool(actual == condition.value)
        case "ne":
            return bool(actual != condition.value)
        case "in":
            return actual in condition.value
        case "not_in":
            return actual not in condition.value
        case "empty":
            return _blank(actual)
        case "not_empty":
            return not _blank(actual)
    return False


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _transform(name: str, value: Any, target: str) -> Any:
    try:
        match name:
            case "str":
                return str(value)
            case "upper":
                return str(value).upper()
            case "lower":
                return str(value).lower()
            case "strip":
                return str(value).strip()
            case "int":
                return int(value)
            case "decimal":
                return float(Decimal(str(value)))
            case "yes_no":
                return "Yes" if value in (True, "Yes", "yes", 1) else "No"
            case "bool":
                return value in (True, "Yes", "yes", 1, "true")
    except (ValueError, InvalidOperation) as exc:
        raise MappingError(f"{target}: cannot apply {name} to {value!r}") from exc
    raise MappingError(f"{target}: unknown transform {name}")
