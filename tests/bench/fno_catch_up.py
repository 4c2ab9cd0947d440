"""The cost of F&O catch-up per 10,000 records, on both paths (``python -m tests.bench.fno_catch_up``).

Releases ``P2C_CATCH_UP_RECORDS`` products (10,000 by default) in the F&O emulator, then
measures, with the requests each path sends counted at the emulators' HTTP layer:
- the snapshot diff over F&O OData (no Power Platform link): a first pass (everything is
  new), a pass with nothing changed, a pass after 10 % of the records changed;
- change tracking on the virtual table (with the link): the first pass that establishes
  the delta link, and a pass after 10 % changed.
Publishing goes to an in-memory publisher: this measures the capture path, not Kafka.
Numbers, not asserts; written to ``.local/catch-up.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bridge.config import (
    CompanySettings,
    FnoPollerSettings,
    FnoSettings,
    PollerSettings,
    SalesSettings,
)
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import System
from bridge.dataverse.reader import DataverseReader
from bridge.emulators import Emulators, EmulatorSettings
from bridge.fno.reader import FnoReader
from bridge.fno.snapshot_poller import SnapshotDiffPoller
from bridge.fno.virtual_poller import VirtualTablePoller
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from tests.unit.fakes import MemoryPublisher
from tests.unit.ops.fakes import MemoryState

RECORDS = int(os.environ.get("P2C_CATCH_UP_RECORDS", "10000"))
PRODUCT = source_entity(System.FNO, "product")
PATH = "CDSReleasedDistinctProducts"


class Counting(httpx.AsyncHTTPTransport):
    """Counts the requests the bridge sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/token"):
            self.requests += 1
        return await super().handle_async_request(request)


class MemoryKeys(MemoryState):
    """The state store as a dict, with the prefix listing the snapshot diff uses."""

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]


async def measured(
    name: str, counter: Counting, run: Callable[[], Awaitable[Any]]
) -> dict[str, Any]:
    before, started = counter.requests, time.perf_counter()
    result = await run()
    seconds = time.perf_counter() - started
    row = {"pass": name, "requests": counter.requests - before, "seconds": round(seconds, 2)}
    published = getattr(result, "published", result)
    row["published"] = published
    print(
        f"{name:<55} {row['requests']:>7} requests {row['seconds']:>8.2f} s  {published:>6} published"
    )
    return row


async def release(fno: ApiClient, start: int, count: int, name: str) -> None:
    limit = asyncio.Semaphore(16)

    async def one(index: int) -> None:
        async with limit:
            body = {
                "dataAreaId": "usmf",
                "ProductNumber": f"CU-{index:05d}",
                "ProductName": name,
                "SalesUnitSymbol": "ea",
            }
            await fno.request("POST", PATH, json=body)

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


async def rename(fno: ApiClient, count: int) -> None:
    limit = asyncio.Semaphore(16)

    async def one(index: int) -> None:
        async with limit:
            path = f"{PATH}(dataAreaId='usmf',ProductNumber='CU-{index:05d}')"
            await fno.request(
                "PATCH", path, json={"ProductName": "renamed"}, params={"cross-company": "true"}
            )

    await asyncio.gather(*(one(i) for i in range(count)))


async def main() -> list[dict[str, Any]]:
    emulator = EmulatorSettings()
    rows: list[dict[str, Any]] = []
    async with Emulators(emulator, sales_port=0, fno_port=0) as emulators:
        user = {"client_id": emulator.user_client_id, "client_secret": emulator.user_client_secret}
        fno_settings = FnoSettings(base_url=emulators.fno_url)
        sales_settings = SalesSettings(base_url=emulators.sales_url)
        counter = Counting()
        policy = RetryPolicy()
        async with (
            ApiClient(fno_settings.model_copy(update=user), "/data", policy) as fno_user,
            ApiClient(fno_settings, "/data", policy, transport=counter) as fno,
            ApiClient(sales_settings, sales_settings.api_path, policy, transport=counter) as sales,
        ):
            print(f"releasing {RECORDS} products …")
            await release(fno_user, 0, RECORDS, "first")
            diff = SnapshotDiffPoller(
                FnoPollerSettings(page_size=1000),
                PRODUCT,
                FnoReader(fno),
                MemoryPublisher(),
                MemoryKeys(),
                CompanySettings(map={"usmf": "*"}),
            )
            virtual = VirtualTablePoller(
                PollerSettings(page_size=5000),
                PRODUCT,
                DataverseReader(sales),
                FnoReader(fno),
                MemoryPublisher(),
                MemoryKeys(),
            )
            rows.append(
                await measured("snapshot diff, first pass (all new)", counter, diff.poll_once)
            )
            rows.append(await measured("snapshot diff, nothing changed", counter, diff.poll_once))
            rows.append(
                await measured(
                    "virtual table, first pass (establish link)", counter, virtual.poll_once
                )
            )
            await rename(fno_user, RECORDS // 10)
            rows.append(await measured("snapshot diff, 10 % changed", counter, diff.poll_once))
            rows.append(await measured("virtual table, 10 % changed", counter, virtual.poll_once))
    return rows


if __name__ == "__main__":
    passes = asyncio.run(main())
    out = Path(".local/catch-up.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"records": RECORDS, "passes": passes}, indent=2))
    print(f"written to {out}")
