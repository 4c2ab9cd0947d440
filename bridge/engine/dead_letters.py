"""Dead-letter topic per flow: the original key and value, plus headers saying what failed.

Header names (all values UTF-8): ``dlq.flow``, ``dlq.stage``, ``dlq.error.class``,
``dlq.error.message``, ``dlq.attempts``, ``dlq.original.topic``, ``dlq.original.partition``,
``dlq.original.offset``, ``dlq.time`` (ISO-8601 UTC). Error messages come from the error
tree, whose texts never include credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.engine.stream import RecordSender

log = structlog.get_logger(__name__)

RawSender = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]
HEADER_PREFIX = "dlq."


class ConsumedRecord(Protocol):
    """The parts of a consumed record a dead letter keeps."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Sends records that cannot be applied to ``topic``; waits for the acknowledgement."""

    topic: str
    flow: str
    sender: RecordSender
    on_sent: Callable[[str, BaseException], None] | None = None

    async def send(
        self, record: ConsumedRecord, error: BaseException, stage: str, attempts: int
    ) -> None:
        """Dead-letter one record with its error context; returns once acknowledged."""
        context = {
            "flow": self.flow,
            "stage": stage,
            "error.class": error.__class__.__name__,
            "error.message": str(error)[:1000],
            "attempts": str(attempts),
            "original.topic": record.topic,
            "original.partition": str(record.partition),
            "original.offset": str(record.offset),
            "time": datetime.now(UTC).isoformat(),
        }
        kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith(HEADER_PREFIX)]
        headers = kept + [(HEADER_PREFIX + k, v.encode()) for k, v in context.items()]
        await self.sender.send(self.topic, record.value, record.key, headers)
        if self.on_sent is not None:
            self.on_sent(stage, error)
        log.warning(
            "event_dead_lettered",
            flow=self.flow,
            stage=stage,
            error_class=context["error.class"],
            error=context["error.message"],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


def dead_letter_context(headers: Any) -> dict[str, str]:
    """The ``dlq.*`` headers of a dead letter, without the prefix."""
    return {
        k.removeprefix(HEADER_PREFIX): v.decode(errors="replace")
        for k, v in (headers or ())
        if k.startswith(HEADER_PREFIX)
    }
