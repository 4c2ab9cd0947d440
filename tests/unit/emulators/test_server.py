"""Both emulators on real loopback ports, driven with httpx like the bridge does."""

from __future__ import annotations

import asyncio

import httpx

from bridge.emulators import Emulators, EmulatorSettings, run_emulators
from bridge.emulators.server import serve_forever
from tests.unit.emulators.support import Receiver

TENANT = "emulated-tenant"


async def _token(
    client: httpx.AsyncClient, base: str, client_id: str, secret: str
) -> dict[str, str]:
    response = await client.post(
        f"{base}/{TENANT}/oauth2/v2.0/token",
        data={
            "client_id": client_id,
            "client_secret": secret,
            "grant_type": "client_credentials",
            "scope": f"{base}/.default",
        },
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_emulators_bind_free_ports_and_serve_both_apis() -> None:
    async with (
        Emulators(EmulatorSettings(), sales_port=0, fno_port=0) as emulators,
        httpx.AsyncClient() as client,
    ):
        assert emulators.sales_url.startswith("http://127.0.0.1:")
        assert emulators.fno_url != emulators.sales_url
        sales = await _token(client, emulators.sales_url, "p2c-user", "p2c-user-secret")
        fno = await _token(client, emulators.fno_url, "bridge-local", "bridge-local-secret")
        created = await client.post(
            f"{emulators.sales_url}/api/data/v9.2/accounts", json={"name": "Contoso"}, headers=sales
        )
        assert created.status_code == 204
        assert created.headers["OData-EntityId"].startswith(
            f"{emulators.sales_url}/api/data/v9.2/accounts("
        )
        customer = await client.post(
            f"{emulators.fno_url}/data/CustomersV3",
            json={"CustomerAccount": "C", "CustomerGroupId": "10"},
            headers=fno,
        )
        assert customer.status_code == 201
        stats = (await client.get(f"{emulators.sales_url}/_emulator/stats")).json()
        assert stats["entities"]["account"]["totals"]["creates"] == 1
        assert stats["entities"]["account"]["totals"]["by_principal"] == {
            "p2c-user": {"creates": 1, "updates": 0, "deletes": 0}
        }
        assert emulators.fno.store.stats()["totals"]["by_principal"]["bridge-local"]["creates"] == 1


async def test_webhook_round_trip_over_real_sockets() -> None:
    async with (
        Emulators(EmulatorSettings(), sales_port=0, fno_port=0) as emulators,
        httpx.AsyncClient() as client,
    ):
        headers = await _token(client, emulators.sales_url, "bridge-local", "bridge-local-secret")
        base = f"{emulators.sales_url}/api/data/v9.2"
        endpoint = await client.post(
            f"{base}/serviceendpoints",
            json={
                "name": "n",
                "contract": 8,
                "url": f"{emulators.fno_url}/nowhere",
                "authtype": 4,
                "authvalue": "k",
            },
            headers={**headers, "Prefer": "return=representation"},
        )
        messages = (
            await client.get(
                f"{base}/sdkmessages", params={"$filter": "name eq 'Create'"}, headers=headers
            )
        ).json()
        step = await client.post(
            f"{base}/sdkmessageprocessingsteps",
            json={
                "name": "s",
                "mode": 1,
                "stage": 40,
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint.json()['serviceendpointid']})",
                "sdkmessageid@odata.bind": f"/sdkmessages({messages['value'][0]['sdkmessageid']})",
            },
            headers=headers,
        )
        assert step.status_code == 204
        await client.post(f"{base}/accounts", json={"name": "A"}, headers=headers)
        async with asyncio.timeout(5):
            await emulators.wait_for_deliveries()
        [entry] = emulators.sales.deliveries.entries()
        assert entry["status"] == 404
        assert entry["outcome"] == "failed"


async def test_reset_resets_both() -> None:
    async with Emulators(EmulatorSettings(), sales_port=0, fno_port=0) as emulators:
        emulators.fno.tables.create(
            emulators.fno.registry.require("CustomersV3"),
            {"CustomerAccount": "C", "CustomerGroupId": "10"},
            "system",
            "usmf",
        )
        emulators.reset()
        assert emulators.fno.store.records("CustomersV3") == []


async def test_serve_forever_stops_when_cancelled() -> None:
    emulators = Emulators(EmulatorSettings(), sales_port=0, fno_port=0)
    task = asyncio.create_task(serve_forever(emulators))
    async with asyncio.timeout(5):
        await emulators.ready.wait()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{emulators.fno_url}/_emulator/health")).status_code == 200
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"{emulators.fno_url}/_emulator/health")
            raise AssertionError("the emulator is still serving")
        except httpx.ConnectError:
            pass


async def test_run_emulators_can_be_cancelled() -> None:
    task = asyncio.create_task(run_emulators(EmulatorSettings(), "127.0.0.1", 0, 0))
    await asyncio.sleep(0.2)
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)


async def test_f_and_o_changes_reach_dataverse_as_virtual_rows_and_data_events(
    receiver: Receiver,
) -> None:
    async with (
        Emulators(EmulatorSettings(), sales_port=0, fno_port=0) as emulators,
        httpx.AsyncClient() as client,
    ):
        sales = await _token(client, emulators.sales_url, "bridge-local", "bridge-local-secret")
        fno = await _token(client, emulators.fno_url, "bridge-local", "bridge-local-secret")
        base = f"{emulators.sales_url}/api/data/v9.2"
        endpoint = await client.post(
            f"{base}/serviceendpoints",
            json={"name": "n", "contract": 8, "url": receiver.url, "authtype": 4, "authvalue": "k"},
            headers={**sales, "Prefer": "return=representation"},
        )
        message = (
            await client.get(
                f"{base}/sdkmessages",
                params={"$filter": "name eq 'OnExternalCreated'"},
                headers=sales,
            )
        ).json()["value"][0]["sdkmessageid"]
        step = await client.post(
            f"{base}/sdkmessageprocessingsteps",
            json={
                "name": "s",
                "mode": 1,
                "stage": 40,
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint.json()['serviceendpointid']})",
                "sdkmessageid@odata.bind": f"/sdkmessages({message})",
            },
            headers=sales,
        )
        assert step.status_code == 204
        created = await client.post(
            f"{emulators.fno_url}/data/CDSReleasedDistinctProducts",
            json={"ProductNumber": "P1", "ProductName": "Widget"},
            headers=fno,
        )
        assert created.status_code == 201
        [request] = await receiver.wait_for(1)
        assert request.body["PrimaryEntityName"] == "mserp_ecoresreleaseddistinctproductcdsentity"
        bridge = emulators.sales.directory.get("bridge-local")
        assert bridge is not None
        assert request.body["InitiatingUserId"] == bridge.systemuser_id
        rows = await client.get(
            f"{base}/mserp_ecoresreleaseddistinctproductcdsentities",
            params={"$select": "mserp_productname"},
            headers=sales,
        )
        [row] = rows.json()["value"]
        assert row["mserp_productname"] == "Widget"
        assert (
            row["mserp_ecoresreleaseddistinctproductcdsentityid"] == request.body["PrimaryEntityId"]
        )
