"""The one retry policy for calls to the Dynamics APIs: exponential back-off with full
jitter, honouring the server's ``Retry-After``, bounded in attempts.

Only :class:`~bridge.errors.TransientError` is retried; every other error passes straight
through to the caller, which knows whether to dead-letter the event or pause the flow.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bridge.config import RetrySettings
from bridge.errors import TransientError

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Back-off parameters; build it from :class:`RetrySettings`."""

    max_attempts: int = 6
    initial_backoff: float = 0.2
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        """The policy the settings describe."""
        return cls(
            max_attempts=settings.max_attempts,
            initial_backoff=settings.initial_backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
            max_retry_after=settings.max_retry_after_seconds,
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``; the server's Retry-After wins."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        return self.delay(state.attempt_number, retry_after)

    async def call(self, operation: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run ``operation`` until it succeeds, fails permanently or the attempts run out."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "retrying",
                what=what,
                attempt=state.attempt_number,
                error=str(exc),
                wait_seconds=round(state.upcoming_sleep, 3),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(operation)
