"""The sink seam: one method that makes a target record match a mapped write."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bridge.mapping.engine import TargetWrite


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
