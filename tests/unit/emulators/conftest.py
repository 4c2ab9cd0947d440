"""Fixtures for the emulator tests: each emulator behind aiohttp's TestServer with bearer
headers for the bridge and "user" principals, and a local receiver for outbound calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.principals import PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.fno.app import FnoEmulator
from tests.unit.emulators.support import (
    BRIDGE,
    USER,
    FnoHarness,
    LinkedHarness,
    Received,
    Receiver,
    SalesHarness,
    token_for,
)


@pytest.fixture
def settings() -> EmulatorSettings:
    """Settings with fast retries and short timeouts."""
    return EmulatorSettings(
        webhook_retry_delay_seconds=0.01,
        fno_event_retry_interval_seconds=0.01,
        webhook_timeout_seconds=2.0,
    )


@pytest.fixture
async def sales(settings: EmulatorSettings) -> AsyncIterator[SalesHarness]:
    """The Dataverse emulator behind a test server."""
    emulator = DataverseEmulator(settings)
    async with TestClient(TestServer(emulator.app)) as client:
        bridge = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        user = {"Authorization": f"Bearer {await token_for(client, USER)}"}
        yield SalesHarness(client, bridge, user, emulator=emulator)


@pytest.fixture
async def fno(settings: EmulatorSettings) -> AsyncIterator[FnoHarness]:
    """The F&O emulator behind a test server."""
    emulator = FnoEmulator(settings)
    async with TestClient(TestServer(emulator.app)) as client:
        bridge = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        user = {"Authorization": f"Bearer {await token_for(client, USER)}"}
        yield FnoHarness(client, bridge, user, emulator=emulator)


@pytest.fixture
async def linked(settings: EmulatorSettings) -> AsyncIterator[LinkedHarness]:
    """Both emulators behind test servers, integrated as :class:`Emulators` integrates them."""
    directory = PrincipalDirectory(settings)
    fno_emulator = FnoEmulator(settings, directory)
    sales_emulator = DataverseEmulator(settings, directory)
    sales_emulator.connect_fno(fno_emulator.tables)
    async with (
        TestClient(TestServer(sales_emulator.app)) as sales_client,
        TestClient(TestServer(fno_emulator.app)) as fno_client,
    ):
        sales = SalesHarness(
            sales_client,
            {"Authorization": f"Bearer {await token_for(sales_client, BRIDGE)}"},
            {"Authorization": f"Bearer {await token_for(sales_client, USER)}"},
            emulator=sales_emulator,
        )
        fno = FnoHarness(
            fno_client,
            {"Authorization": f"Bearer {await token_for(fno_client, BRIDGE)}"},
            {"Authorization": f"Bearer {await token_for(fno_client, USER)}"},
            emulator=fno_emulator,
        )
        yield LinkedHarness(sales, fno)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook/business-event receiver on a free loopback port."""
    state = Receiver(url="", requests=[], statuses=[])

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        state.requests.append(
            Received(request.path, dict(request.query), dict(request.headers), body)
        )
        state.arrived.set()
        if state.delay_seconds:
            await asyncio.sleep(state.delay_seconds)
        chosen = state.status_for(body) if state.status_for else None
        if chosen is None:
            chosen = state.statuses.pop(0) if state.statuses else 200
        return web.Response(status=chosen)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url("/hook"))
    try:
        yield state
    finally:
        await server.close()
