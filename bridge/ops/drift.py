"""Compare what a flow's template maps the source records to with the target's records.

Pure: no I/O, no clock, no logger; :mod:`bridge.ops.reconcile` is the shell around it.
Target records come in the template's terms (:mod:`bridge.ops.targets`): a Dataverse
lookup holds the business key of the record it names, under the field's name.

- *missing*: a source record maps to a target key the target does not have;
- *different*: the target record exists but a mapped field differs, compared exactly as the
  sinks compare before they write (:func:`bridge.fno.sink.changed_fields`), without the
  fields the template writes only on create, and only where the record passes the write's
  guard (a record that fails it is one the flow deliberately no longer updates). A lookup
  differs when it names a record with another business key (case-insensitive, as
  Dataverse matches it); a lookup the mapping leaves empty is not compared, because the
  sink never clears one;
- *extra*: a target record the flow owns whose key no source record maps to. The flow owns
  the target records in a company that takes part, that hold every constant of its
  template (for accounts: ``PartyType = Organization`` and ``IsExternallyMaintained = Yes``)
  and a value in every field it requires (which the flow always writes); other records are
  never reported. When the template does not apply deletes, a source delete leaves its
  target record behind on purpose, so extras are reported but are not drift.

Only the flow's main write is compared (not the extra writes of rules or ``also``). Source
records outside the template's filter or of a company that is not mapped are not expected in
the target; records that cannot be mapped are listed as *unmappable* (their events are in the
dead-letter topic or waiting for a prerequisite).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.config import CompanySettings
from bridge.contract.envelope import ChangeEvent, System
from bridge.dataverse.source import event_company as dataverse_company
from bridge.errors import MappingError
from bridge.fno.sink import changed_fields, same_value
from bridge.fno.source import event_company as fno_company
from bridge.mapping.engine import (
    MappingContext,
    TargetWrite,
    WriteKind,
    condition_holds,
    map_event,
)
from bridge.mapping.template import FieldRule, Template
from bridge.mapping.writes import blank
from bridge.ops.lookup_keys import bound_through

TargetKey = tuple[str, ...]


class DriftKind(StrEnum):
    """How a target record differs from what the flow would make of the source."""

    MISSING = "missing"
    DIFFERENT = "different"
    EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class FieldDrift:
    """One mapped field whose target value differs from the source's mapped value."""

    field: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class RecordDrift:
    """One drifted target record; ``event`` is the source snapshot that would correct it."""

    kind: DriftKind
    target_key: str
    record_id: str | None = None
    business_key: str | None = None
    fields: tuple[FieldDrift, ...] = ()
    event: ChangeEvent | None = field(default=None, compare=False, repr=False)
    key_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unmappable:
    """A source record the template cannot map, and why."""

    record_id: str
    business_key: str | None
    error: str


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A source snapshot prepared for mapping: its target company (``None``: the company
    does not take part) or why it could not be prepared (a lookup names no record)."""

    event: ChangeEvent
    company: str | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Expected:
    """A source record's mapped write and the event it was mapped from."""

    write: TargetWrite
    event: ChangeEvent


@dataclass(slots=True)
class ExpectedTargets:
    """What the target should hold, by normalised target key."""

    by_key: dict[TargetKey, Expected] = field(default_factory=dict)
    unmappable: list[Unmappable] = field(default_factory=list)
    filtered: int = 0


@dataclass(slots=True)
class DriftReport:
    """The outcome of one reconcile. ``checked`` counts source records compared."""

    flow: str
    checked: int = 0
    missing: list[RecordDrift] = field(default_factory=list)
    different: list[RecordDrift] = field(default_factory=list)
    extra: list[RecordDrift] = field(default_factory=list)
    unmappable: list[Unmappable] = field(default_factory=list)
    filtered: int = 0
    guarded: int = 0
    extra_is_drift: bool = True

    @property
    def drifted(self) -> bool:
        """Whether the target must be corrected (missing, different, or owned extras when
        the flow applies deletes)."""
        return bool(self.missing or self.different or (self.extra_is_drift and self.extra))

    @property
    def corrections(self) -> list[ChangeEvent]:
        """The source snapshots whose re-application corrects missing and different records."""
        return [d.event for d in (*self.missing, *self.different) if d.event is not None]

    def summary(self) -> str:
        """One line: what was compared and what was found."""
        extra = f"{len(self.extra)} extra" + ("" if self.extra_is_drift else " (not drift)")
        return (
            f"{self.flow}: {self.checked} checked, {len(self.missing)} missing, "
            f"{len(self.different)} different, {extra}, {len(self.unmappable)} unmappable, "
            f"{self.filtered} not for the target, {self.guarded} past their guard"
        )


def normalized_key(template: Template, values: Mapping[str, Any]) -> TargetKey:
    """The target key of ``values``; Dynamics keys compare case-insensitively."""
    return tuple(str(values.get(name) or "").casefold() for name in template.target.key)


def event_company(event: ChangeEvent, companies: CompanySettings) -> str | None:
    """The target company of a source record, as the flow processor determines it: an F&O
    record's own company when it is mapped, a Sales record's by its owning business unit."""
    if event.source.system is System.FNO:
        return fno_company(event, companies)
    return dataverse_company(event, companies)


def expect(template: Template, records: Iterable[SourceRecord]) -> ExpectedTargets:
    """Map every source record; a second record mapping to a taken key is unmappable."""
    expected = ExpectedTargets()
    for record in records:
        event = record.event
        if record.problem is not None:
            expected.unmappable.append(_unmappable(event, record.problem))
            continue
        if record.company is None:
            expected.filtered += 1
            continue
        try:
            result = map_event(template, event, MappingContext(company=record.company))
        except MappingError as exc:
            expected.unmappable.append(_unmappable(event, str(exc)))
            continue
        main = result.writes[0] if result.writes else None
        if main is None or main.kind is WriteKind.DELETE:
            expected.filtered += 1
            continue
        key = normalized_key(template, main.key)
        taken = expected.by_key.get(key)
        if taken is not None:
            clash = f"maps to {main.key_text} like {taken.event.source.record_id}"
            expected.unmappable.append(_unmappable(event, clash))
            continue
        expected.by_key[key] = Expected(main, event)
    return expected


def owned(template: Template, record: Mapping[str, Any], companies: CompanySettings) -> bool:
    """Whether ``record`` belongs to the flow: a company that takes part, every constant,
    and a value in every required field."""
    company_field = template.target.company_field
    if company_field and not companies.is_mapped(str(record.get(company_field) or "")):
        return False
    return all(_written_by(rule, record.get(rule.target)) for rule in template.fields)


def _written_by(rule: FieldRule, value: Any) -> bool:
    """Whether ``value`` can be what ``rule`` writes: its constant, and for a required rule
    anything but blank."""
    if rule.constant is not None:
        return same_value(value, rule.constant)
    return not (rule.required and blank(value))


def same_key(current: Any, wanted: Any) -> bool:
    """Whether a lookup names the record ``wanted`` binds: business keys compare
    case-insensitively, as Dataverse matches them."""
    return current is not None and str(current).casefold() == str(wanted).casefold()


def compare(
    template: Template,
    expected: ExpectedTargets,
    targets: Iterable[Mapping[str, Any]],
    companies: CompanySettings,
) -> DriftReport:
    """The drift between the expected targets and the target's records."""
    report = DriftReport(
        template.name,
        checked=len(expected.by_key),
        unmappable=list(expected.unmappable),
        filtered=expected.filtered,
        extra_is_drift=template.apply_deletes,
    )
    lookups = frozenset(rule.target for rule in template.fields if rule.bind)
    seen: set[TargetKey] = set()
    for record in targets:
        key = normalized_key(template, record)
        wanted = expected.by_key.get(key)
        if wanted is None:
            if owned(template, record, companies):
                report.extra.append(_extra(template, record))
            continue
        seen.add(key)
        if not _passes_guard(wanted.write, record):
            report.guarded += 1
            continue
        fields = _field_drift(record, wanted.write, lookups)
        if fields:
            report.different.append(_drift(DriftKind.DIFFERENT, wanted, fields))
    report.missing = [
        _drift(DriftKind.MISSING, wanted, ())
        for key, wanted in expected.by_key.items()
        if key not in seen
    ]
    return report


def _passes_guard(write: TargetWrite, record: Mapping[str, Any]) -> bool:
    guard = write.guard
    return guard is None or all(condition_holds(c, record) for c in guard.conditions)


def _field_drift(
    record: Mapping[str, Any], write: TargetWrite, lookups: frozenset[str]
) -> tuple[FieldDrift, ...]:
    skipped = write.create_only | lookups
    changed = [name for name in changed_fields(record, write) if name not in skipped]
    drift = [FieldDrift(name, write.body[name], record.get(name)) for name in changed]
    drift += [
        FieldDrift(name, ref.value, record.get(name))
        for name, ref in write.binds.items()
        if name not in write.create_only
        and not bound_through(ref.candidates)
        and not same_key(record.get(name), ref.value)
    ]
    return tuple(drift)


def _drift(kind: DriftKind, wanted: Expected, fields: tuple[FieldDrift, ...]) -> RecordDrift:
    source, key = wanted.event.source, wanted.write.key
    return RecordDrift(
        kind,
        wanted.write.key_text,
        source.record_id,
        source.business_key,
        fields,
        wanted.event,
        tuple(str(value) for value in key.values()),
    )


def _extra(template: Template, record: Mapping[str, Any]) -> RecordDrift:
    values = tuple(str(record.get(name)) for name in template.target.key)
    key_text = ",".join(
        f"{name}={value}" for name, value in zip(template.target.key, values, strict=True)
    )
    return RecordDrift(DriftKind.EXTRA, key_text, key_values=values)


def _unmappable(event: ChangeEvent, error: str) -> Unmappable:
    return Unmappable(event.source.record_id, event.source.business_key, error)
