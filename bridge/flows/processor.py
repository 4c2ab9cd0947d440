"""Apply one change event for one flow: drop echoes and stale versions, map, write.

The processor never commits offsets; it tells the consumer what happened. Versions applied
are returned, not stored, so the consumer can persist them in one write per batch before it
commits the batch's offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.contract.envelope import ChangeEvent, Operation, System
from bridge.mapping.engine import MappingContext, map_event
from bridge.mapping.template import Template
from bridge.sinks.base import ApplyOutcome, Sink

log = structlog.get_logger(__name__)


class VersionLookup(Protocol):
    """Read access to the versions a flow applied (the state store)."""

    def get(self, key: str) -> Any:
        """The stored value for ``key`` or ``None``."""
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
    version: Mapping[str, Any] | None = None


def version_key(flow: str, event: ChangeEvent) -> str:
    """The state-store key of the newest version a flow applied for one source record."""
    return f"applied|{flow}|{event.source.system.lower()}|{event.source.record_id.lower()}"


class FlowProcessor:
    """Maps and applies events of one flow; idempotent and safe to call again after a crash."""

    def __init__(
        self,
        template: Template,
        sink: Sink,
        *,
        identities: Identities,
        context: MappingContext,
        applied_versions: VersionLookup,
    ) -> None:
        self.template = template
        self._sink = sink
        self._identities = identities
        self._context = context
        self._applied = applied_versions

    def skip_reason(self, event: ChangeEvent) -> str | None:
        """Why an event must not be applied (echo or stale), or ``None``."""
        if self._identities.is_bridge(event.source.system, event.source.changed_by):
            return "echo of the bridge's own write"
        applied = self._applied.get(version_key(self.template.name, event))
        if not applied:
            return None
        if applied.get("deleted"):
            return "record already deleted"
        version = event.source.record_version
        newer_applied = version is not None and version <= applied.get("version", -1)
        if event.operation is not Operation.DELETE and newer_applied:
            return f"version {version} already applied ({applied.get('version')})"
        return None

    async def process(self, event: ChangeEvent) -> Processed:
        """Apply ``event``; raises the error tree's errors for the consumer to handle."""
        reason = self.skip_reason(event)
        if reason is not None:
            return Processed(skipped=reason)
        result = map_event(self.template, event, self._context)
        outcomes = tuple([await self._sink.apply(write) for write in result.writes])
        version = {
            "version": event.source.record_version,
            "event_id": event.event_id,
            "deleted": event.operation is Operation.DELETE,
        }
        self._log_applied(event, result.skipped, outcomes, [w.key_text for w in result.writes])
        return Processed(outcomes=outcomes, skipped=result.skipped, version=version)

    def _log_applied(
        self,
        event: ChangeEvent,
        skipped: str | None,
        outcomes: tuple[ApplyOutcome, ...],
        keys: list[str],
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
                "change_applied", **context, target_key=";".join(keys), outcome=",".join(outcomes)
            )
