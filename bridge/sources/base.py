"""The seam between the engine and the source systems: what a flow needs to know about a
record of its source without knowing that system's field names.

Each system implements :class:`SourceSystem` in its own package (``bridge.dataverse``,
``bridge.fno``); :class:`Sources` picks the one of an event's system. Field names such as
``dataAreaId``, ``_owningbusinessunit_value`` or ``versionnumber`` never leave those
packages: the engine, the processor and the operator commands see only the envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.envelope import Capture, ChangeEvent, System


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
