"""Helpers shared by the emulator tests: constants, harnesses, a token helper, the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.fno.app import FnoEmulator

TENANT = "emulated-tenant"
BRIDGE = ("bridge-local", "bridge-local-secret")
USER = ("p2c-user", "p2c-user-secret")
API = "/api/data/v9.2"


async def token_for(client: TestClient[Any, Any], credentials: tuple[str, str]) -> str:
    """An access token from the emulator's token endpoint."""
    response = await client.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={
            "client_id": credentials[0],
            "client_secret": credentials[1],
            "grant_type": "client_credentials",
            "scope": "http://emulator/.default",
        },
    )
    assert response.status == 200
    return str((await response.json())["access_token"])


@dataclass
class Harness:
    """A running emulator with a client and bearer headers for both principals."""

    client: TestClient[Any, Any]
    bridge: dict[str, str]
    user: dict[str, str]

    async def json(
        self, method: str, path: str, *, as_user: bool = False, **kwargs: Any
    ) -> tuple[int, Any]:
        """Call the API; returns (status, JSON body or None)."""
        headers = {**(self.user if as_user else self.bridge), **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        text = await response.text()
        return response.status, (await response.json(content_type=None)) if text else None


@dataclass
class SalesHarness(Harness):
    """The Dataverse emulator under test."""

    emulator: DataverseEmulator = field(kw_only=True)


@dataclass
class FnoHarness(Harness):
    """The F&O emulator under test."""

    emulator: FnoEmulator = field(kw_only=True)


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """A local HTTP endpoint recording POSTs; answers with ``status_for(body)`` when that
    gives a status, else with queued statuses (then 200)."""

    url: str
    requests: list[Received]
    statuses: list[int]
    delay_seconds: float = 0.0
    status_for: Callable[[Any], int | None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` requests arrived."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


@dataclass
class LinkedHarness:
    """Both emulators, integrated: F&O entities are virtual tables of Dataverse."""

    sales: SalesHarness
    fno: FnoHarness


async def register_step(
    sales: SalesHarness,
    url: str,
    message: str,
    entity: str,
    *,
    mode: int | None = 1,
    stage: int | None = 40,
    images: tuple[int, ...] = (),
    configuration: str | None = None,
) -> tuple[int, Any]:
    """Register a webhook endpoint and a step for ``message`` on ``entity`` (found by name,
    as a client would); images are added per image type. Returns the step's (status, body)."""
    status, endpoint = await sales.json(
        "POST",
        f"{API}/serviceendpoints",
        json={"name": "hook", "contract": 8, "url": url, "authtype": 4, "authvalue": "key"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 201, endpoint
    _, messages = await sales.json(
        "GET", f"{API}/sdkmessages?$filter=name eq '{message}'&$select=sdkmessageid"
    )
    message_id = messages["value"][0]["sdkmessageid"]
    _, filters = await sales.json(
        "GET",
        f"{API}/sdkmessagefilters?$filter=primaryobjecttypecode eq '{entity}' and "
        f"_sdkmessageid_value eq {message_id}&$select=sdkmessagefilterid",
    )
    body: dict[str, Any] = {
        "name": f"hook: {message} of {entity}",
        "rank": 1,
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
        "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filters['value'][0]['sdkmessagefilterid']})",
    }
    if mode is not None:
        body["mode"] = mode
    if stage is not None:
        body["stage"] = stage
    if configuration is not None:
        body["configuration"] = configuration
    status, step = await sales.json(
        "POST",
        f"{API}/sdkmessageprocessingsteps",
        json=body,
        headers={"Prefer": "return=representation"},
    )
    for image_type in images if status == 201 else ():
        image_status, _ = await sales.json(
            "POST",
            f"{API}/sdkmessageprocessingstepimages",
            json={
                "name": "image",
                "entityalias": ("PreImage", "PostImage")[image_type % 2],
                "imagetype": image_type,
                "messagepropertyname": "Target",
                "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step['sdkmessageprocessingstepid']})",
            },
        )
        assert image_status == 204
    return status, step
