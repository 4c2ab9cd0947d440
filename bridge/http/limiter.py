"""How fast and how many requests one application registration sends: an AIMD controller of
concurrency, and after the first 429 a pacer of operations per second.

Dataverse counts its service-protection limits per user (spec A.8): 52 concurrent requests,
6,000 requests and 1,200 s of execution time per 5 minutes. F&O throttles by resource
(spec B.3): the emulator admits a number of operations per sliding second, a ``$batch``
weighing as many operations as it holds. Neither publishes the remaining budget reliably,
so the bridge probes for it, as TCP does:

- *Concurrency.* Every success widens the window by one request per window's worth of
  successes (additive increase), every throttling episode halves it (multiplicative
  decrease). ``x-ms-dop-hint`` (Dataverse's recommended degree of parallelism) caps it.
- *Rate.* Until the first 429 nothing is paced, so an unthrottled run is not slowed. A
  throttling episode sets the rate to ``rate_fraction`` of the operations this registration
  had admitted in the last ``rate_horizon`` (what the server just showed it accepts), never
  below ``decrease`` times the rate before (a 429 right after a pause finds an empty
  horizon). While no 429 comes the rate grows by ``rate_increase`` of that learned rate per
  second of paced running; requests start one after the other, each ``cost / rate`` seconds
  after the one before. Running just below the ceiling, episodes become rare: each costs a
  whole ``Retry-After`` (whole seconds, at least 1) of the whole registration. An episode
  with nothing admitted in the horizon teaches no rate, and a rate is forgotten
  ``rate_memory`` seconds after the episode that set it: a sample taken while the
  registration sent little (others filled the server) cannot hold it slow for long.
- *Retry-After.* Every 429 holds every request of the registration back until it has passed
  (Dataverse lengthens the block for requests sent during it).

Decision: the pacer is hand-rolled (a virtual start time per request, a FIFO lock) rather
than ``aiolimiter``: a leaky bucket admits bursts as large as its capacity, and its capacity
must hold the largest request (a ``$batch`` of 200 operations), so it would let a second's
worth of operations through at once after a pause; its rate is also fixed when it is built.

The controller only decides *when* a request may start; retrying is the one retry policy's
job (:mod:`bridge.http.retry`), which runs every attempt inside a :meth:`slot`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from bridge.errors import Throttled

log = structlog.get_logger(__name__)

DOP_HINT_HEADER = "x-ms-dop-hint"


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """The window's and the rate's bounds and step sizes.

    Decision on the rate's steps: from 95 % of what the server admitted, growing by 0.1 % of
    that per second, the rate reaches the ceiling again after about 50 s of paced running;
    one ``Retry-After`` of 1 s per such cycle keeps the average near 96 % of the ceiling.
    Faster growth finds new capacity sooner but pays a pause more often."""

    initial: int = 8
    maximum: int = 52
    minimum: int = 1
    decrease: float = 0.5
    default_pause: float = 1.0
    """Seconds to hold back after a 429 that names no ``Retry-After``."""
    rate_fraction: float = 0.95
    """On a 429, the rate becomes this fraction of the operations admitted in the horizon."""
    rate_horizon: float = 1.0
    """Seconds over which admitted operations are counted (F&O's resource window)."""
    rate_increase: float = 0.001
    """Per second of paced running, the rate grows by this fraction of the learned rate."""
    minimum_rate: float = 1.0
    """Operations per second the pacer never goes below."""
    rate_memory: float = 60.0
    """Seconds after the last narrowing episode at which the pacer stops (until a 429)."""


@dataclass(slots=True)
class _Admission:
    """One request let through: when, how many operations, and whether it got a 429."""

    at: float
    cost: int
    refused: bool = False


class AdaptiveLimiter:
    """An AIMD window of concurrent requests, and a learned rate of operations per second,
    for one principal on one API.

    Contract: at most :attr:`limit` requests run inside :meth:`slot` at once; none starts
    while a ``Retry-After`` is pending; the limit stays within ``[minimum, ceiling]``. Once a
    429 came, requests start one after the other, in the order they got room in the window,
    each ``cost / rate`` seconds after the one before; before it, they are not paced. One
    throttling episode (the 429s of requests that started before the first of them was
    answered) narrows the window and the rate once. A request cancelled while it waits takes
    nothing from the window or the rate.
    """

    def __init__(self, settings: LimiterSettings | None = None, *, name: str = "") -> None:
        self._settings = settings or LimiterSettings()
        self._name = name
        self._limit = float(max(self._settings.minimum, self._settings.initial))
        self._ceiling = self._settings.maximum
        self._in_flight = 0
        self._waiting = 0
        self._paused_until = 0.0
        self._narrowed_at = float("-inf")
        self._changed = asyncio.Condition()
        self._rate: float | None = None
        self._rate_step = 0.0
        self._next_start = 0.0
        self._pacing = asyncio.Lock()
        self._admitted: deque[_Admission] = deque()

    @property
    def limit(self) -> int:
        """How many requests may run at once now."""
        return int(min(self._limit, self._ceiling))

    @property
    def rate(self) -> float | None:
        """Operations per second the pacer lets through; ``None`` until the first 429."""
        return self._rate

    @property
    def in_flight(self) -> int:
        """How many requests hold a place in the window now (running or waiting their turn
        at the pacer)."""
        return self._in_flight

    @property
    def free(self) -> float:
        """Room left in the window after the requests already queued for it; while a
        Retry-After is pending, minus the seconds still to wait."""
        pending = self._paused_until - _now()
        if pending > 0:
            return -pending - self._waiting
        return float(self.limit - self._in_flight - self._waiting)

    @asynccontextmanager
    async def slot(self, cost: int = 1) -> AsyncIterator[SlotReport]:
        """Wait for room in the window and for the request's turn at the pacer, run the
        caller's request, and learn from it: a :class:`Throttled` raised inside narrows the
        window and the rate; a reported response widens them and applies its DOP hint.

        ``cost`` is the number of operations the server counts for the request (a
        ``$batch``'s operations on F&O, else 1)."""
        admission = await self._acquire(max(1, cost))
        report = SlotReport()
        try:
            yield report
        except Throttled as exc:
            admission.refused = True
            self._throttled(exc.retry_after, admission.at)
            raise
        else:
            if report.headers is not None:
                self._succeeded(report.headers, admission.cost)
        finally:
            await self._release()

    async def _acquire(self, cost: int) -> _Admission:
        self._waiting += 1
        try:
            await self._wait_for_room()
            try:
                return await self._wait_for_turn(cost)
            except BaseException:
                await self._release()
                raise
        finally:
            self._waiting -= 1

    async def _wait_for_room(self) -> None:
        # a pause is slept through outside the condition (a 429's release wakes the
        # requests waiting for room, which then find the pause); ``slept_until`` remembers
        # which pause was over, rather than comparing with a clock that may read a hair
        # before its end
        slept_until = _now()
        while True:
            if (pause_end := self._paused_until) > slept_until:
                await asyncio.sleep(pause_end - _now())
                slept_until = pause_end
                continue
            async with self._changed:
                if self._paused_until > slept_until:
                    continue
                if self._in_flight < self.limit:
                    self._in_flight += 1
                    return
                await self._changed.wait()

    async def _wait_for_turn(self, cost: int) -> _Admission:
        """The pacer: one request at a time waits for its start (and for a pause begun
        meanwhile), then books the time its operations take at the rate."""
        if self._pacing_rate() is None:
            return self._admit(cost)
        async with self._pacing:
            # sleep until the start, then again only if a 429 answered meanwhile began a
            # pause (as in _wait_for_room)
            slept_until = _now()
            while (start := max(self._next_start, self._paused_until)) > slept_until:
                await asyncio.sleep(start - _now())
                slept_until = start
            admission = self._admit(cost)
            if self._rate is not None:
                self._next_start = admission.at + cost / self._rate
            return admission

    def _pacing_rate(self) -> float | None:
        if self._rate is not None and _now() - self._narrowed_at > self._settings.rate_memory:
            log.info("pacing_ended", registration=self._name, rate=_rounded(self._rate))
            self._rate = None
        return self._rate

    def _admit(self, cost: int) -> _Admission:
        admission = _Admission(_now(), cost)
        horizon = admission.at - self._settings.rate_horizon
        while self._admitted and self._admitted[0].at <= horizon:
            self._admitted.popleft()
        self._admitted.append(admission)
        return admission

    async def _release(self) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _succeeded(self, headers: Mapping[str, str], cost: int) -> None:
        hint = _int_header(headers, DOP_HINT_HEADER)
        if hint is not None:
            self._ceiling = max(self._settings.minimum, min(hint, self._settings.maximum))
        if self._limit < self._ceiling:
            self._limit = min(float(self._ceiling), self._limit + 1 / max(self._limit, 1.0))
        if self._rate is not None:
            # ``cost / rate`` is the seconds this request's turn took: the rate grows by
            # its step per second of paced running, not while the registration idles
            self._rate += self._rate_step * cost / self._rate

    def _throttled(self, retry_after: float | None, started: float) -> None:
        settings = self._settings
        before, rate_before = self.limit, self._rate
        # the requests already in flight when the window narrowed answer 429 too: one
        # episode of throttling narrows it once, not once per request
        if started >= self._narrowed_at:
            self._limit = max(float(settings.minimum), self._limit * settings.decrease)
            self._narrow_rate()
            self._narrowed_at = _now()
        pause = retry_after if retry_after is not None else settings.default_pause
        self._paused_until = max(self._paused_until, _now() + pause)
        log.info(
            "concurrency_narrowed",
            registration=self._name,
            limit_before=before,
            limit=self.limit,
            rate_before=_rounded(rate_before),
            rate=_rounded(self._rate),
            retry_after=pause,
        )

    def _narrow_rate(self) -> None:
        settings = self._settings
        since = _now() - settings.rate_horizon
        admitted = sum(a.cost for a in self._admitted if a.at > since and not a.refused)
        rate = settings.rate_fraction * admitted / settings.rate_horizon
        if self._rate is not None:
            rate = max(rate, self._rate * settings.decrease)
        elif admitted == 0:
            return
        self._rate = max(settings.minimum_rate, rate)
        self._rate_step = settings.rate_increase * self._rate


@dataclass(slots=True)
class SlotReport:
    """What the request run in a slot reports back: its response headers on success."""

    headers: Mapping[str, str] | None = None


def _now() -> float:
    """The event loop's clock (monotonic; a test's loop may run it on virtual time)."""
    return asyncio.get_running_loop().time()


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
