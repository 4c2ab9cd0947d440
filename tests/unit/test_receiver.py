"""The webhook receiver's edge: what each kind of request gets, and what is published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bridge.config import WebhookSettings
from bridge.sources.receiver import DATAVERSE_PATH, WebhookReceiver
from tests.unit.fakes import MemoryPublisher, StaticReader
from tests.unit.notifications import account_image, notification

KEY = "k3y-for-tests"
URL = f"{DATAVERSE_PATH}?code={KEY}"


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def reader() -> StaticReader:
    return StaticReader({"accountid": "x", "name": "Read", "versionnumber": 5000})


@pytest.fixture
async def client(
    publisher: MemoryPublisher, reader: StaticReader
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = WebhookSettings(key=SecretStr(KEY), max_body_bytes=4096)
    receiver = WebhookReceiver(settings, publisher, reader)  # type: ignore[arg-type]
    async with TestClient(TestServer(receiver.application())) as test_client:
        yield test_client


async def test_valid_notification_is_published_once(
    client: TestClient[Any, Any], publisher: MemoryPublisher
) -> None:
    body = notification("Update", post=account_image(1001))
    first = await client.post(URL, json=body)
    again = await client.post(URL, json=body)
    assert first.status == 200
    assert again.status == 200
    assert (await first.json())["published"] == 1
    assert (await again.json())["published"] == 0
    assert len(publisher.events) == 1


async def test_body_without_version_is_completed_by_a_read(
    client: TestClient[Any, Any], publisher: MemoryPublisher, reader: StaticReader
) -> None:
    body = notification("Update", target={"name": "x"})
    body["PostEntityImages"] = []
    response = await client.post(URL, json=body)
    assert response.status == 200
    assert reader.reads == 1
    assert publisher.events[0].source.record_version == 5000


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (DATAVERSE_PATH, 401),
        (f"{DATAVERSE_PATH}?code=wrong", 401),
        (f"{DATAVERSE_PATH}?code=", 401),
    ],
)
async def test_wrong_or_missing_key_is_401(
    client: TestClient[Any, Any], publisher: MemoryPublisher, path: str, status: int
) -> None:
    response = await client.post(path, json=notification())
    assert response.status == status
    assert (await response.json())["error"]["code"] == "unauthorized"
    assert publisher.events == []


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"{}", 400, "invalid_notification"),
        (b"[1,2]", 400, "invalid_notification"),
        (json.dumps(notification(entity_name="systemuser")).encode(), 422, "not_captured"),
        (b"x" * 5000, 413, "too_large"),
    ],
    ids=["text", "binary", "empty-object", "array", "unknown-entity", "too-large"],
)
async def test_bad_input_is_4xx_and_publishes_nothing(
    client: TestClient[Any, Any], publisher: MemoryPublisher, data: bytes, status: int, code: str
) -> None:
    response = await client.post(URL, data=data, headers={"Content-Type": "application/json"})
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert publisher.events == []


async def test_chunked_body_over_the_limit_is_413(
    client: TestClient[Any, Any], publisher: MemoryPublisher
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post(URL, data=chunks())
    assert response.status == 413
    assert publisher.events == []


async def test_kafka_down_is_503_so_the_sender_retries(
    client: TestClient[Any, Any], publisher: MemoryPublisher
) -> None:
    publisher.fail = True
    response = await client.post(URL, json=notification())
    assert response.status == 503
    assert publisher.events == []


async def test_unknown_path_and_method_are_json_errors(client: TestClient[Any, Any]) -> None:
    assert (await client.get(URL)).status == 405
    response = await client.post("/nope", json={})
    assert response.status == 404
    assert "error" in await response.json()
