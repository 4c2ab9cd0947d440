"""Registering push notifications: a clear message, with the manual steps, where the
Dataverse of a real environment cannot take the F&O data-event steps."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from bridge.config import FnoSettings, SalesSettings, WebhookSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import System
from bridge.errors import ConfigError
from bridge.fno.registration import register_data_events
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy

WEBHOOK = WebhookSettings(key=SecretStr("the-key"), public_url="https://bridge.example")
PRODUCTS = [source_entity(System.FNO, "product")]


def client(handler: httpx.MockTransport) -> ApiClient:
    return ApiClient(FnoSettings(), "/data", RetryPolicy(max_attempts=1), transport=handler)


def sales_client(handler: httpx.MockTransport) -> ApiClient:
    return ApiClient(
        SalesSettings(), "/api/data/v9.2", RetryPolicy(max_attempts=1), transport=handler
    )


def token_or(handler):  # type: ignore[no-untyped-def]
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        return handler(request)  # type: ignore[no-any-return]

    return httpx.MockTransport(route)


async def test_a_dataverse_without_the_virtual_table_gets_the_manual_steps() -> None:
    """No data-event message filter for the virtual table (the table is not made visible,
    or the environment has no F&O link): setup names what to do, and no secret."""

    def dataverse(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                204,
                headers={"OData-EntityId": f"{request.url}(11111111-1111-1111-1111-111111111111)"},
            )
        return httpx.Response(200, json={"value": []})

    async with sales_client(token_or(dataverse)) as sales:
        with pytest.raises(ConfigError) as info:
            await register_data_events(sales, WEBHOOK, PRODUCTS)
    message = str(info.value)
    assert "mserp_ecoresreleaseddistinctproductcdsentity" in message
    assert "Data event catalog" in message
    assert "the-key" not in message
