"""What each flow of this process did lately: the engine's observer behind the status page
and the flow metrics.

:class:`FlowMonitor` keeps, per flow, the last change seen and applied, applications and
their latencies in 10-second buckets over the last 10 minutes (changes per minute, latency
percentiles, the chart), dead letters by stage and error, recent errors, and the partitions
a blocked record holds. It is pure bookkeeping: no I/O, nothing that can raise.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge import metrics
from bridge.contract.envelope import ChangeEvent
from bridge.engine.stream import Partition
from bridge.errors import Throttled, TransientError

BUCKET_SECONDS = 10
WINDOW_BUCKETS = 60
SAMPLES_PER_BUCKET = 200
RECENT_ERRORS = 20

FlowState = Literal["running", "paused", "throttled", "failing", "idle"]
Clock = Callable[[], float]


@dataclass
class _Bucket:
    start: int
    applied: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Block:
    """A partition held by a record that cannot be settled now."""

    kind: Literal["throttled", "failing"]
    cause: str
    since: float
    until: float


def _change(event: ChangeEvent, at: float) -> dict[str, Any]:
    return {
        "at": at,
        "event_id": event.event_id,
        "record": event.source.business_key or event.source.record_id,
        "operation": event.operation.value,
        "capture": event.source.capture.value,
    }


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


class FlowMonitor:
    """Observer of one flow's engine (see :class:`bridge.engine.observer.FlowObserver`)."""

    def __init__(self, flow: str, clock: Clock = time.time) -> None:
        self.flow = flow
        self._clock = clock
        self.paused = False
        self.running_here = False
        self.last_seen: dict[str, Any] | None = None
        self.last_applied: dict[str, Any] | None = None
        self.applied_total = 0
        self.skipped_total = 0
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        self.dead_letter_messages: dict[tuple[str, str], str] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)
        self.blocks: dict[Partition, Block] = {}
        self._buckets: deque[_Bucket] = deque(maxlen=WINDOW_BUCKETS)

    # --- the observer -------------------------------------------------------------------

    def seen(self, event: ChangeEvent) -> None:
        """A record was consumed."""
        self.last_seen = _change(event, self._clock())

    def applied(self, event: ChangeEvent) -> None:
        """An event was applied: count it and its latency since publication."""
        now = self._clock()
        latency = max(0.0, now - event.published_at.timestamp())
        self.applied_total += 1
        self.last_applied = _change(event, now)
        bucket = self._bucket(now)
        bucket.applied += 1
        if len(bucket.latencies) < SAMPLES_PER_BUCKET:
            bucket.latencies.append(latency)
        metrics.APPLIED.labels(self.flow).inc()
        metrics.APPLY_LATENCY.labels(self.flow).observe(latency)

    def skipped(self, event: ChangeEvent, reason: str) -> None:
        """An event was skipped."""
        self.skipped_total += 1
        metrics.SKIPPED.labels(self.flow, metrics.reason_label(reason)).inc()

    def dead_lettered(self, stage: str, error: BaseException) -> None:
        """A record went to the dead letters."""
        key = (stage, error.__class__.__name__)
        self.dead_letters[key] += 1
        self.dead_letter_messages[key] = str(error)[:300]
        self._error(f"dead letter ({stage}): {error.__class__.__name__}: {error}")
        metrics.DEAD_LETTERED.labels(self.flow, stage, key[1]).inc()

    def blocked(self, partition: Partition, cause: BaseException, delay: float) -> None:
        """A partition waits ``delay`` seconds for a record that cannot be settled now."""
        now = self._clock()
        throttled = isinstance(cause, Throttled) or (
            isinstance(cause, TransientError) and cause.retry_after is not None
        )
        previous = self.blocks.get(partition)
        since = previous.since if previous else now
        kind: Literal["throttled", "failing"] = "throttled" if throttled else "failing"
        self.blocks[partition] = Block(kind, str(cause)[:300], since, now + delay)
        self._error(f"{partition.topic}:{partition.number} waits {delay:.1f} s: {cause}")

    # --- what the page shows ------------------------------------------------------------

    def state(self) -> FlowState:
        """``paused`` (by an operator), ``failing`` or ``throttled`` (a partition waits on a
        refused or throttled write), ``running``, or ``idle`` (no engine in this process)."""
        if self.paused:
            return "paused"
        active = self._active_blocks()
        if any(b.kind == "failing" for b in active):
            return "failing"
        if active:
            return "throttled"
        return "running" if self.running_here else "idle"

    def _active_blocks(self) -> list[Block]:
        # a block lasts until its resume time plus a grace period: a partition that fails
        # again right after resuming stays reported, one that recovered is dropped
        now = self._clock()
        for partition, block in list(self.blocks.items()):
            if now > block.until + max(5.0, block.until - block.since):
                del self.blocks[partition]
        return list(self.blocks.values())

    def changes_per_minute(self) -> int:
        """Events applied during the last 60 seconds."""
        since = self._clock() - 60
        return sum(b.applied for b in self._buckets if b.start + BUCKET_SECONDS > since)

    def latency(self, window_seconds: float = 300) -> dict[str, float | None]:
        """Publish-to-apply latency percentiles over the last ``window_seconds``."""
        since = self._clock() - window_seconds
        values = [v for b in self._buckets if b.start >= since for v in b.latencies]
        return {
            name: percentile(values, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }

    def series(self) -> list[dict[str, Any]]:
        """One point per 10-second bucket of the last 10 minutes: applied per second and
        latency p50/p95 (``None`` for a bucket without applications)."""
        now = int(self._clock())
        first = now - now % BUCKET_SECONDS - (WINDOW_BUCKETS - 1) * BUCKET_SECONDS
        by_start = {b.start: b for b in self._buckets}
        points = []
        for start in range(first, now + 1, BUCKET_SECONDS):
            bucket = by_start.get(start, _Bucket(start))
            points.append(
                {
                    "t": start,
                    "per_second": bucket.applied / BUCKET_SECONDS,
                    "p50": percentile(bucket.latencies, 0.5),
                    "p95": percentile(bucket.latencies, 0.95),
                }
            )
        return points

    def snapshot(self) -> dict[str, Any]:
        """The flow's row of the status API (lag is added by the caller)."""
        return {
            "name": self.flow,
            "state": self.state(),
            "paused": self.paused,
            "running_here": self.running_here,
            "last_seen": self.last_seen,
            "last_applied": self.last_applied,
            "applied_total": self.applied_total,
            "skipped_total": self.skipped_total,
            "changes_per_minute": self.changes_per_minute(),
            "latency_seconds": self.latency(),
            "dead_letters": {
                "total": sum(self.dead_letters.values()),
                "by_reason": [
                    {
                        "stage": stage,
                        "error": error,
                        "count": count,
                        "last_message": self.dead_letter_messages[(stage, error)],
                    }
                    for (stage, error), count in self.dead_letters.most_common()
                ],
            },
            "blocked": [
                {
                    "partition": f"{p.topic}:{p.number}",
                    "kind": b.kind,
                    "cause": b.cause,
                    "since": b.since,
                    "until": b.until,
                }
                for p, b in sorted(self.blocks.items())
            ],
            "errors": list(self.errors),
        }

    def _bucket(self, now: float) -> _Bucket:
        start = int(now) - int(now) % BUCKET_SECONDS
        if not self._buckets or self._buckets[-1].start != start:
            self._buckets.append(_Bucket(start))
        return self._buckets[-1]

    def _error(self, message: str) -> None:
        self.errors.appendleft({"at": self._clock(), "message": message[:500]})
