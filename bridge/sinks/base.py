"""The sink seam: one method that makes a target record match a mapped write."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from bridge.errors import ConflictLost
from bridge.mapping.engine import condition_holds
from bridge.mapping.writes import TargetWrite


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
