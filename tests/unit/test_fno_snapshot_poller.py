"""The snapshot-diff poller finds F&O creates, updates and deletes through OData alone
(for an environment without Power Platform integration), judged against what the test
wrote in the F&O emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.config import CompanySettings, FnoPollerSettings, FnoSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Operation, System
from bridge.emulators import Emulators, EmulatorSettings
from bridge.fno.reader import FnoReader
from bridge.fno.snapshot_poller import SnapshotDiffPoller
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from tests.unit.fakes import MemoryPublisher

PRODUCT = source_entity(System.FNO, "product")
PATH = "CDSReleasedDistinctProducts"


class MemoryState:
    """The state store as a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]

    async def put(self, key: str, value: Any) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


@pytest.fixture
async def fno() -> AsyncIterator[ApiClient]:
    async with Emulators(EmulatorSettings(), sales_port=0, fno_port=0) as emulators:
        settings = FnoSettings(base_url=emulators.fno_url, client_id="p2c-user")
        settings = settings.model_copy(
            update={"client_secret": EmulatorSettings().user_client_secret}
        )
        async with ApiClient(settings, settings.api_path, RetryPolicy()) as client:
            yield client


async def release(fno: ApiClient, number: str, name: str) -> None:
    body = {"dataAreaId": "usmf", "ProductNumber": number, "ProductName": name}
    await fno.request("POST", PATH, json={**body, "SalesUnitSymbol": "ea"})


def key(number: str) -> str:
    return f"{PATH}(dataAreaId='usmf',ProductNumber='{number}')"


async def test_creates_updates_and_deletes_are_found_and_each_published_once(
    fno: ApiClient,
) -> None:
    publisher, state = MemoryPublisher(), MemoryState()
    poller = SnapshotDiffPoller(
        FnoPollerSettings(page_size=2),
        PRODUCT,
        FnoReader(fno),
        publisher,
        state,
        CompanySettings(map={"usmf": "*"}),
    )
    for n in range(5):
        await release(fno, f"SD-{n}", f"Product {n}")
    first = await poller.poll_once()
    assert (first.created, first.updated, first.deleted) == (5, 0, 0)
    assert first.requests == 3  # 5 records, 2 per page
    assert (await poller.poll_once()).published == 0, "an unchanged set publishes nothing"

    await fno.request(
        "PATCH", key("SD-1"), json={"ProductName": "renamed"}, params={"cross-company": "true"}
    )
    await fno.request("DELETE", key("SD-2"), params={"cross-company": "true"})
    await release(fno, "SD-2", "released again")
    await fno.request("DELETE", key("SD-3"), params={"cross-company": "true"})
    second = await poller.poll_once()
    assert (second.created, second.updated, second.deleted) == (0, 2, 1)

    latest = publisher.events[-3:]
    by_number = {e.source.business_key: e for e in latest}
    assert (
        by_number["SD-1"].after is not None and by_number["SD-1"].after["ProductName"] == "renamed"
    )
    assert (
        by_number["SD-2"].after is not None
        and by_number["SD-2"].after["ProductName"] == "released again"
    )
    assert by_number["SD-3"].operation is Operation.DELETE
    assert by_number["SD-3"].before == {"dataAreaId": "usmf", "ProductNumber": "SD-3"}
    assert (await poller.poll_once()).published == 0
