"""Thousands of malformed requests against the webhook receiver over real HTTP on loopback:
never a 5xx, never an event published (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bridge.config import WebhookSettings
from bridge.sources.receiver import DATAVERSE_PATH, WebhookReceiver
from tests.unit.fakes import MemoryPublisher, StaticReader
from tests.unit.notifications import notification

KEY = "fuzz-key"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
REQUIRED = ("MessageName", "PrimaryEntityName", "PrimaryEntityId")


@st.composite
def broken_notifications(draw: st.DrawFn) -> bytes:
    """A valid notification with one required field removed or given a wrong type."""
    body: dict[str, Any] = notification(draw(st.sampled_from(["Create", "Update", "Delete"])))
    field = draw(st.sampled_from(REQUIRED))
    if draw(st.booleans()):
        del body[field]
    else:
        body[field] = draw(st.sampled_from([None, 12, [], {}, ""]))
    return json.dumps(body).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    broken_notifications(),
    st.text(max_size=200).map(str.encode),
)


@dataclass
class Served:
    url: str
    publisher: MemoryPublisher
    http: httpx.Client


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The receiver on a real loopback port, in a thread of its own, for the whole module."""
    publisher = MemoryPublisher()
    settings_ = WebhookSettings(key=SecretStr(KEY), port=0, max_body_bytes=2048)
    receiver = WebhookReceiver(settings_, publisher, StaticReader(None))  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with receiver:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    assert started.wait(10)
    try:
        with httpx.Client() as http:  # one client: building one costs an SSL context
            yield Served(f"http://127.0.0.1:{receiver.port}", publisher, http)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from([DATAVERSE_PATH, "/webhooks/unknown"]),
    key=st.one_of(st.just(KEY), st.text(max_size=12), st.none()),
    body=bodies,
)
def test_no_malformed_request_gets_a_5xx_or_publishes(
    served: Served, path: str, key: str | None, body: bytes
) -> None:
    params = {} if key is None else {"code": key}
    response = httpx.post(
        served.url + path, params=params, content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (response.status_code, body[:80])
    assert response.json()["error"]["code"]
    assert served.publisher.events == []
