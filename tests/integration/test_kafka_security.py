"""The bridge against a Kafka broker that requires TLS and SASL (SCRAM), and one that
requires client certificates: compose/local/kafka.sh with KAFKA_SECURITY=sasl_ssl.

A change made in Sales flows through the secure broker to F&O (read back from the F&O
API); the records on the topic are read with a second SCRAM mechanism; wrong credentials
stop ``bridge run`` with exit code 2 and one line naming the cause.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from bridge.config import (
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
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.server import Emulators
from bridge.errors import ConfigError
from bridge.http.retry import RetryPolicy
from bridge.kafka.clients import connection_options
from bridge.kafka.topics import ensure_topics
from tests.integration.conftest import Stack, eventually, free_port, running_bridge
from tests.integration.test_accounts_flow import create_account, customer_named
from tests.support.bridge_process import settings_env
from tests.support.kafka_broker import (
    SECURE_HOME,
    SECURE_SSL_PORT,
    secure_broker,
    secure_client_env,
)


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[KafkaSettings]:
    """The secure broker (started here unless it runs), as SCRAM-SHA-512 client settings."""
    started = secure_broker("status") != 0
    if started:
        secure_broker("up")
    env = secure_client_env()
    try:
        yield KafkaSettings(
            bootstrap_servers=env["BRIDGE_KAFKA__BOOTSTRAP_SERVERS"],
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=env["BRIDGE_KAFKA__SASL_USERNAME"],
            sasl_password=SecretStr(env["BRIDGE_KAFKA__SASL_PASSWORD"]),
            ssl_cafile=Path(env["BRIDGE_KAFKA__SSL_CAFILE"]),
            topic_prefix=f"s{uuid.uuid4().hex[:8]}",
        )
    finally:
        if started:
            secure_broker("down")


@pytest.fixture
async def secure_stack(secure_kafka: KafkaSettings) -> AsyncIterator[Stack]:
    """Emulators and bridge settings whose Kafka is the secure broker."""
    emulator_settings = EmulatorSettings()
    async with Emulators(emulator_settings, sales_port=0, fno_port=0) as emulators:
        unique = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka=secure_kafka.model_copy(update={"topic_prefix": f"s{unique}"}),
            sales=SalesSettings(base_url=emulators.sales_url),
            fno=FnoSettings(base_url=emulators.fno_url),
            webhook=WebhookSettings(port=free_port(), key=SecretStr(f"key-{unique}")),
            poller=PollerSettings(interval_seconds=0.5),
            retry=RetrySettings(max_attempts=4, initial_backoff_seconds=0.05),
            flows=FlowSettings(consumer_group_prefix=f"g{unique}", blocked_retry_seconds=0.5),
        )
        policy = RetryPolicy.from_settings(settings.retry)
        sales_user, fno_user = user_clients(settings, policy, emulator_settings)
        async with sales_user, fno_user, httpx.AsyncClient() as admin:
            yield Stack(emulators, settings, sales_user, fno_user, admin)


async def records_on(kafka: KafkaSettings, topic: str) -> list[bytes]:
    """Every record key on ``topic``, read with SCRAM-SHA-256 (the bridge used -512)."""
    consumer = AIOKafkaConsumer(
        topic,
        **connection_options(kafka.model_copy(update={"sasl_mechanism": "SCRAM-SHA-256"})),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        keys: list[bytes] = []
        while not consumer.assignment() or any(
            [
                await consumer.position(tp) < (await consumer.end_offsets([tp]))[tp]
                for tp in consumer.assignment()
            ]
        ):
            batch = await consumer.getmany(timeout_ms=1000)
            keys += [record.key or b"" for records in batch.values() for record in records]
        return keys
    finally:
        await consumer.stop()


async def test_a_change_flows_end_to_end_over_sasl_ssl_with_scram(secure_stack: Stack) -> None:
    stack = secure_stack
    async with running_bridge(stack.settings):
        account = await create_account(stack, name="Contoso Secure")
        number = account["accountnumber"]
        await eventually(lambda: customer_named(stack, number, "Contoso Secure"), timeout=60)
    topic = f"{stack.settings.kafka.topic_prefix}.sales.account"
    keys = await records_on(stack.settings.kafka, topic)
    assert account["accountid"].encode() in keys


def run_bridge(settings: Settings, **kafka: object) -> subprocess.CompletedProcess[str]:
    changed = settings.model_copy(update={"kafka": settings.kafka.model_copy(update=kafka)})
    return subprocess.run(
        [sys.executable, "-m", "bridge", "run"],
        env=settings_env(changed),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_wrong_scram_password_stops_bridge_run_with_one_clear_line(
    secure_stack: Stack,
) -> None:
    wrong = "not-the-scram-password"
    done = await asyncio.to_thread(
        run_bridge, secure_stack.settings, sasl_password=SecretStr(wrong)
    )
    assert done.returncode == 2, done.stderr[-2000:]
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [
        f"error: Kafka at {secure_stack.settings.kafka.bootstrap_servers} refused the bridge: "
        "SASL authentication failed (SCRAM-SHA-512 as 'bridge'): [Error 58] "
        "SaslAuthenticationFailed: Authentication failed during authentication due to "
        "invalid credentials with SASL mechanism SCRAM-SHA-512"
    ]
    assert "Traceback" not in done.stderr
    assert wrong not in done.stderr + done.stdout


async def test_mutual_tls_needs_the_client_certificate(secure_kafka: KafkaSettings) -> None:
    tls = SECURE_HOME / "tls"
    ssl_only = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{SECURE_SSL_PORT}",
        security_protocol="SSL",
        ssl_cafile=tls / "ca.pem",
        topic_prefix=f"m{uuid.uuid4().hex[:8]}",
    )
    with pytest.raises(ConfigError, match="TLS refused by the broker"):
        await ensure_topics(ssl_only)
    with_certificate = ssl_only.model_copy(
        update={"ssl_certfile": tls / "client.pem", "ssl_keyfile": tls / "client.key"}
    )
    await ensure_topics(with_certificate)
    admin = AIOKafkaAdminClient(**connection_options(with_certificate))
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert f"{ssl_only.topic_prefix}.sales.account" in topics
