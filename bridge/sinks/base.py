"""The sink seam, and the one read-compare-write algorithm both systems' sinks share.

:class:`ReadCompareWriteSink` is the algorithm: read the target record by its key; a
create-only or update-only write that finds the wrong state says so; the guard must hold
and the prerequisites exist; then delete, create, or patch only what differs — so repeating
a write changes nothing and never duplicates. A 412 (the ETag moved) or a create that finds
the key taken is retried from the read. Each system's sink supplies only its requests
(``address``, ``current``, ``create``, ``changes``, ``update``, ``delete``), and sends them
through :mod:`bridge.sinks.batching`, which gathers the reads and writes of concurrent
records into few calls without changing what each record's apply sees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

import structlog

from bridge.errors import AlreadyExists, ConflictLost, DependencyMissing, PreconditionFailed
from bridge.mapping.engine import condition_holds
from bridge.mapping.writes import TargetWrite, WriteKind
from bridge.sinks.batching import Address

log = structlog.get_logger(__name__)

_MAX_CONFLICT_RETRIES = 3


class ApplyOutcome(StrEnum):
    """The effect of one idempotent write."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


class Sink(Protocol):
    """A target system. ``apply`` must be idempotent: repeating a write changes nothing."""

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the target record match ``write``."""
        ...


def check_guard(write: TargetWrite, current: Mapping[str, Any] | None) -> None:
    """Raise :class:`ConflictLost` when an existing target record fails the write's guard."""
    if current is None or write.guard is None:
        return
    if not all(condition_holds(c, current) for c in write.guard.conditions):
        winner = {k: v for k, v in current.items() if "@" not in k}
        raise ConflictLost(
            f"{write.entity_set} {write.key_text}: {write.guard.reason}", winner=winner
        )


class ReadCompareWriteSink(ABC):
    """The shared apply algorithm (module docstring); subclasses make the requests."""

    system_name: str
    """How messages name the target system ("F&O", "Sales")."""

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the target record match ``write``; safe to repeat."""
        for _ in range(_MAX_CONFLICT_RETRIES):
            try:
                return await self._apply_once(write)
            except (PreconditionFailed, AlreadyExists):
                log.info(
                    "target_write_conflict",
                    system=self.system_name,
                    entity_set=write.entity_set,
                    target_key=write.key_text,
                )
        return await self._apply_once(write)

    async def _apply_once(self, write: TargetWrite) -> ApplyOutcome:
        address = await self.address(write)
        current = await self.current(address)
        if current is None and write.kind is WriteKind.UPDATE_IF_EXISTS:
            return ApplyOutcome.UNCHANGED
        if current is None and write.kind is WriteKind.UPDATE:
            raise DependencyMissing(
                f"{write.entity_set} {write.key_text} does not exist in {self.system_name} yet"
            )
        check_guard(write, current)
        await self.check_requirements(write)
        if write.kind is WriteKind.DELETE:
            if current is None:
                return ApplyOutcome.UNCHANGED
            await self.delete(address, current)
            return ApplyOutcome.DELETED
        if current is None:
            await self.create(address, write)
            return ApplyOutcome.CREATED
        changes = await self.changes(write, current)
        if not changes:
            return ApplyOutcome.UNCHANGED
        await self.update(address, current, changes)
        return ApplyOutcome.UPDATED

    @abstractmethod
    async def address(self, write: TargetWrite) -> Address:
        """Where the record ``write`` addresses is."""

    @abstractmethod
    async def current(self, address: Address) -> dict[str, Any] | None:
        """The record at ``address``, or ``None`` when it does not exist."""

    async def check_requirements(self, write: TargetWrite) -> None:  # noqa: B027
        """Raise :class:`DependencyMissing` when a record ``write`` requires is absent (a
        system whose templates name no prerequisites needs nothing here)."""

    @abstractmethod
    async def create(self, address: Address, write: TargetWrite) -> None:
        """Create the record (failing if the key is taken)."""

    @abstractmethod
    async def changes(self, write: TargetWrite, current: Mapping[str, Any]) -> dict[str, Any]:
        """The request body of what differs between ``current`` and ``write`` (empty when
        nothing does); fields written only on create are left out."""

    @abstractmethod
    async def update(
        self, address: Address, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None:
        """Patch ``changes`` onto the record read as ``current`` (its ETag guards it)."""

    @abstractmethod
    async def delete(self, address: Address, current: Mapping[str, Any]) -> None:
        """Delete the record read as ``current``."""
