"""aiohttp assembly shared by both emulators: middleware order, token, admin and API routes,
request logging, and clean shutdown of delivery workers.

Middleware order: request logging -> fault injection -> bearer authentication -> service
protection (:mod:`bridge.emulators.common.limits`, when enabled) -> handler,
so injected faults hit before (and regardless of) authentication, and every answer,
including faults and 401s, is logged as ``emulator_request``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.emulators.common.admin import AdminTarget, admin_routes
from bridge.emulators.common.auth import (
    PRINCIPAL_KEY,
    TokenEndpoint,
    TokenIssuer,
    bearer_middleware,
)
from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.faults import FaultInjector
from bridge.emulators.common.principals import PrincipalDirectory

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 64 * 1024 * 1024


def logging_middleware(
    system: str,
) -> Middleware:
    """Log one ``emulator_request`` event per request (method, path, status, principal)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            principal = request.get(PRINCIPAL_KEY)
            # successes at debug: at thousands of requests per second the log line costs
            # as much as the write it reports
            emit = log.info if status >= 400 else log.debug
            emit(
                "emulator_request",
                system=system,
                method=request.method,
                path=request.path,
                status=status,
                principal=principal.client_id if principal else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    return middleware


@dataclass(frozen=True)
class AppParts:
    """What one emulator contributes to its aiohttp application."""

    system: str
    api_prefix: str
    api_route: str
    handler: Handler
    issuer: TokenIssuer
    directory: PrincipalDirectory
    faults: FaultInjector
    render_error: Callable[[ApiError], dict[str, object]]
    fault_error: Callable[[int, float | None], ApiError]
    admin: AdminTarget
    limits: Middleware | None = None
    """Service protection, run after authentication (it limits per principal)."""


def build_app(parts: AppParts) -> web.Application:
    """The aiohttp application of one emulator; stopping it stops its delivery workers."""
    middlewares = [
        logging_middleware(parts.system),
        parts.faults.middleware(parts.fault_error, parts.render_error),
        bearer_middleware(parts.issuer, parts.api_prefix, parts.render_error),
    ]
    if parts.limits is not None:
        middlewares.append(parts.limits)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=MAX_BODY_BYTES,
    )
    app.router.add_routes(TokenEndpoint(parts.issuer, parts.directory).routes())
    app.router.add_routes(admin_routes(parts.admin))
    app.router.add_route("*", parts.api_route, parts.handler)

    async def stop_deliveries(_: web.Application) -> None:
        await parts.admin.dispatcher.stop()

    app.on_cleanup.append(stop_deliveries)
    return app
