"""Registering push notifications: idempotent on Dataverse, a clear message where F&O has no
configuration API (a real environment configures business events in its workspace)."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from bridge.config import FnoSettings, WebhookSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import System
from bridge.errors import ConfigError
from bridge.fno.registration import register_fno_business_events
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy

WEBHOOK = WebhookSettings(key=SecretStr("the-key"), public_url="https://bridge.example")
PRODUCTS = [source_entity(System.FNO, "product")]


def client(handler: httpx.MockTransport) -> ApiClient:
    return ApiClient(FnoSettings(), "/data", RetryPolicy(max_attempts=1), transport=handler)


def token_or(handler):  # type: ignore[no-untyped-def]
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        return handler(request)  # type: ignore[no-any-return]

    return httpx.MockTransport(route)


async def test_real_fno_without_the_api_gets_instructions_not_a_traceback() -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "", "message": "Resource not found"}})

    async with client(token_or(not_found)) as fno:
        with pytest.raises(ConfigError) as info:
            await register_fno_business_events(fno, WEBHOOK, PRODUCTS)
    assert "CDSReleasedDistinctProductsChanged" in str(info.value)
    assert "https://bridge.example/webhooks/fno" in str(info.value)
    assert "the-key" not in str(info.value)


async def test_existing_endpoint_and_activation_are_reused() -> None:
    posted: list[str] = []

    def emulator(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(request.url.path)
            return httpx.Response(201, json=json.loads(request.content))
        if "BusinessEventsEndpoints(" in request.url.path:
            return httpx.Response(200, json={"EndpointName": "p2c-bridge"})
        activation = {
            "BusinessEventId": "CDSReleasedDistinctProductsChanged",
            "EndpointName": "p2c-bridge",
        }
        return httpx.Response(200, json={"value": [activation]})

    async with client(token_or(emulator)) as fno:
        await register_fno_business_events(fno, WEBHOOK, PRODUCTS)
    assert posted == []
