"""Waiting for prerequisites without blocking the flow: the retry topic of each flow.

An event whose prerequisite is missing (an order line before its header, an order before
its customer) is moved to ``<prefix>.retry.<flow>`` with a not-before time, and its place in
the source topic is committed, so records behind it go on. The flow consumes its retry
topic too; a retry record that is not due yet pauses that retry partition until it is.
Each attempt doubles the wait; after the last attempt the event goes to the dead letters
with stage ``dependency`` and the number of attempts.

Header names: ``retry.attempts``, ``retry.not_before`` (epoch ms), ``retry.reason``,
``retry.original.topic``, ``retry.original.partition``, ``retry.original.offset``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bridge.config import FlowSettings
from bridge.engine.dead_letters import ConsumedRecord
from bridge.engine.stream import RecordSender

PREFIX = "retry."


def retry_headers(headers: Any) -> dict[str, str]:
    """The ``retry.*`` headers of a record, without the prefix."""
    return {
        k.removeprefix(PREFIX): v.decode(errors="replace")
        for k, v in (headers or ())
        if k.startswith(PREFIX)
    }


def attempts_of(record: ConsumedRecord) -> int:
    """How many times this event already waited for a prerequisite."""
    try:
        return int(retry_headers(record.headers).get("attempts", "0"))
    except ValueError:
        return 0


def seconds_until_due(record: ConsumedRecord, now_ms: float | None = None) -> float:
    """Seconds until a retry record may be processed (0 when due or not a retry)."""
    try:
        not_before = float(retry_headers(record.headers).get("not_before", "0"))
    except ValueError:
        return 0.0
    now = time.time() * 1000 if now_ms is None else now_ms
    return max(0.0, (not_before - now) / 1000)


@dataclass(frozen=True, slots=True)
class RetryScheduler:
    """Moves an event to its flow's retry topic, or says it has waited long enough."""

    topic: str
    settings: FlowSettings
    sender: RecordSender

    def exhausted(self, record: ConsumedRecord) -> bool:
        """Whether the event already used every attempt."""
        return attempts_of(record) >= self.settings.dependency_retry_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based): doubling, capped."""
        initial = self.settings.dependency_retry_initial_seconds
        return float(min(initial * 2 ** (attempt - 1), self.settings.dependency_retry_max_seconds))

    async def schedule(self, record: ConsumedRecord, reason: str) -> float:
        """Publish the event to the retry topic, in the partition numbered like the one it
        came from (so the same engine owns both); return the wait in seconds."""
        attempt = attempts_of(record) + 1
        wait = self.delay(attempt)
        original = retry_headers(record.headers)
        context = {
            "attempts": str(attempt),
            "not_before": str(int(time.time() * 1000 + wait * 1000)),
            "reason": reason[:500],
            "original.topic": original.get("original.topic", record.topic),
            "original.partition": original.get("original.partition", str(record.partition)),
            "original.offset": original.get("original.offset", str(record.offset)),
        }
        kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith(PREFIX)]
        headers = kept + [(PREFIX + k, v.encode()) for k, v in context.items()]
        await self.sender.send(
            self.topic, record.value, record.key, headers, partition=record.partition
        )
        return wait
