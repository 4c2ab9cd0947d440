"""The sink seam, and the one read-compare-write algorithm both systems' sinks share.

:class:`ReadCompareWriteSink` is the algorithm: read the target record by its key; a
create-only or update-only write that finds the wrong state says so; the guard must hold
and the prerequisites exist; then delete, create, or patch only what differs — so repeating
a write changes nothing and never duplicates. A 412 (the ETag moved) or a create that finds
the key taken is retried from the read. The writes of one source change (a product and its
price-list entry) are planned in order — a later one may name an earlier one being created
— and sent together (``send``: one change set), so they succeed or fail together. Each
system's sink supplies only its requests (``address``, ``current``, ``create``, ``changes``,
``update``, ``delete``) and ``send``, through :mod:`bridge.sinks.batching`, which gathers
the reads and writes of concurrent records into few calls without changing what each
record's apply sees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

import structlog

from bridge.errors import AlreadyExists, ConflictLost, DependencyMissing, PreconditionFailed
from bridge.http.batch import BatchRequest
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
    """A target system. Applying must be idempotent: repeating a write changes nothing."""

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the target record match ``write``."""
        ...

    async def apply_all(self, writes: Sequence[TargetWrite]) -> list[ApplyOutcome]:
        """Make the target records match the writes of one source change, all or none."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    """One write, planned: its outcome and the request that makes it (``None`` when nothing
    is sent), with the address and the record it was planned from."""

    write: TargetWrite
    outcome: ApplyOutcome
    address: Address
    current: Mapping[str, Any] | None = None
    request: BatchRequest | None = None


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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def aclose(self) -> None:
        """Wait for the gathered calls still in flight."""

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the target record match ``write``; safe to repeat."""
        return (await self.apply_all((write,)))[0]

    async def apply_all(self, writes: Sequence[TargetWrite]) -> list[ApplyOutcome]:
        """Make the target records match ``writes`` (the writes of one source change, in
        order); their requests go in one change set, so they succeed or fail together.
        Safe to repeat."""
        for _ in range(_MAX_CONFLICT_RETRIES):
            try:
                return await self._apply_once(writes)
            except (PreconditionFailed, AlreadyExists):
                log.info(
                    "target_write_conflict",
                    system=self.system_name,
                    entity_set=writes[0].entity_set,
                    target_key=";".join(w.key_text for w in writes),
                )
        return await self._apply_once(writes)

    async def _apply_once(self, writes: Sequence[TargetWrite]) -> list[ApplyOutcome]:
        steps: list[Step] = []
        for write in writes:
            steps.append(await self._plan(write, steps))
        if any(step.request is not None for step in steps):
            await self.send(steps)
        return [step.outcome for step in steps]

    async def _plan(self, write: TargetWrite, earlier: Sequence[Step]) -> Step:
        address = await self.address(write, earlier)
        current = await self.current(address, earlier)
        if current is None and write.kind is WriteKind.UPDATE_IF_EXISTS:
            return Step(write, ApplyOutcome.UNCHANGED, address)
        if current is None and write.kind is WriteKind.UPDATE:
            raise DependencyMissing(
                f"{write.entity_set} {write.key_text} does not exist in {self.system_name} yet"
            )
        check_guard(write, current)
        await self.check_requirements(write)
        if write.kind is WriteKind.DELETE:
            if current is None:
                return Step(write, ApplyOutcome.UNCHANGED, address)
            request = await self.delete(address, current)
            return Step(write, ApplyOutcome.DELETED, address, current, request)
        if current is None:
            request = await self.create(address, write, earlier)
            return Step(write, ApplyOutcome.CREATED, address, None, request)
        changes = await self.changes(write, current, earlier)
        if not changes:
            return Step(write, ApplyOutcome.UNCHANGED, address, current)
        request = await self.update(address, current, changes)
        return Step(write, ApplyOutcome.UPDATED, address, current, request)

    @abstractmethod
    async def address(self, write: TargetWrite, earlier: Sequence[Step] = ()) -> Address:
        """Where the record ``write`` addresses is (``earlier``: the steps planned before it
        for the same source change, which it may name)."""

    @abstractmethod
    async def current(
        self, address: Address, earlier: Sequence[Step] = ()
    ) -> dict[str, Any] | None:
        """The record at ``address``, or ``None`` when it does not exist."""

    async def check_requirements(self, write: TargetWrite) -> None:  # noqa: B027
        """Raise :class:`DependencyMissing` when a record ``write`` requires is absent (a
        system whose templates name no prerequisites needs nothing here)."""

    @abstractmethod
    async def create(
        self, address: Address, write: TargetWrite, earlier: Sequence[Step] = ()
    ) -> BatchRequest:
        """The request that creates the record (failing if the key is taken)."""

    @abstractmethod
    async def changes(
        self, write: TargetWrite, current: Mapping[str, Any], earlier: Sequence[Step] = ()
    ) -> dict[str, Any]:
        """The request body of what differs between ``current`` and ``write`` (empty when
        nothing does); fields written only on create are left out."""

    @abstractmethod
    async def update(
        self, address: Address, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> BatchRequest:
        """The request that patches ``changes`` onto the record read as ``current`` (its
        ETag guards it)."""

    @abstractmethod
    async def delete(self, address: Address, current: Mapping[str, Any]) -> BatchRequest:
        """The request that deletes the record read as ``current``."""

    @abstractmethod
    async def send(self, steps: Sequence[Step]) -> None:
        """Send the requests of ``steps`` (one source change) so that all or none apply;
        raises the error tree's error of the first that failed."""
