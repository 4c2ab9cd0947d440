"""What a flow engine tells whoever watches it (the status page, the metrics).

The engine calls these after the fact and never waits on them: an observer must be quick,
must not raise and must not do I/O. :class:`NoObserver` is the default.
"""

from __future__ import annotations

from typing import Protocol

from bridge.contract.envelope import ChangeEvent
from bridge.engine.stream import Partition


class FlowObserver(Protocol):
    """Receives one flow engine's outcomes, record by record."""

    def seen(self, event: ChangeEvent) -> None:
        """A record was consumed and decoded."""
        ...

    def applied(self, event: ChangeEvent) -> None:
        """``event`` was applied to the target."""
        ...

    def skipped(self, event: ChangeEvent, reason: str) -> None:
        """``event`` was skipped (stale, filtered, contradicted by the source)."""
        ...

    def dead_lettered(self, stage: str, error: BaseException) -> None:
        """A record went to the dead letters."""
        ...

    def blocked(self, partition: Partition, cause: BaseException, delay: float) -> None:
        """``partition`` rewound and paused for ``delay`` seconds because of ``cause``."""
        ...


class NoObserver:
    """Ignores everything."""

    def seen(self, event: ChangeEvent) -> None:
        """Nothing."""

    def applied(self, event: ChangeEvent) -> None:
        """Nothing."""

    def skipped(self, event: ChangeEvent, reason: str) -> None:
        """Nothing."""

    def dead_lettered(self, stage: str, error: BaseException) -> None:
        """Nothing."""

    def blocked(self, partition: Partition, cause: BaseException, delay: float) -> None:
        """Nothing."""
