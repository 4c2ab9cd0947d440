"""Secrets never reach logs, error messages or dead-letter headers, even while things fail."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from bridge.config import FnoSettings, LogSettings, Settings, WebhookSettings
from bridge.errors import BridgeError
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.logs import configure_logging, redact_secrets
from bridge.sources.receiver import DATAVERSE_PATH, WebhookReceiver
from tests.unit.fakes import MemoryPublisher, StaticReader
from tests.unit.notifications import notification

CLIENT_SECRET = "s3cr3t-client-value"
WEBHOOK_KEY = "w3bh00k-key-value"
TOKEN = "eyJ.very-secret-token.sig"


def leaked(logs: list[dict[str, Any]], *secrets: str) -> list[str]:
    text = json.dumps(logs, default=str)
    return [s for s in secrets if s in text]


async def test_failing_calls_log_no_secret() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3599})
        if calls < 3:
            return httpx.Response(503, json={"error": {"message": "down"}})
        return httpx.Response(401, json={"error": {"message": "nope"}})

    settings = FnoSettings(client_secret=SecretStr(CLIENT_SECRET))
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.001)
    with capture_logs() as logs:
        async with ApiClient(
            settings, "/data", policy, transport=httpx.MockTransport(handler)
        ) as client:
            with pytest.raises(BridgeError) as info:
                await client.get_json("CustomersV3")
    assert logs, "the retries were logged"
    assert leaked(logs, CLIENT_SECRET, TOKEN) == []
    assert CLIENT_SECRET not in str(info.value) and TOKEN not in str(info.value)


async def test_rejected_webhooks_log_no_key() -> None:
    receiver = WebhookReceiver(
        WebhookSettings(key=SecretStr(WEBHOOK_KEY)), MemoryPublisher(), StaticReader(None)
    )  # type: ignore[arg-type]
    with capture_logs() as logs:
        async with TestClient(TestServer(receiver.application())) as client:
            for code in ("wrong", WEBHOOK_KEY[:-1], ""):
                response = await client.post(f"{DATAVERSE_PATH}?code={code}", json=notification())
                assert WEBHOOK_KEY not in await response.text()
    assert leaked(logs, WEBHOOK_KEY) == []


def test_printed_settings_mask_secrets() -> None:
    settings = Settings(
        fno=FnoSettings(client_secret=SecretStr(CLIENT_SECRET)),
        webhook=WebhookSettings(key=SecretStr(WEBHOOK_KEY)),
    )
    dumped = json.dumps(settings.model_dump(mode="json"))
    assert (
        CLIENT_SECRET not in dumped
        and WEBHOOK_KEY not in dumped
        and CLIENT_SECRET not in repr(settings)
    )


@pytest.mark.parametrize(
    "key", ["client_secret", "access_token", "Authorization", "webhook_key", "authvalue"]
)
def test_the_log_processor_redacts_secret_keys(key: str) -> None:
    assert redact_secrets(None, "info", {key: "x", "flow": "accounts"}) == {
        key: "[redacted]",
        "flow": "accounts",
    }


def test_configured_logging_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    configure_logging(LogSettings(format="json"), stream=sys.stdout)
    try:
        structlog.get_logger("t").info("careless", client_secret=CLIENT_SECRET)
    finally:
        structlog.reset_defaults()
    assert CLIENT_SECRET not in capsys.readouterr().out
