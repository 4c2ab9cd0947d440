"""Helpers shared by the emulator tests: constants, harnesses, a token helper, the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

from bridge.emulators.dataverse import DataverseEmulator
from bridge.emulators.fno import FnoEmulator

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
