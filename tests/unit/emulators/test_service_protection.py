"""Service protection: Dataverse per-user limits (dynamics-apis.md A.8) and F&O resource-based
throttling (B.3). Limits are made small and windows short through the settings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.limits import retry_after
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.fno.app import FnoEmulator
from tests.unit.emulators.support import API, BRIDGE, USER, token_for

CRM = "Microsoft.Dynamics.CRM"
# 300 s scaled by 0.001 = a 0.3 s window; Retry-After comes in steps of 0.001 s
FAST = {"limits_time_scale": 0.001}


@asynccontextmanager
async def dataverse(
    **settings: Any,
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], dict[str, str]]]:
    emulator = DataverseEmulator(EmulatorSettings(**{**FAST, **settings}))
    async with TestClient(TestServer(emulator.app)) as client:
        bridge = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        user = {"Authorization": f"Bearer {await token_for(client, USER)}"}
        yield client, bridge, user


async def whoami(client: TestClient[Any, Any], headers: dict[str, str]) -> Any:
    response = await client.get(f"{API}/WhoAmI", headers=headers)
    await response.read()
    return response


async def test_request_count_limit_gives_429_with_code_and_retry_after() -> None:
    # A.8: 429 + Retry-After (seconds); 0x80072322 "Number of requests exceeded the limit ..."
    async with dataverse(dataverse_request_limit=3) as (client, bridge, _):
        remaining = [
            (await whoami(client, bridge)).headers["x-ms-ratelimit-burst-remaining-xrm-requests"]
            for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        refused = await client.get(f"{API}/WhoAmI", headers=bridge)
        assert refused.status == 429
        assert await refused.json() == {
            "error": {
                "code": "0x80072322",
                "message": "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
            }
        }
        wait = float(refused.headers["Retry-After"])
        assert 0 < wait <= 0.3
        await asyncio.sleep(wait)
        assert (await whoami(client, bridge)).status == 200


async def test_limits_are_per_user() -> None:
    # A.8: limits per user (the application of the bearer token)
    async with dataverse(dataverse_request_limit=1) as (client, bridge, user):
        assert (await whoami(client, bridge)).status == 200
        assert (await whoami(client, bridge)).status == 429
        assert (await whoami(client, user)).status == 200


async def test_a_bulk_call_and_a_batch_count_as_one_request() -> None:
    # A.11: one bulk call = 1 request toward 6,000/5 min; A.8: batches count as one request
    async with dataverse(dataverse_request_limit=2) as (client, bridge, _):
        targets = [{"@odata.type": f"{CRM}.account", "name": f"A{i}"} for i in range(20)]
        response = await client.post(
            f"{API}/accounts/{CRM}.CreateMultiple", json={"Targets": targets}, headers=bridge
        )
        assert response.status == 200
        assert response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "1"
        parts = "".join(
            "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"GET {API}/accounts?$top=1 HTTP/1.1\r\n\r\n"
            for _ in range(5)
        )
        batch = await client.post(
            f"{API}/$batch",
            data=parts + "--b--\r\n",
            headers={**bridge, "Content-Type": "multipart/mixed; boundary=b"},
        )
        assert batch.status == 200, await batch.text()
        assert batch.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "0"
        assert (await whoami(client, bridge)).status == 429


async def test_execution_time_limit() -> None:
    # A.8: combined execution time over the window; 0x80072321
    async with dataverse(dataverse_execution_limit_seconds=0.001) as (client, bridge, _):
        # 0.001 s * 0.001 = 1 microsecond of budget: the first request spends it
        assert (await whoami(client, bridge)).status == 200
        refused = await client.get(f"{API}/WhoAmI", headers=bridge)
        assert refused.status == 429
        error = (await refused.json())["error"]
        assert error["code"] == "0x80072321"
        assert error["message"].startswith(
            "Combined execution time of incoming requests exceeded limit of 1 milliseconds over "
            "time window of 300 seconds."
        )
        assert float(refused.headers["Retry-After"]) > 0


async def test_concurrency_limit_refuses_at_once() -> None:
    # A.8: 52 concurrent requests; concurrency breaches fail immediately; 0x80072326
    async with dataverse(dataverse_concurrency_limit=1) as (client, bridge, _):
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"name":'
            await release.wait()
            yield b'"slow"}'

        slow = asyncio.create_task(client.post(f"{API}/accounts", data=slow_body(), headers=bridge))
        await asyncio.sleep(0.1)  # the slow request is in flight, reading its body
        refused = await client.get(f"{API}/WhoAmI", headers=bridge)
        release.set()
        assert refused.status == 429
        assert (await refused.json())["error"] == {
            "code": "0x80072326",
            "message": "Number of concurrent requests exceeded the limit of 1.",
        }
        assert (await slow).status == 204


async def test_informational_headers_on_every_answer() -> None:
    # A.8: x-ms-ratelimit-burst/time-remaining-xrm-requests; A.11: x-ms-dop-hint
    async with dataverse(limits_time_scale=1.0, dataverse_dop_hint=7) as (client, bridge, _):
        response = await whoami(client, bridge)
        assert response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "5999"
        assert re.fullmatch(
            r"1,(199\.\d\d|200\.00)", response.headers["x-ms-ratelimit-time-remaining-xrm-requests"]
        )
        assert response.headers["x-ms-dop-hint"] == "7"


async def test_hammering_while_throttled_lengthens_retry_after() -> None:
    # A.8: repeated hammering lengthens Retry-After
    async with dataverse(dataverse_request_limit=2, limits_time_scale=0.01) as (client, bridge, _):
        for _ in range(2):
            await whoami(client, bridge)
        waits = []
        for _ in range(20):
            response = await client.get(f"{API}/WhoAmI", headers=bridge)
            assert response.status == 429
            waits.append(float(response.headers["Retry-After"]))
        assert waits[-1] > waits[0]


async def test_limits_off_means_no_429_and_no_headers() -> None:
    async with dataverse(limits_enabled=False, dataverse_request_limit=1) as (client, bridge, _):
        for _ in range(3):
            response = await whoami(client, bridge)
            assert response.status == 200
        assert "x-ms-dop-hint" not in response.headers


def test_retry_after_is_whole_seconds_unscaled() -> None:
    assert retry_after(0.2, 1.0) == "1"
    assert retry_after(17.2, 1.0) == "18"
    assert retry_after(0.0172, 0.001) == "0.018"


@asynccontextmanager
async def fno(
    **settings: Any,
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], dict[str, str]]]:
    emulator = FnoEmulator(EmulatorSettings(**{**FAST, **settings}))
    async with TestClient(TestServer(emulator.app)) as client:
        bridge = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        user = {"Authorization": f"Bearer {await token_for(client, USER)}"}
        yield client, bridge, user


async def test_fno_resource_throttling_answers_429_with_retry_after() -> None:
    # B.3: resource-based 429 "...high resource utilization." + Retry-After; per server, so
    # every caller shares the capacity
    async with fno(fno_resource_capacity=2, fno_resource_window_seconds=100) as (
        client,
        bridge,
        user,
    ):
        for headers in (bridge, user):
            response = await client.get("/data/CustomersV3?$top=1", headers=headers)
            assert response.status == 200
        refused = await client.get("/data/CustomersV3?$top=1", headers=bridge)
        assert refused.status == 429
        assert await refused.json() == {
            "error": {
                "code": "",
                "message": "This request could not be processed at this time due to system "
                "experiencing high resource utilization.",
            }
        }
        wait = float(refused.headers["Retry-After"])
        assert 0 < wait <= 0.1
        await asyncio.sleep(wait)
        assert (await client.get("/data/CustomersV3?$top=1", headers=bridge)).status == 200


async def test_fno_batch_weighs_its_operations() -> None:
    async with fno(fno_resource_capacity=3, fno_resource_window_seconds=100) as (client, bridge, _):
        parts = "".join(
            "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            "GET /data/CustomersV3?$top=1 HTTP/1.1\r\n\r\n"
            for _ in range(3)
        )
        batch = await client.post(
            "/data/$batch",
            data=parts + "--b--\r\n",
            headers={**bridge, "Content-Type": "multipart/mixed; boundary=b"},
        )
        assert batch.status == 200, await batch.text()
        assert (await client.get("/data/CustomersV3?$top=1", headers=bridge)).status == 429
