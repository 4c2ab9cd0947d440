"""Data events arrive in no guaranteed order; their versions order them (A.9, B.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.emulators.common.settings import EmulatorSettings
from tests.unit.emulators.p2c_support import fno_create
from tests.unit.emulators.support import LinkedHarness, Receiver, register_step

CUSTOMER_URL = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"


@pytest.fixture
def settings() -> EmulatorSettings:
    """Four concurrent workers and a retry slow enough to be overtaken."""
    return EmulatorSettings(webhook_workers=4, webhook_retry_delay_seconds=0.3)


def credit_limit(body: dict[str, Any]) -> float:
    pairs = body["InputParameters"][0]["value"]["Attributes"]
    return float(next(p["value"] for p in pairs if p["key"] == "mserp_creditlimit"))


async def test_out_of_order_deliveries_are_ordered_by_row_version(
    linked: LinkedHarness, receiver: Receiver
) -> None:
    await fno_create(
        linked.fno, "CustomersV3", {"CustomerAccount": "US-001", "CustomerGroupId": "10"}
    )
    status, _ = await register_step(
        linked.sales, receiver.url, "OnExternalUpdated", "mserp_custcustomerv3entity"
    )
    assert status == 201
    retried: set[float] = set()

    def fail_first_update_once(body: Any) -> int | None:
        limit = credit_limit(body)
        if limit == 1.0 and limit not in retried:
            retried.add(limit)
            return 503
        return None

    receiver.status_for = fail_first_update_once
    for limit in (1.0, 2.0, 3.0, 4.0):
        status, _ = await linked.fno.json("PATCH", CUSTOMER_URL, json={"CreditLimit": limit})
        assert status == 204
    async with asyncio.timeout(5):
        await linked.sales.emulator.dispatcher.wait_idle()
    bodies = [r.body for r in receiver.requests]
    refused = next(i for i, body in enumerate(bodies) if credit_limit(body) == 1.0)
    delivered = bodies[:refused] + bodies[refused + 1 :]
    assert [credit_limit(body) for body in delivered][-1] == 1.0
    by_version = sorted(
        delivered, key=lambda body: int(body["InputParameters"][0]["value"]["RowVersion"])
    )
    assert [credit_limit(body) for body in by_version] == [1.0, 2.0, 3.0, 4.0]
