"""Map a change event to target writes with a template. Pure: no I/O, no clock, no logger."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.contract.envelope import ChangeEvent, Operation
from bridge.errors import MappingError
from bridge.mapping.rules import apply_rules
from bridge.mapping.template import (
    AlsoWrite,
    Condition,
    FieldRule,
    FnoLookup,
    Template,
    ValueMap,
)
from bridge.mapping.writes import (
    BindRef,
    MappingContext,
    MappingResult,
    TargetWrite,
    WriteKind,
    blank,
    build_write,
)

COMPANY = "$company"
EMPTY_DATE = "1900-01-01"
"""F&O's empty date (``dateNull``): a date on or before it means "no date"."""

__all__ = [
    "BindRef",
    "MappingContext",
    "MappingResult",
    "TargetWrite",
    "WriteKind",
    "build_write",
    "condition_holds",
    "is_empty_date",
    "lookup_columns",
    "lookup_match",
    "map_event",
    "map_field",
    "map_fields",
    "selection_miss",
    "translate",
]


def map_event(template: Template, event: ChangeEvent, context: MappingContext) -> MappingResult:
    """Map one event with one template.

    A delete maps to a delete of the target key only when the template applies deletes; a
    record outside the template's filter maps to nothing. Raises :class:`MappingError` when a
    required field or a key field is empty or a strict value map has no entry.
    """
    if event.operation is Operation.DELETE and not template.apply_deletes:
        return MappingResult(skipped="deletes are not applied by this template")
    image = event.image
    missed = selection_miss(template, image)
    if missed is not None:
        return MappingResult(skipped=missed)
    deleting = event.operation is Operation.DELETE
    rules = [r for r in template.fields if r.target in template.target.key] if deleting else None
    values = map_fields(template, image, rules)
    if template.target.company_field:
        if not context.company:
            raise MappingError(f"no company for {template.name}")
        values[template.target.company_field] = context.company
    if deleting:
        main = TargetWrite(
            WriteKind.DELETE, template.target.entity_set, _key(template, values, event)
        )
        return MappingResult(writes=(main,))
    extra = apply_rules(template.rules, image, values, context)
    main = build_write(
        WriteKind.UPSERT,
        template.target.entity_set,
        _key(template, values, event),
        values,
        create_only=frozenset(r.target for r in template.fields if r.on_create_only),
        requires=tuple(
            _requirement(r.entity_set, r.key, image, context) for r in template.requires
        ),
        guard=template.guard,
    )
    also = tuple(_also_write(a, image, template.value_maps, context) for a in template.also)
    return MappingResult(writes=(main, *extra, *also))


def selection_miss(
    template: Template, image: Mapping[str, Any], resolved: Collection[str] | None = None
) -> str | None:
    """Why ``image`` is outside the template's selection, or ``None``.

    Selection comes before lookups: a condition on the record's own attributes is judged at
    once, a condition on a lookup's column (``<lookup>.<alias>``) only once that lookup is
    in ``resolved`` (every lookup when ``resolved`` is ``None``). A processor judges the
    selection before each lookup it resolves, so a record the filter leaves out is skipped
    before a lookup that would fail for it (a contact whose parent is a contact is not a
    contact person, and not a missing prerequisite either).
    """
    for condition in template.filter:
        lookup = template.lookup_of(condition.field)
        if lookup is not None and resolved is not None and lookup not in resolved:
            continue
        if not condition_holds(condition, image):
            return f"filter {condition.field} {condition.op} {condition.value!r}"
    return None


def lookup_match(lookup: FnoLookup, image: Mapping[str, Any]) -> dict[str, Any] | None:
    """The field values that find the F&O record ``lookup`` names, or ``None`` when one of
    them is blank (the record names none)."""
    match = {name: image.get(source) for name, source in lookup.match.items()}
    return None if any(blank(value) for value in match.values()) else match


def lookup_columns(lookup: FnoLookup, record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The columns a resolved F&O lookup adds to the image (empty when it named no record)."""
    found = record or {}
    return {f"{lookup.name}.{alias}": found.get(col) for alias, col in lookup.columns.items()}


def _key(template: Template, values: Mapping[str, Any], event: ChangeEvent) -> dict[str, Any]:
    key = {name: values.get(name) for name in template.target.key}
    empty = [name for name, value in key.items() if blank(value)]
    if empty:
        raise MappingError(f"key field(s) {', '.join(empty)} empty for {event.source.record_id}")
    return key


def _requirement(
    entity_set: str, key: Mapping[str, str], image: Mapping[str, Any], context: MappingContext
) -> tuple[str, Mapping[str, Any]]:
    values = {
        name: context.company if source == COMPANY else image.get(source)
        for name, source in key.items()
    }
    missing = [name for name, value in values.items() if blank(value)]
    if missing:
        raise MappingError(f"prerequisite {entity_set} key {', '.join(missing)} empty")
    return entity_set, values


def _also_write(
    also: AlsoWrite, image: Mapping[str, Any], maps: Mapping[str, ValueMap], context: MappingContext
) -> TargetWrite:
    values = {rule.target: map_field(rule, image, maps) for rule in also.fields}
    if also.target.company_field:
        values[also.target.company_field] = context.company
    key = {name: values.get(name) for name in also.target.key}
    if any(blank(value) for value in key.values()):
        raise MappingError(f"key of the {also.target.entity_set} write is empty")
    kind = WriteKind.UPDATE if also.update_only else WriteKind.UPSERT
    return build_write(kind, also.target.entity_set, key, values)


def map_fields(
    template: Template, image: Mapping[str, Any], rules: list[FieldRule] | None = None
) -> dict[str, Any]:
    """Apply the field rules of ``template`` (or just ``rules``) to a source image."""
    chosen = template.fields if rules is None else rules
    return {rule.target: map_field(rule, image, template.value_maps) for rule in chosen}


def map_field(rule: FieldRule, image: Mapping[str, Any], maps: Mapping[str, ValueMap]) -> Any:
    """The value of one target field (a :class:`BindRef` for a lookup)."""
    if rule.constant is not None:
        return rule.constant
    value = image.get(rule.source) if rule.source else None
    if blank(value) and rule.fallback:
        value = image.get(rule.fallback)
    if rule.value_map:
        value = translate(maps[rule.value_map], value, rule.target)
    if rule.transform and not blank(value):
        value = _transform(rule.transform, value, rule.target)
    if blank(value):
        value = rule.default
    if rule.required and blank(value):
        raise MappingError(f"required field {rule.target} (from {rule.source}) is empty")
    if rule.max_length and isinstance(value, str) and len(value) > rule.max_length:
        raise MappingError(f"{rule.target} longer than {rule.max_length} characters")
    if rule.bind and not blank(value):
        return BindRef(value, tuple(rule.bind))
    return value


def translate(value_map: ValueMap, value: Any, target: str) -> Any:
    """Look ``value`` up in a value map (case- and blank-insensitive)."""
    needle = "" if blank(value) else str(value).strip().lower()
    for source_value, target_value in value_map.values.items():
        if source_value.strip().lower() == needle:
            return target_value
    if value_map.strict and needle:
        raise MappingError(f"{target}: no value map entry for {value!r}")
    return value


def condition_holds(condition: Condition, image: Mapping[str, Any]) -> bool:
    """Evaluate one filter condition against a record (source image or target record)."""
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
            return blank(actual)
        case "not_empty":
            return not blank(actual)
    return False


def is_empty_date(value: Any) -> bool:
    """Whether ``value`` is F&O's empty date (1900-01-01 at any time of day, or earlier:
    an offset can move it to 1899-12-31, and ``0001-01-01`` is OData's minimum)."""
    text = str(value)
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[:10] <= EMPTY_DATE


def _transform(name: str, value: Any, target: str) -> Any:
    if name in ("date", "datetime") and is_empty_date(value):
        return None
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
            case "date":
                return str(value)[:10]
            case "datetime":
                text = str(value)
                return f"{text}T12:00:00Z" if len(text) == 10 else text
    except (ValueError, InvalidOperation) as exc:
        raise MappingError(f"{target}: cannot apply {name} to {value!r}") from exc
    raise MappingError(f"{target}: unknown transform {name}")
