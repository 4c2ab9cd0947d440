"""Declarative flow templates: a flow is data, validated once when it is loaded.

A template names its source entity and target entity set, the target key, a selection
filter, the field rules (source attribute, constant, default, value map, transform) and the
value maps. The shipped templates live in ``bridge/templates/*.json``; a user file can
override any of their values without code changes (see :mod:`bridge.mapping.loader`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.contract.envelope import System

Transform = Literal[
    "str", "upper", "lower", "strip", "int", "decimal", "yes_no", "bool", "date", "datetime"
]
Comparison = Literal["eq", "ne", "in", "not_in", "empty", "not_empty"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValueMap(_Model):
    """Translate source values to target values.

    Lookups ignore case and surrounding blanks. A blank source value uses the ``""`` entry
    when there is one (the spec's "Blank → US" rule). A value not in the map passes through
    unchanged unless ``strict`` is set, in which case it is a mapping error.
    """

    values: dict[str, Any]
    strict: bool = False


class BindVia(_Model):
    """An indirect lookup: the value names a record of ``entity_set`` (by ``match``); the
    bound record is one whose lookup column ``field`` points at it."""

    entity_set: str
    match: str
    field: str


class BindThrough(_Model):
    """The record another record names: the value names a record of ``entity_set`` (by
    ``match``), and the bound record is the one that record's lookup column ``field`` points
    at (the owner of the order with that number). The reverse of :class:`BindVia`."""

    entity_set: str
    match: str
    field: str


class BindCandidate(_Model):
    """A Dataverse lookup target: the record of ``entity_set`` whose ``match`` column equals
    the field's value (or that ``via`` or ``through`` finds), bound through the navigation
    property ``nav``. With several matches the first by ``order_by`` wins (e.g. price lists
    by name)."""

    nav: str
    entity_set: str
    match: str | None = None
    via: BindVia | None = None
    through: BindThrough | None = None
    order_by: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> BindCandidate:
        ways = [w for w in (self.match, self.via, self.through) if w is not None]
        if len(ways) != 1:
            raise ValueError(
                f"bind to {self.entity_set} needs exactly one of match, via or through"
            )
        return self


class FieldRule(_Model):
    """How one target field gets its value.

    Order: ``constant`` wins outright; else the ``source`` attribute (or ``fallback`` when
    it is blank), through ``value_map`` and ``transform``; a result that is missing or blank
    becomes ``default``. The ``date`` and ``datetime`` transforms read F&O's empty date
    (1900-01-01) as blank, so it is never copied as a date. A ``required`` field that is
    still empty makes the event a mapping error. A field with ``bind`` is a
    Dataverse lookup: its value is a business key, resolved to the record it names (the
    first candidate that exists). ``on_create_only`` fields are written when the target
    record is created and never overwritten (the ``>`` map type of Microsoft's templates).
    """

    target: str
    source: str | None = None
    fallback: str | None = None
    constant: Any = None
    default: Any = None
    value_map: str | None = None
    transform: Transform | None = None
    required: bool = False
    max_length: int | None = Field(default=None, ge=1)
    bind: list[BindCandidate] = Field(default_factory=list)
    on_create_only: bool = False

    @model_validator(mode="after")
    def _has_a_value(self) -> FieldRule:
        if self.source is None and self.constant is None and self.default is None:
            raise ValueError(f"field {self.target!r} needs a source, a constant or a default")
        return self


class Condition(_Model):
    """One test of a source attribute; a template's filter is a list that must all hold."""

    field: str
    op: Comparison = "eq"
    value: Any = None


class Lookup(_Model):
    """Resolve a Dataverse lookup of the source record to columns of the record it names.

    The resolved columns join the image as ``<name>.<alias>``; ``targets`` maps each
    possible entity (a polymorphic lookup has several) to ``{alias: column}``.
    """

    name: str
    field: str
    type_field: str | None = None
    targets: dict[str, dict[str, str]] = Field(min_length=1)


class FnoLookup(_Model):
    """Read the F&O record a source record names and add some of its columns to the image.

    The record is the one of ``entity_set`` whose fields equal ``match`` (entity field →
    source attribute, or a column of an earlier lookup such as ``invoice.customer``); its
    ``columns`` join the image as ``<name>.<alias>``. A blank match value names no record:
    the columns stay empty. A named record that does not exist is a missing prerequisite.
    """

    name: str
    entity_set: str
    match: dict[str, str] = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)


class Requirement(_Model):
    """A target record that must exist before this one is written (a header, a customer).

    ``key`` maps target key fields to source attributes; ``$company`` is the target company.
    """

    entity_set: str
    key: dict[str, str] = Field(min_length=1)


class Guard(_Model):
    """Conditions the EXISTING target record must meet for the write to go ahead; when they
    fail, the source version loses the conflict and is dead-lettered with ``reason``. With
    the template's ``conflict_resync`` the winning target record is published as a snapshot
    of that source entity, so the flow in the other direction writes it back over the
    losing edit and both sides end equal."""

    conditions: list[Condition] = Field(min_length=1)
    reason: str


class AlsoWrite(_Model):
    """A further write made with each event, e.g. marking the invoiced order (update only)."""

    target: TargetRef
    fields: list[FieldRule] = Field(min_length=1)
    update_only: bool = True


class Child(_Model):
    """A line flow applied with its header: when the header is applied, every current line
    of it in the source (the records whose ``match`` fields equal the header's) is applied
    too, so lines follow a header that only now passes its filter (an activated quote)."""

    flow: str
    match: dict[str, str] = Field(min_length=1)


class SourceRef(_Model):
    """The captured entity a template reads (a row of the source catalog)."""

    system: System
    entity: str


class TargetRef(_Model):
    """The entity set a template writes, its key fields and where the company goes."""

    system: System
    entity_set: str
    key: list[str] = Field(min_length=1)
    company_field: str | None = None


class Template(_Model):
    """One flow, as data."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str
    source: SourceRef
    target: TargetRef
    filter: list[Condition] = Field(default_factory=list)
    lookups: list[Lookup] = Field(default_factory=list)
    fno_lookups: list[FnoLookup] = Field(default_factory=list)
    fields: list[FieldRule] = Field(min_length=1)
    value_maps: dict[str, ValueMap] = Field(default_factory=dict)
    rules: list[str] = Field(default_factory=list)
    requires: list[Requirement] = Field(default_factory=list)
    guard: Guard | None = None
    conflict_resync: SourceRef | None = None
    also: list[AlsoWrite] = Field(default_factory=list)
    children: list[Child] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    apply_deletes: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        targets = [rule.target for rule in self.fields]
        duplicates = {t for t in targets if targets.count(t) > 1}
        if duplicates:
            raise ValueError(f"fields mapped twice: {sorted(duplicates)}")
        missing_maps = {r.value_map for r in self.fields if r.value_map} - set(self.value_maps)
        if missing_maps:
            raise ValueError(f"unknown value maps: {sorted(m for m in missing_maps if m)}")
        company = {self.target.company_field} if self.target.company_field else set()
        unmapped_keys = set(self.target.key) - set(targets) - company
        if unmapped_keys:
            raise ValueError(f"key fields without a rule: {sorted(unmapped_keys)}")
        self._lookups_in_order()
        return self

    @property
    def lookup_names(self) -> tuple[str, ...]:
        """Every lookup, in the order they are resolved: Sales lookups, then F&O lookups."""
        return tuple(lookup.name for lookup in self.lookups) + tuple(
            lookup.name for lookup in self.fno_lookups
        )

    def lookup_of(self, attribute: str) -> str | None:
        """The lookup whose column ``attribute`` is (``customer.number`` → ``customer``)."""
        prefix, dot, _ = attribute.partition(".")
        return prefix if dot and prefix in self.lookup_names else None

    def _lookups_in_order(self) -> None:
        names = self.lookup_names
        twice = {name for name in names if names.count(name) > 1}
        if twice:
            raise ValueError(f"lookup names used twice: {sorted(twice)}")
        for position, lookup in enumerate(self.fno_lookups, start=len(self.lookups)):
            used = {self.lookup_of(source) for source in lookup.match.values()}
            later = {name for name in names[position:] if name in used}
            if later:
                raise ValueError(f"lookup {lookup.name} uses {sorted(later)} before they resolve")

    def override(self, changes: dict[str, Any]) -> Template:
        """Return a copy with user overrides applied (validated like the original)."""
        return Template.model_validate(_deep_merge(self.model_dump(mode="json"), changes))


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if key == "fields" and isinstance(value, list):
            merged[key] = _merge_fields(base.get("fields", []), value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_fields(
    base: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Field overrides match on ``target``; ``{"target": X, "remove": true}`` drops a rule."""
    by_target = {rule["target"]: rule for rule in base}
    for change in changes:
        target = change["target"]
        if change.get("remove"):
            by_target.pop(target, None)
        elif target in by_target:
            by_target[target] = {**by_target[target], **change}
        else:
            by_target[target] = change
    return list(by_target.values())


AlsoWrite.model_rebuild()
Template.model_rebuild()
