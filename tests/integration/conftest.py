"""The local stack for integration tests: the real Kafka broker started by the project's
script, both emulators over real HTTP on loopback, and the bridge.

Each test gets its own topic prefix and consumer groups, so tests never see each other's
events, and stops everything it started even when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from bridge.app import start_bridge
from bridge.config import (
    AdminSettings,
    FlowSettings,
    FnoSettings,
    KafkaSettings,
    PollerSettings,
    RetrySettings,
    SalesSettings,
    Settings,
    WebhookSettings,
)
from bridge.demo import user_clients
from bridge.emulators.server import Emulators
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.setup import run_setup
from tests.support.kafka_broker import BOOTSTRAP, ensure_broker
from tests.support.systems import harness_emulator_settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """The project's Kafka broker (started by compose/local/kafka.sh if it is not running)."""
    ensure_broker()
    return BOOTSTRAP


@dataclass
class Stack:
    """A running pair of emulators and the settings a bridge needs to use them."""

    emulators: Emulators
    settings: Settings
    sales_user: ApiClient
    fno_user: ApiClient
    admin: httpx.AsyncClient

    def with_settings(self, **sections: Any) -> Settings:
        """A copy of the bridge settings with some sections replaced."""
        return self.settings.model_copy(update=sections)

    async def fno_stats(self) -> dict[str, Any]:
        """The F&O emulator's write counters."""
        response = await self.admin.get(f"{self.emulators.fno_url}/_emulator/stats")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def fno_writes(self, entity_set: str) -> dict[str, dict[str, Any]]:
        """F&O write counters of one entity set, per record label."""
        entities = (await self.fno_stats())["entities"]
        records: dict[str, dict[str, Any]] = entities.get(entity_set, {}).get("records", {})
        return records

    async def sales_stats(self) -> dict[str, Any]:
        """The Dataverse emulator's write counters."""
        response = await self.admin.get(f"{self.emulators.sales_url}/_emulator/stats")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def stack(broker: str) -> AsyncIterator[Stack]:
    """Emulators on free ports and bridge settings pointing at them, with a unique prefix."""
    emulator_settings = harness_emulator_settings()
    async with Emulators(
        emulator_settings, host="127.0.0.1", sales_port=0, fno_port=0
    ) as emulators:
        unique = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=broker, topic_prefix=f"t{unique}", partitions=3),
            sales=SalesSettings(base_url=emulators.sales_url),
            fno=FnoSettings(base_url=emulators.fno_url),
            webhook=WebhookSettings(port=free_port(), key=SecretStr(f"key-{unique}")),
            poller=PollerSettings(interval_seconds=0.5),
            retry=RetrySettings(
                max_attempts=4, initial_backoff_seconds=0.05, max_backoff_seconds=0.5
            ),
            flows=FlowSettings(consumer_group_prefix=f"g{unique}", blocked_retry_seconds=0.5),
            admin=AdminSettings(port=0),  # an ephemeral port: tests run several bridges at once
        )
        policy = RetryPolicy.from_settings(settings.retry)
        sales_user, fno_user = user_clients(settings, policy, emulator_settings)
        try:
            async with sales_user, fno_user, httpx.AsyncClient() as admin:
                yield Stack(emulators, settings, sales_user, fno_user, admin)
        finally:
            await delete_topics(broker, settings.kafka.topic_prefix)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete a test's topics, so the broker does not grow by ~100 partitions per test
    (a broker with thousands of partitions restarts too slowly for the fault tests)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        mine = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
        if mine:
            await admin.delete_topics(mine)
    except KafkaError:
        pass  # the broker may be down after a fault test; its data dir is the project's own
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def running_bridge(
    settings: Settings, *, register_webhooks: bool = True
) -> AsyncIterator[None]:
    """Run the bridge in this process for the duration of the block."""
    if register_webhooks and settings.webhook.enabled:
        await run_setup(settings)
    task = await start_bridge(settings)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Any, *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` (async) until it returns a truthy value; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
