"""A crashed bridge loses nothing and duplicates nothing; any Avro library reads the topics."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import httpx
from aiokafka import AIOKafkaConsumer

from bridge.config import SCHEMAS_DIR, Settings
from bridge.setup import run_setup
from tests.integration.conftest import Stack, eventually, running_bridge
from tests.integration.test_accounts_flow import create_account, customer_named

ACCOUNTS = int(os.environ.get("P2C_FAULT_CHANGES", "240"))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``bridge run`` use ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    s = settings
    env.update(
        {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "BRIDGE_KAFKA__TOPIC_PREFIX": s.kafka.topic_prefix,
            "BRIDGE_SALES__BASE_URL": s.sales.base_url,
            "BRIDGE_FNO__BASE_URL": s.fno.base_url,
            "BRIDGE_WEBHOOK__PORT": str(s.webhook.port),
            "BRIDGE_WEBHOOK__KEY": s.webhook.key.get_secret_value(),
            "BRIDGE_POLLER__INTERVAL_SECONDS": str(s.poller.interval_seconds),
            "BRIDGE_FLOWS__CONSUMER_GROUP_PREFIX": s.flows.consumer_group_prefix,
            "BRIDGE_FLOWS__BLOCKED_RETRY_SECONDS": "0.5",
            "BRIDGE_LOG__FORMAT": "json",
        }
    )
    return env


class BridgeProcess:
    """``bridge run`` as a child process, stopped by its pid."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run"],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def ready(self) -> None:
        url = f"http://127.0.0.1:{self.settings.webhook.port}/healthz"

        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                self.log_path.read_text()
            )
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout=60, interval=0.1)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def bridge_process(settings: Settings, tmp_path: Path) -> Iterator[BridgeProcess]:
    process = BridgeProcess(settings, tmp_path / "bridge.log")
    try:
        yield process
    finally:
        process.stop()


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    await run_setup(stack.settings)
    with bridge_process(stack.settings, tmp_path) as process:
        process.start()
        await process.ready()
        created: list[dict[str, Any]] = []
        limit = asyncio.Semaphore(8)

        async def create(index: int) -> None:
            async with limit:
                created.append(await create_account(stack, name=f"Crash Test {index}"))

        async def create_all() -> None:
            await asyncio.gather(*(create(i) for i in range(ACCOUNTS)))

        writer = asyncio.create_task(create_all())
        await eventually(lambda: asyncio.sleep(0, len(created) >= ACCOUNTS // 3), timeout=60)
        process.kill()
        killed_after = len(created)
        await writer
        updated = created[: ACCOUNTS // 4]
        for account in updated:
            await stack.sales_user.request(
                "PATCH", f"accounts({account['accountid']})", json={"name": account["name"] + " v2"}
            )
        process.start()
        await process.ready()

        async def all_converged() -> bool:
            for account in created:
                name = account["name"] + (" v2" if account in updated else "")
                if not await customer_named(stack, account["accountnumber"], name):
                    return False
            return True

        await eventually(all_converged, timeout=120, interval=0.5)
    writes = await stack.fno_writes("CustomersV3")
    creates = {label: counts["creates"] for label, counts in writes.items()}
    assert len(creates) == ACCOUNTS
    assert set(creates.values()) == {1}, "no customer was created twice"
    from tests.integration.test_faults import assert_no_drift

    checked = await assert_no_drift(stack)
    print(
        f"reconcile checked {checked}, no drift; killed after {killed_after} of {ACCOUNTS} creates; {len(updated)} updates while down; "
        f"{len(creates)} customers, each created once"
    )


async def test_an_independent_avro_library_decodes_the_topic(stack: Stack) -> None:
    async with running_bridge(stack.settings):
        account = await create_account(stack, name="Contract Check")
        await eventually(lambda: customer_named(stack, account["accountnumber"], "Contract Check"))
    schemas = [avro.schema.parse(p.read_text()) for p in sorted(SCHEMAS_DIR.glob("*.avsc"))]
    by_fingerprint = {s.fingerprint("CRC-64-AVRO"): s for s in schemas}
    consumer = AIOKafkaConsumer(
        f"{stack.settings.kafka.topic_prefix}.sales.account",
        bootstrap_servers=stack.settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    record = next(r for rs in batch.values() for r in rs)
    assert record.value[:2] == b"\xc3\x01"
    schema = by_fingerprint[record.value[2:10]]
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(record.value[10:])))
    assert datum["source"]["record_id"] == account["accountid"]
    assert datum["after"]["accountnumber"] == account["accountnumber"]
    assert record.key == account["accountid"].encode()
