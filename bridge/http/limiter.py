"""How many requests one application registration keeps in flight: an AIMD controller.

Dataverse counts its service-protection limits per user (spec A.8): 52 concurrent requests,
6,000 requests and 1,200 s of execution time per 5 minutes. F&O throttles by resource
(spec B.3). Neither publishes the remaining budget reliably, so the bridge probes for it,
as TCP does: every success widens the window by one request per window's worth of
successes (additive increase), every 429 halves it (multiplicative decrease) and holds
every request of that registration back until the server's ``Retry-After`` has passed.
``x-ms-dop-hint`` (Dataverse's recommended degree of parallelism) caps the window.

The controller only decides *when* a request may start; retrying is the one retry policy's
job (:mod:`bridge.http.retry`), which runs every attempt inside a :meth:`slot`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from bridge.errors import Throttled

log = structlog.get_logger(__name__)

DOP_HINT_HEADER = "x-ms-dop-hint"


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """The window's bounds and step sizes."""

    initial: int = 8
    maximum: int = 52
    minimum: int = 1
    decrease: float = 0.5
    default_pause: float = 1.0
    """Seconds to hold back after a 429 that names no ``Retry-After``."""


class AdaptiveLimiter:
    """An AIMD window of concurrent requests for one principal on one API.

    Contract: at most :attr:`limit` requests run inside :meth:`slot` at once; none starts
    while a ``Retry-After`` is pending; the limit stays within ``[minimum, ceiling]``.
    """

    def __init__(self, settings: LimiterSettings | None = None, *, name: str = "") -> None:
        self._settings = settings or LimiterSettings()
        self._name = name
        self._limit = float(max(self._settings.minimum, self._settings.initial))
        self._ceiling = self._settings.maximum
        self._in_flight = 0
        self._waiting = 0
        self._paused_until = 0.0
        self._narrowed_at = 0.0
        self._changed = asyncio.Condition()

    @property
    def limit(self) -> int:
        """How many requests may run at once now."""
        return int(min(self._limit, self._ceiling))

    @property
    def in_flight(self) -> int:
        """How many requests run now."""
        return self._in_flight

    @property
    def free(self) -> float:
        """Room left in the window after the requests already queued for it; while a
        Retry-After is pending, minus the seconds still to wait."""
        pending = self._paused_until - time.monotonic()
        if pending > 0:
            return -pending - self._waiting
        return float(self.limit - self._in_flight - self._waiting)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[SlotReport]:
        """Wait for room in the window, run the caller's request, and learn from it: a
        :class:`Throttled` raised inside narrows the window; a reported response widens it
        and applies its DOP hint."""
        await self._acquire()
        report = SlotReport()
        started = time.monotonic()
        try:
            yield report
        except Throttled as exc:
            self._throttled(exc.retry_after, started)
            raise
        else:
            if report.headers is not None:
                self._succeeded(report.headers)
        finally:
            await self._release()

    async def _acquire(self) -> None:
        self._waiting += 1
        try:
            await self._wait_for_room()
        finally:
            self._waiting -= 1

    async def _wait_for_room(self) -> None:
        async with self._changed:
            while True:
                pending = self._paused_until - time.monotonic()
                if pending > 0:
                    # woken early only by another change; the pause itself is timed
                    try:
                        async with asyncio.timeout(pending):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
                    continue
                if self._in_flight < self.limit:
                    self._in_flight += 1
                    return
                await self._changed.wait()

    async def _release(self) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _succeeded(self, headers: Mapping[str, str]) -> None:
        hint = _int_header(headers, DOP_HINT_HEADER)
        if hint is not None:
            self._ceiling = max(self._settings.minimum, min(hint, self._settings.maximum))
        if self._limit < self._ceiling:
            self._limit = min(float(self._ceiling), self._limit + 1 / max(self._limit, 1.0))

    def _throttled(self, retry_after: float | None, started: float) -> None:
        settings = self._settings
        before = self.limit
        # the requests already in flight when the window narrowed answer 429 too: one
        # episode of throttling narrows it once, not once per request
        if started >= self._narrowed_at:
            self._limit = max(float(settings.minimum), self._limit * settings.decrease)
            self._narrowed_at = time.monotonic()
        pause = retry_after if retry_after is not None else settings.default_pause
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        log.info(
            "concurrency_narrowed",
            registration=self._name,
            limit_before=before,
            limit=self.limit,
            retry_after=pause,
        )


@dataclass(slots=True)
class SlotReport:
    """What the request run in a slot reports back: its response headers on success."""

    headers: Mapping[str, str] | None = None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
