"""The emulator-only control API under ``/_emulator/`` (no auth, loopback callers only).

=======  ==================================  ===============================================
GET      /_emulator/health                   ``{"status": "ok"}``
GET      /_emulator/stats                    write counters per entity and key, by principal
POST     /_emulator/reset                    forget all data, registrations, logs and faults
GET      /_emulator/faults                   active fault rules
POST     /_emulator/faults                   add a fault rule (see :mod:`.faults`)
DELETE   /_emulator/faults                   remove every fault rule
POST     /_emulator/change-tracking/expire   expire every issued delta token (Dataverse:
                                             virtual tables' too)
GET      /_emulator/deliveries               webhook/business-event outcomes (``?wait=1``
                                             first waits up to 10 s for queued deliveries)
GET      /_emulator/principals               known principals and their derived ids
=======  ==================================  ===============================================
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.emulators.common.delivery import DeliveryDispatcher, DeliveryLog
from bridge.emulators.common.faults import FaultInjector, FaultSpecError
from bridge.emulators.common.principals import PrincipalDirectory
from bridge.emulators.common.store import RecordStore

PREFIX = "/_emulator"
WAIT_SECONDS = 10.0


@dataclass
class AdminTarget:
    """What the control API operates on for one emulator."""

    system: str
    store: RecordStore
    faults: FaultInjector
    deliveries: DeliveryLog
    dispatcher: DeliveryDispatcher
    directory: PrincipalDirectory
    reset: Callable[[], None]
    extra_routes: list[web.RouteDef] = field(default_factory=list)
    tracked_stores: Callable[[], list[RecordStore]] | None = None

    def stores_to_expire(self) -> list[RecordStore]:
        """The stores whose change-tracking tokens this emulator issues."""
        return self.tracked_stores() if self.tracked_stores else [self.store]


def _loopback_only(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def guarded(request: web.Request) -> web.Response:
        remote = request.remote or "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(remote).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return web.json_response(
                {"error": "the emulator control API is for loopback callers only"}, status=403
            )
        return await handler(request)

    return guarded


def admin_routes(target: AdminTarget) -> list[web.RouteDef]:
    """The ``/_emulator`` routes of one emulator."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "system": target.system})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"system": target.system, **target.store.stats()})

    async def reset(_: web.Request) -> web.Response:
        target.reset()
        return web.json_response({"status": "reset"})

    async def list_faults(_: web.Request) -> web.Response:
        return web.json_response({"faults": target.faults.describe()})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise FaultSpecError("the body must be a JSON object")
            rule = target.faults.add(spec)
        except (ValueError, FaultSpecError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(rule.describe(), status=201)

    async def clear_faults(_: web.Request) -> web.Response:
        target.faults.clear()
        return web.json_response({"faults": []})

    async def expire(_: web.Request) -> web.Response:
        for store in target.stores_to_expire():
            store.expire_change_tracking()
        return web.json_response({"status": "expired", "floor_version": target.store.version})

    async def deliveries(request: web.Request) -> web.Response:
        if request.query.get("wait") not in (None, "", "0", "false"):
            try:
                async with asyncio.timeout(WAIT_SECONDS):
                    await target.dispatcher.wait_idle()
            except TimeoutError:
                pass
        return web.json_response({"deliveries": target.deliveries.entries()})

    async def principals(_: web.Request) -> web.Response:
        body: list[dict[str, Any]] = [
            {
                "client_id": p.client_id,
                "display_name": p.display_name,
                "object_id": p.object_id,
                "systemuser_id": p.systemuser_id,
            }
            for p in target.directory.all()
        ]
        return web.json_response({"principals": body})

    routes = [
        web.get(f"{PREFIX}/health", _loopback_only(health)),
        web.get(f"{PREFIX}/stats", _loopback_only(stats)),
        web.post(f"{PREFIX}/reset", _loopback_only(reset)),
        web.get(f"{PREFIX}/faults", _loopback_only(list_faults)),
        web.post(f"{PREFIX}/faults", _loopback_only(add_fault)),
        web.delete(f"{PREFIX}/faults", _loopback_only(clear_faults)),
        web.post(f"{PREFIX}/change-tracking/expire", _loopback_only(expire)),
        web.get(f"{PREFIX}/deliveries", _loopback_only(deliveries)),
        web.get(f"{PREFIX}/principals", _loopback_only(principals)),
    ]
    return routes + target.extra_routes
