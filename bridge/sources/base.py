"""The seam between the engine and the source systems: what a flow needs to know about a
record of its source without knowing that system's field names.

Each system implements :class:`SourceSystem` in its own package (``bridge.dataverse``,
``bridge.fno``); :class:`Sources` picks the one of an event's system. Field names such as
``dataAreaId``, ``_owningbusinessunit_value`` or ``versionnumber`` never leave those
packages: the engine, the processor and the operator commands see only the envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System, now_millis
from bridge.errors import TransientError
from bridge.metrics import poll_finished

log = structlog.get_logger(__name__)


class SourceSystem(Protocol):
    """One source system as the bridge reads it."""

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """A record read from the system as a SNAPSHOT event, with the version, company
        and last modifier the record carries (a line read with its header keeps the
        header's correlation)."""
        ...

    def company(self, event: ChangeEvent, companies: CompanySettings) -> str | None:
        """The F&O company an event's record belongs to, or ``None`` when it is not
        mapped."""
        ...

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record ``event`` is about as the system holds it now (a snapshot), or
        ``None`` when it does not exist."""
        ...

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Every record of ``entity`` whose fields equal ``match`` (a header's lines)."""
        ...


class Sources:
    """The source systems by :class:`System`; dispatches on an event's or entity's system."""

    def __init__(self, systems: Mapping[System, SourceSystem]) -> None:
        self._systems = dict(systems)

    def of(self, system: System) -> SourceSystem:
        """The adapter of ``system``."""
        return self._systems[system]

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """See :meth:`SourceSystem.snapshot`."""
        return self.of(entity.system).snapshot(entity, record, header, capture)

    def company(self, event: ChangeEvent, companies: CompanySettings) -> str | None:
        """See :meth:`SourceSystem.company`."""
        return self.of(event.source.system).company(event, companies)

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """See :meth:`SourceSystem.current`."""
        return await self.of(event.source.system).current(event)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """See :meth:`SourceSystem.children`."""
        return await self.of(entity.system).children(entity, match)


def entity_of(event: ChangeEvent) -> SourceEntity:
    """The captured entity an event is about."""
    return source_entity(event.source.system, event.source.entity)


def snapshot(
    entity: SourceEntity,
    record: Mapping[str, Any],
    header: ChangeEvent | None,
    capture: Capture,
    *,
    version: int | None = None,
    company: str | None = None,
    changed_by: str | None = None,
) -> ChangeEvent:
    """A record read from its system as a SNAPSHOT event, with what its system says of its
    version, company and last modifier; a line read with its header keeps the header's
    correlation and change time."""
    source = Source(
        system=entity.system,
        entity=entity.entity,
        record_id=entity.record_id(record),
        business_key=entity.business_key_of(record),
        company=company or (header.source.company if header else None),
        record_version=version,
        change_time=header.source.change_time if header else now_millis(),
        changed_by=changed_by,
        capture=capture,
    )
    correlation = header.correlation_id if header else None
    return ChangeEvent.create(
        source, Operation.SNAPSHOT, after=dict(record), correlation_id=correlation
    )


async def poll_forever(
    name: str, poll_once: Callable[[], Awaitable[object]], interval_seconds: float
) -> None:
    """Run ``poll_once`` every ``interval_seconds`` until cancelled; a transient failure is
    logged and the next round tries again (a poller's progress is in its stored link)."""
    while True:
        try:
            await poll_once()
        except TransientError as exc:
            log.warning("poll_failed", poller=name, error=str(exc))
            poll_finished(name, str(exc))
        else:
            poll_finished(name, None)
        await asyncio.sleep(interval_seconds)
