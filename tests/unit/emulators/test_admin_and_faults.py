"""The /_emulator control API: write counters, reset, faults, deliveries, principals."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.unit.emulators.support import API, TENANT, FnoHarness, SalesHarness


async def test_stats_count_writes_by_principal(sales: SalesHarness) -> None:
    _, account = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "A"},
        headers={"Prefer": "return=representation"},
        as_user=True,
    )
    account_id = account["accountid"]
    await sales.json("PATCH", f"{API}/accounts({account_id})", json={"telephone1": "1"})
    response = await sales.client.get("/_emulator/stats")
    stats = await response.json()
    record = stats["entities"]["account"]["records"][account_id]
    assert record["creates"] == 1
    assert record["updates"] == 1
    assert record["by_principal"]["p2c-user"] == {"creates": 1, "updates": 0, "deletes": 0}
    assert record["by_principal"]["bridge-local"] == {"creates": 0, "updates": 1, "deletes": 0}
    assert stats["entities"]["account"]["totals"]["by_principal"]["bridge-local"]["creates"] == 0
    assert "systemuser" not in stats["entities"]


async def test_fno_stats_use_key_predicates(fno: FnoHarness) -> None:
    await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": "C", "CustomerGroupId": "10"},
        as_user=True,
    )
    stats = await (await fno.client.get("/_emulator/stats")).json()
    record = stats["entities"]["CustomersV3"]["records"]["dataAreaId='usmf',CustomerAccount='C'"]
    assert record["by_principal"] == {"p2c-user": {"creates": 1, "updates": 0, "deletes": 0}}
    assert stats["totals"]["creates"] == 1


async def test_reset_forgets_data_but_keeps_seeds(sales: SalesHarness) -> None:
    await sales.json("POST", f"{API}/accounts", json={"name": "A"})
    await sales.client.post("/_emulator/faults", json={"status": 500, "path_prefix": "/nowhere"})
    assert (await sales.client.post("/_emulator/reset")).status == 200
    _, accounts = await sales.json("GET", f"{API}/accounts")
    assert accounts["value"] == []
    _, currencies = await sales.json("GET", f"{API}/transactioncurrencies(isocurrencycode='USD')")
    assert currencies["currencyname"] == "US Dollar"
    faults = await (await sales.client.get("/_emulator/faults")).json()
    assert faults["faults"] == []
    stats = await (await sales.client.get("/_emulator/stats")).json()
    assert stats["totals"]["creates"] == 0


async def test_dataverse_throttling_fault(sales: SalesHarness) -> None:
    response = await sales.client.post(
        "/_emulator/faults", json={"status": 429, "retry_after": 2, "methods": ["POST"]}
    )
    assert response.status == 201
    status, body = await sales.json("GET", f"{API}/accounts")
    assert status == 200
    response = await sales.client.post(f"{API}/accounts", json={"name": "A"}, headers=sales.bridge)
    assert response.status == 429
    assert response.headers["Retry-After"] == "2"
    body = await response.json()
    assert body["error"]["code"] == "0x80072322"
    assert (await sales.client.get("/_emulator/health")).status == 200
    token = await sales.client.post(f"/{TENANT}/oauth2/v2.0/token", data={"grant_type": "x"})
    assert token.status == 400
    await sales.client.delete("/_emulator/faults")
    assert (
        await sales.client.post(f"{API}/accounts", json={"name": "A"}, headers=sales.bridge)
    ).status == 204


async def test_fno_throttling_fault_has_verbatim_message(fno: FnoHarness) -> None:
    await fno.client.post(
        "/_emulator/faults",
        json={"status": 429, "path_prefix": "/data/CustomersV3", "methods": ["PATCH", "POST"]},
    )
    status, body = await fno.json("POST", "/data/CustomersV3", json={})
    assert status == 429
    assert body == {
        "error": {
            "code": "",
            "message": "Number of requests exeeded the limit of 6000 over the time window of 300 seconds.",
        }
    }
    status, _ = await fno.json(
        "POST", "/data/CDSReleasedDistinctProducts", json={"ProductNumber": "P"}
    )
    assert status == 201


async def test_server_errors_count_and_fraction(fno: FnoHarness) -> None:
    await fno.client.post("/_emulator/faults", json={"status": 503, "count": 2})
    statuses = [(await fno.json("GET", "/data/CustomersV3"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    await fno.client.delete("/_emulator/faults")
    await fno.client.post("/_emulator/faults", json={"status": 500, "fraction": 0.0})
    assert (await fno.json("GET", "/data/CustomersV3"))[0] == 200
    faults = await (await fno.client.get("/_emulator/faults")).json()
    assert faults["faults"][0]["fired"] == 0


async def test_fault_duration_expires(fno: FnoHarness) -> None:
    await fno.client.post("/_emulator/faults", json={"status": 500, "duration_seconds": 0.3})
    assert (await fno.json("GET", "/data/CustomersV3"))[0] == 500
    await asyncio.sleep(0.35)
    assert (await fno.json("GET", "/data/CustomersV3"))[0] == 200


async def test_token_endpoint_only_when_prefixed(sales: SalesHarness) -> None:
    await sales.client.post(
        "/_emulator/faults", json={"status": 503, "path_prefix": f"/{TENANT}/oauth2"}
    )
    response = await sales.client.post(f"/{TENANT}/oauth2/v2.0/token", data={})
    assert response.status == 503


async def test_delay_fault(fno: FnoHarness) -> None:
    await fno.client.post("/_emulator/faults", json={"delay_seconds": 0.1})
    started = time.perf_counter()
    status, _ = await fno.json("GET", "/data/CustomersV3")
    assert status == 200
    assert time.perf_counter() - started >= 0.1


async def test_drop_connection(fno: FnoHarness) -> None:
    await fno.client.post("/_emulator/faults", json={"drop_connection": True, "count": 1})
    with pytest.raises(aiohttp.ClientError):
        await fno.client.get("/data/CustomersV3", headers=fno.bridge)
    assert (await fno.json("GET", "/data/CustomersV3"))[0] == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 200},
        {"fraction": 2, "status": 500},
        {"methods": "POST", "status": 500},
        {},
        {"status": 500, "count": 0},
    ],
)
async def test_invalid_fault_specs(sales: SalesHarness, spec: dict[str, object]) -> None:
    response = await sales.client.post("/_emulator/faults", json=spec)
    assert response.status == 400


async def test_deliveries_and_principals_endpoints(sales: SalesHarness) -> None:
    body = await (await sales.client.get("/_emulator/deliveries?wait=1")).json()
    assert body == {"deliveries": []}
    principals = await (await sales.client.get("/_emulator/principals")).json()
    ids = {p["client_id"]: p for p in principals["principals"]}
    assert set(ids) == {"bridge-local", "p2c-user", "system"}
    _, whoami = await sales.json("GET", f"{API}/WhoAmI")
    assert ids["bridge-local"]["systemuser_id"] == whoami["UserId"]
