"""The admin HTTP server of ``bridge run``: status page, admin API, metrics and health.

============================================  =====================================================
Route                                         What it does
============================================  =====================================================
``GET /``                                     the status page (static; its data comes from the API)
``GET /api/status``                           every flow: state, lag, last changes, rates, latency,
                                              dead letters, errors; capture paths; jobs
``GET /api/series``                           per flow, applied/s and latency p50/p95 in 10 s
                                              buckets over the last 10 minutes (the chart)
``POST /api/flows/{flow}/pause`` | ``resume``   pause or resume a flow in every process
``POST /api/jobs``                            start ``{"kind", "flow", ...options}`` → 202 and the job
``GET /api/jobs``, ``GET /api/jobs/{id}``     jobs and their progress
``GET /metrics``                              Prometheus exposition
``GET /healthz``                              200 while the process runs
``GET /readyz``                               200 when Kafka and both targets answer and the state
                                              topic is loaded; else 503 naming what is not ready
============================================  =====================================================

With a token configured, ``/api/*`` and ``/metrics`` need ``Authorization: Bearer <token>``
(401 otherwise); the page itself holds no data and the health probes say nothing secret, so
they stay open. Errors are JSON ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hmac
import importlib.resources
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import structlog
from aiohttp import web

from bridge import metrics
from bridge.admin.controls import FlowControls
from bridge.admin.health import LagWatcher, capture_health
from bridge.admin.jobs import JobRunner
from bridge.config import Settings
from bridge.errors import BridgeError
from bridge.kafka.state_follower import StateFollower

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})


class Probe(Protocol):
    """Whether one dependency answers (:class:`bridge.admin.health.TargetProbe`)."""

    async def check(self) -> tuple[bool, str]:
        """``(reachable, detail)``."""
        ...


@dataclass
class AdminContext:
    """Everything the admin API reads or acts on, for one process."""

    settings: Settings
    role: str
    flows: Sequence[str]
    controls: FlowControls
    jobs: JobRunner
    lag: LagWatcher | None = None
    follower: StateFollower | None = None
    probes: Mapping[str, Probe] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)


def error(status: int, code: str, message: str) -> web.Response:
    """A JSON error answer."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def build_app(ctx: AdminContext) -> web.Application:
    """The aiohttp application of the admin server."""
    app = web.Application(middlewares=[_auth(ctx)])
    routes = _Routes(ctx)
    app.router.add_get("/", routes.page)
    app.router.add_get("/api/status", routes.status)
    app.router.add_get("/api/series", routes.series)
    app.router.add_post("/api/flows/{flow}/pause", routes.pause)
    app.router.add_post("/api/flows/{flow}/resume", routes.resume)
    app.router.add_get("/api/jobs", routes.list_jobs)
    app.router.add_get("/api/jobs/{id}", routes.job)
    app.router.add_post("/api/jobs", routes.start_job)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    return app


def _auth(ctx: AdminContext) -> Any:
    token = ctx.settings.admin.token
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return error(401, "unauthorized", "send Authorization: Bearer <BRIDGE_ADMIN__TOKEN>")
        return await handler(request)

    return check


class _Routes:
    def __init__(self, ctx: AdminContext) -> None:
        self._ctx = ctx

    async def page(self, request: web.Request) -> web.Response:
        html = importlib.resources.files("bridge.admin").joinpath("page.html").read_text()
        return web.Response(text=html, content_type="text/html")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status_document(self._ctx))

    async def series(self, request: web.Request) -> web.Response:
        monitors = self._ctx.controls.monitors
        return web.json_response({name: monitors[name].series() for name in self._ctx.flows})

    async def pause(self, request: web.Request) -> web.Response:
        return await self._set_paused(request, paused=True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._set_paused(request, paused=False)

    async def _set_paused(self, request: web.Request, *, paused: bool) -> web.Response:
        flow = request.match_info["flow"]
        if flow not in self._ctx.flows:
            return error(404, "unknown_flow", f"no flow {flow!r} in this deployment")
        try:
            await self._ctx.controls.set_paused(flow, paused)
        except BridgeError as exc:
            return error(503, "not_stored", f"the pause could not be stored: {exc}")
        monitor = self._ctx.controls.monitors[flow]
        return web.json_response({"flow": flow, "paused": paused, "state": monitor.state()})

    async def list_jobs(self, request: web.Request) -> web.Response:
        jobs = sorted(self._ctx.jobs.jobs.values(), key=lambda j: -j.id)
        return web.json_response([job.as_dict() for job in jobs])

    async def job(self, request: web.Request) -> web.Response:
        try:
            found = self._ctx.jobs.jobs.get(int(request.match_info["id"]))
        except ValueError:
            found = None
        if found is None:
            return error(404, "unknown_job", "no such job")
        return web.json_response(found.as_dict())

    async def start_job(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error(400, "bad_json", "the body must be a JSON object")
        if not isinstance(body, dict) or not isinstance(body.get("flow"), str):
            return error(400, "bad_request", 'expected {"kind": ..., "flow": ..., ...options}')
        options = {k: v for k, v in body.items() if k not in ("kind", "flow")}
        try:
            job = self._ctx.jobs.start(str(body.get("kind")), body["flow"], options)
        except BridgeError as exc:
            return error(400, "bad_request", str(exc))
        return web.json_response(job.as_dict(), status=202)

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await readiness(self._ctx)
        ready = all(ok for ok, _ in checks.values())
        body = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}
        return web.json_response({"ready": ready, "checks": body}, status=200 if ready else 503)


async def readiness(ctx: AdminContext) -> dict[str, tuple[bool, str]]:
    """Each readiness check: Kafka, the state topic, each target."""
    checks: dict[str, tuple[bool, str]] = {}
    if ctx.lag is not None:
        checks["kafka"] = (ctx.lag.fresh(), ctx.lag.error or "ok")
    if ctx.follower is not None:
        loaded = ctx.follower.loaded.is_set()
        checks["state"] = (loaded, "loaded" if loaded else "reading the state topic")
    for name, probe in ctx.probes.items():
        checks[name] = await probe.check()
    return checks


def status_document(ctx: AdminContext) -> dict[str, Any]:
    """The body of ``GET /api/status``."""
    now = time.time()
    flows = []
    for name in ctx.flows:
        row = ctx.controls.monitors[name].snapshot()
        partitions = ctx.lag.lag.get(name, []) if ctx.lag else []
        row["lag"] = {"total": sum(p["lag"] for p in partitions), "partitions": partitions}
        flows.append(row)
    return {
        "process": {
            "role": ctx.role,
            "started_at": ctx.started_at,
            "now": now,
            "lag_refreshed_at": ctx.lag.refreshed_at if ctx.lag else None,
        },
        "flows": flows,
        "capture": capture_health(ctx.settings, ctx.role, ctx.follower, now),
        "jobs": [j.as_dict() for j in sorted(ctx.jobs.jobs.values(), key=lambda j: -j.id)][:10],
    }


class AdminServer:
    """Async context manager serving :func:`build_app` on the admin host and port."""

    def __init__(self, ctx: AdminContext) -> None:
        self._ctx = ctx
        self._runner = web.AppRunner(build_app(ctx), access_log=None)

    async def __aenter__(self) -> Self:
        admin = self._ctx.settings.admin
        await self._runner.setup()
        site = web.TCPSite(self._runner, admin.host, admin.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise BridgeError(
                f"admin server cannot listen on {admin.host}:{admin.port}: {exc}"
            ) from exc
        log.info("admin_listening", url=f"http://{admin.host}:{admin.port}/")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._ctx.jobs.close()
        await self._runner.cleanup()
