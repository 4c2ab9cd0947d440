"""Apply one change event for one flow: drop echoes and unmapped companies, resolve lookups,
map, write, and name the lines a header cascades to.

The processor holds the flow's business rules and nothing about delivery: the engine
(:mod:`bridge.engine.runner`) decides whether an event is new enough, gives the processor the
record's state, and records the version when the processor reports the event applied. An
event outside the template's filter is not applied, so its version is not recorded: it may
qualify later (a line whose quote gets activated).

A header does not write its lines itself: it returns their current records as snapshot
events (``cascade``), which the engine publishes to the line flow's topic, so every line
write passes through the line flow's own version check and order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import ChangeEvent, Operation, System
from bridge.flows.lookups import LookupResolver
from bridge.mapping.engine import MappingContext, map_event
from bridge.mapping.template import Template
from bridge.sinks.base import ApplyOutcome, Sink
from bridge.sources.base import Sources

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Identities:
    """The principals the bridge itself writes as, per system, to recognise its own echoes."""

    by_system: Mapping[System, frozenset[str]] = field(default_factory=dict)

    def is_bridge(self, system: System, principal: str | None) -> bool:
        """Whether ``principal`` is the bridge's own identity on ``system``."""
        if not principal:
            return False
        return principal.strip("{}").lower() in self.by_system.get(system, frozenset())


Cascade = tuple[tuple[SourceEntity, ChangeEvent], ...]


@dataclass(frozen=True, slots=True)
class Processed:
    """What happened to one event: outcomes of its writes, or why it was skipped, and the
    line snapshots a header cascades to."""

    outcomes: tuple[ApplyOutcome, ...] = ()
    skipped: str | None = None
    cascade: Cascade = ()


@dataclass(frozen=True, slots=True)
class ChildFlow:
    """A line flow a header cascades to: its source entity and how lines name the header."""

    flow: str
    entity: SourceEntity
    match: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class FlowContext:
    """What every processor of one bridge process shares."""

    identities: Identities
    companies: CompanySettings
    sources: Sources
    resolver: LookupResolver | None = None


class FlowProcessor:
    """Maps and applies events of one flow; idempotent and safe to call again after a crash."""

    def __init__(
        self,
        template: Template,
        sink: Sink,
        entity: SourceEntity,
        context: FlowContext,
        children: tuple[ChildFlow, ...] = (),
    ) -> None:
        self.template = template
        self.entity = entity
        self._sink = sink
        self._context = context
        self._children = children

    def skip_reason(self, event: ChangeEvent) -> str | None:
        """Why an event must not be applied by this flow (an echo of the bridge's own
        write), or ``None``."""
        if self._context.identities.is_bridge(event.source.system, event.source.changed_by):
            return "echo of the bridge's own write"
        return None

    def company(self, event: ChangeEvent) -> str | None:
        """The F&O company of an event, or ``None`` when its company is not mapped."""
        return self._context.sources.company(event, self._context.companies)

    async def process(self, event: ChangeEvent, known_key: str | None = None) -> Processed:
        """Apply ``event``; raises the error tree's errors for the engine to handle.
        ``known_key`` is the business key stored when the record was last applied (a delete
        seen by change tracking carries none)."""
        reason = self.skip_reason(event)
        company = self.company(event)
        if reason is None and company is None:
            reason = (
                f"company {event.source.company} is not mapped"
                if event.source.company
                else "its business unit is not mapped to a company"
            )
        if reason is not None:
            self._log(event, skipped=reason)
            return Processed(skipped=reason)
        event, miss = await self._enriched(event)
        if miss is not None:
            self._log(event, skipped=miss)
            return Processed(skipped=miss)
        event = self._with_known_key(event, known_key)
        result = map_event(self.template, event, MappingContext(company=company))
        # the writes of one change go together: all or none (a product and its price)
        outcomes = await self._sink.apply_all(result.writes) if result.writes else []
        if result.skipped:
            self._log(event, skipped=result.skipped)
            return Processed(skipped=result.skipped)
        cascade = await self._cascade(event)
        self._log(event, outcomes=outcomes, keys=[w.key_text for w in result.writes])
        return Processed(outcomes=tuple(outcomes), cascade=cascade)

    def _with_known_key(self, event: ChangeEvent, known_key: str | None) -> ChangeEvent:
        """A delete seen by change tracking has no image; use the business key stored when
        the record was last applied, so a template that applies deletes can address it."""
        if event.operation is not Operation.DELETE or event.before or not known_key:
            return event
        return replace(event, before={self.entity.business_key: known_key})

    async def _enriched(self, event: ChangeEvent) -> tuple[ChangeEvent, str | None]:
        """The event with its lookups resolved, and why it is outside the selection."""
        resolver = self._context.resolver
        has_lookups = self.template.lookups or self.template.fno_lookups
        if not has_lookups or resolver is None or event.operation is Operation.DELETE:
            return event, None
        after, miss = await resolver.enrich(self.template, event.image)
        return replace(event, after=after), miss

    async def _cascade(self, header: ChangeEvent) -> Cascade:
        """The current lines of a header, as snapshots for their line flows."""
        if header.operation is Operation.DELETE:
            return ()
        sources = self._context.sources
        cascade: list[tuple[SourceEntity, ChangeEvent]] = []
        for child in self._children:
            wanted = {name: header.image.get(source) for name, source in child.match.items()}
            for record in await sources.children(child.entity, wanted):
                cascade.append((child.entity, sources.snapshot(child.entity, record, header)))
        return tuple(cascade)

    def _log(
        self,
        event: ChangeEvent,
        *,
        skipped: str | None = None,
        outcomes: list[ApplyOutcome] | None = None,
        keys: list[str] | None = None,
    ) -> None:
        latency = (datetime.now(UTC) - event.source.change_time).total_seconds()
        context = {
            "flow": self.template.name,
            "event_id": event.event_id,
            "source_key": event.source.business_key or event.source.record_id,
            "latency_ms": round(latency * 1000),
        }
        if skipped:
            log.info("change_skipped", **context, reason=skipped)
        else:
            log.info(
                "change_applied",
                **context,
                target_key=";".join(keys or []),
                outcome=",".join(outcomes or []),
            )
