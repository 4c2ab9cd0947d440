"""Fault injection for tests: throttling, server errors, delays and dropped connections.

Rules are added through ``POST /_emulator/faults`` (see :mod:`bridge.emulators.common.admin`) and
applied by :meth:`FaultInjector.middleware` before authentication. A rule without
``path_prefix`` applies to API paths only; with one, to paths starting with it. Paths under
``/_emulator`` are never faulted. The first matching rule wins; ``fraction`` is the
probability it fires, ``count`` caps how often, ``duration_seconds`` how long it lives.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.emulators.common.errors import ApiError

log = structlog.get_logger(__name__)

ADMIN_PREFIX = "/_emulator"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[[int, float | None], ApiError]
Renderer = Callable[[ApiError], dict[str, object]]


class FaultSpecError(ValueError):
    """A fault rule request that cannot be understood."""


@dataclass
class FaultRule:
    """One active fault rule."""

    id: int
    status: int | None = None
    retry_after: float | None = None
    fraction: float = 1.0
    delay_seconds: float = 0.0
    drop_connection: bool = False
    path_prefix: str | None = None
    methods: frozenset[str] | None = None
    count: int | None = None
    expires_at: float | None = None
    fired: int = 0
    spec: dict[str, Any] = field(default_factory=dict)

    def applies(self, method: str, path: str, api_prefixes: tuple[str, ...]) -> bool:
        """Whether this rule covers ``method path`` right now (ignoring ``fraction``)."""
        if self.expires_at is not None and time.monotonic() >= self.expires_at:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if self.path_prefix is not None:
            return path.startswith(self.path_prefix)
        return path.startswith(api_prefixes)

    def describe(self) -> dict[str, Any]:
        """The rule as given, with its id and how often it fired."""
        return {"id": self.id, **self.spec, "fired": self.fired}


def _number(spec: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSpecError(f"'{name}' must be a non-negative number")
    return float(value)


def parse_rule(rule_id: int, spec: Mapping[str, Any]) -> FaultRule:
    """A :class:`FaultRule` from the JSON of ``POST /_emulator/faults``."""
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("'status' must be an HTTP error status (400-599)")
    fraction = _number(spec, "fraction", 1.0)
    if fraction is None or fraction > 1:
        raise FaultSpecError("'fraction' must be between 0 and 1")
    methods = spec.get("methods")
    if methods is not None and (
        not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
    ):
        raise FaultSpecError("'methods' must be a list of HTTP methods")
    duration = _number(spec, "duration_seconds", None)
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultSpecError("'count' must be a positive integer")
    prefix = spec.get("path_prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise FaultSpecError("'path_prefix' must be a string")
    rule = FaultRule(
        id=rule_id,
        status=status,
        retry_after=_number(spec, "retry_after", None),
        fraction=fraction,
        delay_seconds=_number(spec, "delay_seconds", 0.0) or 0.0,
        drop_connection=bool(spec.get("drop_connection", False)),
        path_prefix=prefix,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        count=count,
        expires_at=time.monotonic() + duration if duration is not None else None,
        spec=dict(spec),
    )
    if rule.status is None and not rule.delay_seconds and not rule.drop_connection:
        raise FaultSpecError("a fault needs 'status', 'delay_seconds' or 'drop_connection'")
    return rule


class FaultInjector:
    """Active fault rules of one emulator and the middleware that applies them."""

    def __init__(self, api_prefixes: tuple[str, ...], rng: random.Random | None = None) -> None:
        self._api_prefixes = api_prefixes
        self._rng = rng or random.Random()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        """Validate and activate a rule; :class:`FaultSpecError` when invalid."""
        rule = parse_rule(self._next_id, spec)
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        """All rules, active or spent."""
        return [rule.describe() for rule in self._rules]

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counts it as fired)."""
        if path.startswith(ADMIN_PREFIX):
            return None
        for rule in self._rules:
            if rule.applies(method, path, self._api_prefixes):
                if self._rng.random() >= rule.fraction:
                    return None
                rule.fired += 1
                return rule
        return None

    def middleware(self, make_error: ErrorFactory, render: Renderer) -> Middleware:
        """aiohttp middleware applying the rules; errors are built by ``make_error(status,
        retry_after)`` and rendered in the system's shape."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            rule = self.pick(request.method, request.path)
            if rule is None:
                return await handler(request)
            log.info(
                "fault_injected",
                rule=rule.id,
                method=request.method,
                path=request.path,
                status=rule.status,
            )
            if rule.delay_seconds:
                await asyncio.sleep(rule.delay_seconds)
            if rule.drop_connection:
                if request.transport is not None:
                    request.transport.close()
                raise web.HTTPServiceUnavailable()
            if rule.status is None:
                return await handler(request)
            error = make_error(rule.status, rule.retry_after)
            return web.json_response(render(error), status=error.status, headers=error.headers)

        return middleware
