"""Service protection of the emulators: Dataverse's per-user limits (dynamics-apis.md A.8) and
F&O's resource-based throttling (B.3), as aiohttp middleware after authentication.

Contract:

- Only API requests of an authenticated principal are limited (never the token endpoint or
  ``/_emulator``). One HTTP request counts once, whatever it carries: a ``$batch`` or a bulk
  message is one request toward the Dataverse request count, while its execution time accrues.
- Dataverse, per principal (the bearer token's application), over a sliding window
  (300 s): at most ``request_limit`` accepted requests (6,000, ``0x80072322``) and
  ``execution_limit`` seconds of combined execution time (1,200 s, ``0x80072321``); at most
  ``concurrency_limit`` requests in flight at once (52, ``0x80072326``, refused at once).
  Execution time is the wall time the emulator spends answering the request.
- A refused request is a 429 with ``Retry-After`` in seconds: for the count and time limits
  the time until the window has room again; the principal stays blocked until then, and each
  request sent while blocked (not honouring Retry-After) pushes the block further by one
  request's share of the window ("repeated hammering lengthens Retry-After"). A concurrency
  refusal says 1 s.
- Every Dataverse answer carries ``x-ms-ratelimit-burst-remaining-xrm-requests`` (requests
  left in the window), ``x-ms-ratelimit-time-remaining-xrm-requests`` (execution seconds left,
  formatted as the real service does: ``1,200.00``) and ``x-ms-dop-hint``.
- F&O, per emulated web server (all callers together): at most ``capacity`` operations in a
  sliding window (a ``$batch`` weighs as many operations as it holds); beyond that a 429
  "…high resource utilization." with ``Retry-After``. No rate-limit headers (B.3).
- ``time_scale`` multiplies every duration (windows, execution budget, Retry-After): 0.01
  makes a 300 s window 3 s for fast tests. Counts are not scaled.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.emulators.common.auth import PRINCIPAL_KEY
from bridge.emulators.common.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Renderer = Callable[[ApiError], dict[str, object]]
Clock = Callable[[], float]
COST_KEY = web.RequestKey("emulator_cost", int)
"""Request key a handler sets to the number of operations the request carried."""

REQUESTS_CODE = "0x80072322"
EXECUTION_CODE = "0x80072321"
CONCURRENCY_CODE = "0x80072326"
RESOURCE_MESSAGE = (
    "This request could not be processed at this time due to system experiencing high "
    "resource utilization."
)


@dataclass(frozen=True)
class UserLimits:
    """Dataverse's service protection limits (documented values; seconds unscaled)."""

    request_limit: int = 6000
    execution_limit_seconds: float = 1200.0
    concurrency_limit: int = 52
    window_seconds: float = 300.0
    dop_hint: int = 4
    time_scale: float = 1.0


def retry_after(seconds: float, scale: float) -> str:
    """``Retry-After`` of a wait of ``seconds`` (real time): whole seconds as the services
    send them, in scaled runs the scaled value of the whole emulated seconds."""
    whole = max(1, math.ceil(seconds / scale - 1e-9))
    return f"{whole * scale:g}"


def _grouped(seconds: float) -> str:
    return f"{max(seconds, 0.0):,.2f}"


@dataclass
class _SlidingSum:
    """Amounts added over time; the sum of those younger than the window."""

    entries: deque[tuple[float, float]] = field(default_factory=deque)
    total: float = 0.0

    def add(self, now: float, amount: float) -> None:
        self.entries.append((now, amount))
        self.total += amount

    def expire(self, oldest: float) -> None:
        while self.entries and self.entries[0][0] <= oldest:
            self.total -= self.entries.popleft()[1]
        if not self.entries:
            self.total = 0.0

    def time_until_below(self, limit: float, now: float, window: float) -> float:
        """Seconds until the sum drops below ``limit`` as entries age out."""
        excess = self.total - limit
        for moment, amount in self.entries:
            excess -= amount
            if excess < 0:
                return moment + window - now
        return window


@dataclass
class _UserState:
    requests: _SlidingSum = field(default_factory=_SlidingSum)
    execution: _SlidingSum = field(default_factory=_SlidingSum)
    in_flight: int = 0
    blocked_until: float = 0.0
    blocked_by: ApiError | None = None


class ServiceProtection:
    """Dataverse's per-user limits (see the module docstring)."""

    def __init__(self, limits: UserLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._users: dict[str, _UserState] = {}
        scale = limits.time_scale
        self._window = limits.window_seconds * scale
        self._execution_budget = limits.execution_limit_seconds * scale
        self._penalty = self._window / limits.request_limit

    def reset(self) -> None:
        """Forget every principal's usage."""
        self._users.clear()

    def middleware(self, api_prefix: str, render: Renderer) -> Middleware:
        """aiohttp middleware enforcing the limits on ``api_prefix`` paths."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            principal = request.get(PRINCIPAL_KEY)
            if principal is None or not request.path.startswith(api_prefix):
                return await handler(request)
            state = self._users.setdefault(principal.client_id, _UserState())
            refusal = self._admit(state)
            if refusal is not None:
                headers = {**refusal.headers, **self._headers(state)}
                return web.json_response(render(refusal), status=429, headers=headers)
            state.in_flight += 1
            started = self._clock()
            try:
                response = await handler(request)
            finally:
                state.in_flight -= 1
                ended = self._clock()
                state.execution.add(ended, ended - started)
            response.headers.update(self._headers(state))
            return response

        return middleware

    def _admit(self, state: _UserState) -> ApiError | None:
        now = self._clock()
        state.requests.expire(now - self._window)
        state.execution.expire(now - self._window)
        limits = self.limits
        if now < state.blocked_until and state.blocked_by is not None:
            wait = state.blocked_until - now
            state.blocked_until += self._penalty
            return self._error(state.blocked_by, wait)
        if state.in_flight >= limits.concurrency_limit:
            message = (
                f"Number of concurrent requests exceeded the limit of {limits.concurrency_limit}."
            )
            return self._error(ApiError(429, message, code=CONCURRENCY_CODE), limits.time_scale)
        if state.requests.total >= limits.request_limit:
            wait = state.requests.time_until_below(limits.request_limit, now, self._window)
            message = (
                f"Number of requests exceeded the limit of {limits.request_limit} over time "
                f"window of {limits.window_seconds:g} seconds."
            )
            return self._block(state, ApiError(429, message, code=REQUESTS_CODE), now, wait)
        if state.execution.total >= self._execution_budget:
            wait = state.execution.time_until_below(self._execution_budget, now, self._window)
            message = (
                "Combined execution time of incoming requests exceeded limit of "
                f"{limits.execution_limit_seconds * 1000:,.0f} milliseconds over time window of "
                f"{limits.window_seconds:g} seconds. Decrease number of concurrent requests or "
                "reduce the duration of requests and try again later."
            )
            return self._block(state, ApiError(429, message, code=EXECUTION_CODE), now, wait)
        state.requests.add(now, 1)
        return None

    def _block(self, state: _UserState, error: ApiError, now: float, wait: float) -> ApiError:
        state.blocked_until = now + wait
        state.blocked_by = error
        return self._error(error, wait)

    def _error(self, error: ApiError, wait: float) -> ApiError:
        headers = {"Retry-After": retry_after(wait, self.limits.time_scale)}
        return ApiError(429, error.message, code=error.code, headers=headers)

    def _headers(self, state: _UserState) -> dict[str, str]:
        remaining = max(0, self.limits.request_limit - int(state.requests.total))
        return {
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(remaining),
            "x-ms-ratelimit-time-remaining-xrm-requests": _grouped(
                self._execution_budget - state.execution.total
            ),
            "x-ms-dop-hint": str(self.limits.dop_hint),
        }


class ResourceThrottle:
    """F&O's resource-based throttling (see the module docstring)."""

    def __init__(
        self,
        capacity: int,
        window_seconds: float,
        time_scale: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self._window = window_seconds * time_scale
        self._scale = time_scale
        self._clock = clock
        self._load = _SlidingSum()

    def reset(self) -> None:
        """Forget the load."""
        self._load = _SlidingSum()

    def middleware(self, api_prefix: str, render: Renderer) -> Middleware:
        """aiohttp middleware throttling ``api_prefix`` paths."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.get(PRINCIPAL_KEY) is None or not request.path.startswith(api_prefix):
                return await handler(request)
            now = self._clock()
            self._load.expire(now - self._window)
            if self._load.total >= self.capacity:
                wait = self._load.time_until_below(self.capacity, now, self._window)
                headers = {"Retry-After": retry_after(wait, self._scale)}
                error = ApiError(429, RESOURCE_MESSAGE, wrap=False, headers=headers)
                return web.json_response(render(error), status=429, headers=headers)
            try:
                return await handler(request)
            finally:
                self._load.add(now, float(request.get(COST_KEY, 1)))

        return middleware
