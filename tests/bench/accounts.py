"""``make bench``: throughput and end-to-end latency of the accounts flow on the local stack.

Starts both emulators and the bridge in this process against the local Kafka broker, then
a salesperson creates N accounts (16 at a time) and edits each once. A watcher lists F&O's
customers every 50 ms and notes when each change shows up. Prints changes per second and
latency percentiles from "Sales answered the write" to "F&O shows it", and writes them to
``.local/bench.json``. Numbers, not asserts: compare runs on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bridge.app import start_bridge
from bridge.config import (
    FlowSettings,
    FnoSettings,
    KafkaSettings,
    LogSettings,
    SalesSettings,
    Settings,
    WebhookSettings,
)
from bridge.emulators.common.settings import EmulatorSettings
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.logs import configure_logging
from bridge.setup import run_setup
from tests.integration.conftest import free_port

COUNT = int(os.environ.get("P2C_BENCH_ACCOUNTS", "1000"))
CONCURRENCY = 16
RESULT = Path(".local/bench.json")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def watch(
    fno: ApiClient, expected: dict[str, Any], seen: dict[str, float], done: asyncio.Event
) -> None:
    """Note when F&O first shows each expected (account number → field values)."""
    while not done.is_set():
        async for page in fno.pages(
            "CustomersV3",
            params={"cross-company": "true", "$select": "CustomerAccount,CreditLimit"},
        ):
            now = time.monotonic()
            for row in page.get("value", []):
                number = row["CustomerAccount"]
                want = expected.get(number)
                if want is not None and number not in seen and row["CreditLimit"] == want:
                    seen[number] = now
        if len(seen) >= len(expected) and expected:
            done.set()
        await asyncio.sleep(0.05)


async def phase(name: str, sales: ApiClient, fno: ApiClient, work: list[Any]) -> dict[str, Any]:
    """Run one batch of writes and measure until F&O shows all of them."""
    written: dict[str, float] = {}
    expected: dict[str, Any] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(fno, expected, seen, done))
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()

    async def one(item: Any) -> None:
        async with limit:
            number, limit_value = await item()
            written[number] = time.monotonic()
            expected[number] = limit_value

    await asyncio.gather(*(one(item) for item in work))
    await asyncio.wait_for(done.wait(), timeout=600)
    watcher.cancel()
    latencies = [(seen[n] - written[n]) * 1000 for n in written]
    elapsed = max(seen.values()) - started
    return {
        "phase": name,
        "changes": len(written),
        "seconds": round(elapsed, 2),
        "changes_per_second": round(len(written) / elapsed, 1),
        "latency_ms_p50": round(statistics.median(latencies)),
        "latency_ms_p95": round(percentile(latencies, 0.95)),
        "latency_ms_p99": round(percentile(latencies, 0.99)),
        "latency_ms_max": round(max(latencies)),
    }


@contextlib.asynccontextmanager
async def emulators_process() -> AsyncIterator[tuple[str, str]]:
    """``bridge emulate`` in a process of its own (as in production, the systems are not in
    the bridge's process), stopped by its pid."""
    sales_port, fno_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "bridge",
        "emulate",
        "--sales-port",
        str(sales_port),
        "--fno-port",
        str(fno_port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220 - once, at start
    sales_url, fno_url = f"http://127.0.0.1:{sales_port}", f"http://127.0.0.1:{fno_port}"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    if (await probe.get(f"{fno_url}/_emulator/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        yield sales_url, fno_url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


async def main() -> list[dict[str, Any]]:
    RESULT.parent.mkdir(exist_ok=True)
    log_file = RESULT.with_suffix(".log").open("w")
    configure_logging(LogSettings(level="WARNING", format="json"), stream=log_file)
    emulator_settings = EmulatorSettings()
    async with emulators_process() as (sales_url, fno_url):
        unique = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka=KafkaSettings(topic_prefix=f"bench{unique}"),
            sales=SalesSettings(base_url=sales_url),
            fno=FnoSettings(base_url=fno_url),
            webhook=WebhookSettings(port=free_port(), key=SecretStr(unique)),
            flows=FlowSettings(enabled=["accounts"], consumer_group_prefix=f"bench{unique}"),
            log=LogSettings(level="WARNING", format="json"),
        )
        await run_setup(settings)
        bridge = await start_bridge(settings)
        user = {
            "client_id": emulator_settings.user_client_id,
            "client_secret": emulator_settings.user_client_secret,
        }
        policy = RetryPolicy()
        sales = ApiClient(settings.sales.model_copy(update=user), settings.sales.api_path, policy)
        fno = ApiClient(settings.fno.model_copy(update=user), settings.fno.api_path, policy)
        results = []
        async with sales, fno:
            ids: dict[str, str] = {}

            def creator(index: int) -> Any:
                async def create() -> tuple[str, float]:
                    body = {"name": f"Bench {index}", "creditlimit": 1000.0}
                    record = (
                        await sales.request(
                            "POST",
                            "accounts",
                            json=body,
                            headers={"Prefer": "return=representation"},
                        )
                    ).json()
                    ids[record["accountnumber"]] = record["accountid"]
                    return record["accountnumber"], 1000.0

                return create

            results.append(await phase("create", sales, fno, [creator(i) for i in range(COUNT)]))

            def updater(number: str, account_id: str) -> Any:
                async def update() -> tuple[str, float]:
                    await sales.request(
                        "PATCH", f"accounts({account_id})", json={"creditlimit": 2000.0}
                    )
                    return number, 2000.0

                return update

            results.append(
                await phase("update", sales, fno, [updater(n, i) for n, i in ids.items()])
            )
        bridge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge
    log_file.close()
    return results


if __name__ == "__main__":
    rows = asyncio.run(main())
    RESULT.write_text(json.dumps(rows, indent=2))
    for row in rows:
        print(
            f"{row['phase']:>6}: {row['changes']} changes in {row['seconds']} s = {row['changes_per_second']}/s; "
            f"latency p50 {row['latency_ms_p50']} ms, p95 {row['latency_ms_p95']} ms, "
            f"p99 {row['latency_ms_p99']} ms, max {row['latency_ms_max']} ms"
        )
    print(f"written to {RESULT}")
