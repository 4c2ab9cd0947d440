"""Apply one change event for one flow: drop echoes, stale versions and unmapped companies,
resolve lookups, map, write, and apply the lines of a header with it.

The processor never commits offsets; it tells the consumer what happened. Versions applied
are returned, not stored, so the consumer can persist them in one write per batch before it
commits the batch's offsets. A version is recorded only when the event was applied: an event
outside the template's filter may qualify later (a line whose quote gets activated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System, now_millis
from bridge.flows.lookups import LookupResolver
from bridge.mapping.engine import MappingContext, map_event
from bridge.mapping.template import Template
from bridge.sinks.base import ApplyOutcome, Sink

log = structlog.get_logger(__name__)


class VersionLookup(Protocol):
    """Read access to the versions a flow applied (the state store)."""

    def get(self, key: str) -> Any:
        """The stored value for ``key`` or ``None``."""
        ...


class ChildReader(Protocol):
    """Reads the current line records of a header from the source system."""

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Every record of ``entity`` whose fields equal ``match``."""
        ...


@dataclass(frozen=True, slots=True)
class Identities:
    """The principals the bridge itself writes as, per system, to recognise its own echoes."""

    by_system: Mapping[System, frozenset[str]] = field(default_factory=dict)

    def is_bridge(self, system: System, principal: str | None) -> bool:
        """Whether ``principal`` is the bridge's own identity on ``system``."""
        if not principal:
            return False
        return principal.strip("{}").lower() in self.by_system.get(system, frozenset())


@dataclass(frozen=True, slots=True)
class Processed:
    """What happened to one event: outcomes of its writes, or why it was skipped."""

    outcomes: tuple[ApplyOutcome, ...] = ()
    skipped: str | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)


def version_key(flow: str, event: ChangeEvent) -> str:
    """The state-store key of the newest version a flow applied for one source record."""
    return f"applied|{flow}|{event.source.system.lower()}|{event.source.record_id.lower()}"


@dataclass(frozen=True, slots=True)
class FlowContext:
    """What every processor of one bridge process shares."""

    identities: Identities
    companies: CompanySettings
    applied_versions: VersionLookup
    resolver: LookupResolver | None = None
    readers: Mapping[System, ChildReader] = field(default_factory=dict)
    processors: dict[str, FlowProcessor] = field(default_factory=dict)


class FlowProcessor:
    """Maps and applies events of one flow; idempotent and safe to call again after a crash."""

    def __init__(
        self, template: Template, sink: Sink, entity: SourceEntity, context: FlowContext
    ) -> None:
        self.template = template
        self.entity = entity
        self._sink = sink
        self._context = context

    def skip_reason(self, event: ChangeEvent, *, reapply: bool = False) -> str | None:
        """Why an event must not be applied (echo or stale), or ``None``. With ``reapply``
        (an operator's corrective event) the version already applied is applied again; an
        older version never is."""
        if self._context.identities.is_bridge(event.source.system, event.source.changed_by):
            return "echo of the bridge's own write"
        applied = self._context.applied_versions.get(version_key(self.template.name, event))
        if not applied:
            return None
        if applied.get("deleted"):
            return "record already deleted"
        version = event.source.record_version
        applied_version = applied.get("version") or -1
        stale = version is not None and (
            version < applied_version or (version == applied_version and not reapply)
        )
        if event.operation is not Operation.DELETE and stale:
            return f"version {version} already applied ({applied.get('version')})"
        return None

    def company(self, event: ChangeEvent) -> str | None:
        """The F&O company of an event, or ``None`` when its company is not mapped."""
        companies = self._context.companies
        if event.source.system is System.FNO:
            company = event.source.company or event.image.get("dataAreaId")
            return str(company) if companies.is_mapped(company) else None
        return companies.for_business_unit(event.image.get("_owningbusinessunit_value"))

    async def process(self, event: ChangeEvent, *, reapply: bool = False) -> Processed:
        """Apply ``event``; raises the error tree's errors for the consumer to handle.
        ``reapply``: see :meth:`skip_reason`."""
        reason = self.skip_reason(event, reapply=reapply)
        company = self.company(event)
        if reason is None and company is None:
            reason = (
                f"company {event.source.company or event.image.get('dataAreaId')} is not mapped"
            )
        if reason is not None:
            self._log(event, skipped=reason)
            return Processed(skipped=reason)
        event = self._with_known_key(await self._enriched(event))
        result = map_event(self.template, event, MappingContext(company=company))
        outcomes = [await self._sink.apply(write) for write in result.writes]
        if result.skipped:
            self._log(event, skipped=result.skipped)
            return Processed(skipped=result.skipped)
        versions: dict[str, Any] = {version_key(self.template.name, event): _version(event)}
        for child in self.template.children:
            child_outcomes, child_versions = await self._apply_children(
                child.flow, child.match, event
            )
            outcomes += child_outcomes
            versions.update(child_versions)
        self._log(event, outcomes=outcomes, keys=[w.key_text for w in result.writes])
        return Processed(outcomes=tuple(outcomes), versions=versions)

    def _with_known_key(self, event: ChangeEvent) -> ChangeEvent:
        """A delete seen by change tracking has no image; use the business key stored when
        the record was last applied, so a template that applies deletes can address it."""
        if event.operation is not Operation.DELETE or event.before:
            return event
        applied = self._context.applied_versions.get(version_key(self.template.name, event))
        business_key = (applied or {}).get("business_key")
        if not business_key:
            return event
        return replace(event, before={self.entity.business_key: business_key})

    async def _enriched(self, event: ChangeEvent) -> ChangeEvent:
        resolver = self._context.resolver
        if not self.template.lookups or resolver is None or event.operation is Operation.DELETE:
            return event
        after = await resolver.enrich(self.template.lookups, event.image)
        return replace(event, after=after)

    async def _apply_children(
        self, flow: str, match: Mapping[str, str], header: ChangeEvent
    ) -> tuple[list[ApplyOutcome], dict[str, Any]]:
        child = self._context.processors.get(flow)
        reader = self._context.readers.get(header.source.system)
        if child is None or reader is None:
            return [], {}
        wanted = {field_name: header.image.get(source) for field_name, source in match.items()}
        outcomes: list[ApplyOutcome] = []
        versions: dict[str, Any] = {}
        for record in await reader.children(child.entity, wanted):
            processed = await child.process(snapshot_event(child.entity, record, header))
            outcomes += processed.outcomes
            versions.update(processed.versions)
        return outcomes, versions

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


def _version(event: ChangeEvent) -> dict[str, Any]:
    return {
        "version": event.source.record_version,
        "event_id": event.event_id,
        "deleted": event.operation is Operation.DELETE,
        "business_key": event.source.business_key,
    }


def snapshot_event(
    entity: SourceEntity,
    record: Mapping[str, Any],
    header: ChangeEvent | None = None,
    capture: Capture = Capture.RECONCILE,
) -> ChangeEvent:
    """A record read from its system as a snapshot event (a line read with its header, or
    the winning side of a conflict), in the header's correlation when there is one."""
    version = record.get("versionnumber")
    source = Source(
        system=entity.system,
        entity=entity.entity,
        record_id=entity.record_id(record),
        business_key=entity.business_key_of(record),
        company=record.get("dataAreaId") or (header.source.company if header else None),
        record_version=int(version) if isinstance(version, int) else None,
        change_time=header.source.change_time if header else now_millis(),
        changed_by=None,
        capture=capture,
    )
    correlation = header.correlation_id if header else None
    return ChangeEvent.create(
        source, Operation.SNAPSHOT, after=dict(record), correlation_id=correlation
    )
