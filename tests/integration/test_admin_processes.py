"""The admin API across processes: a pause asked of one ``bridge run`` holds in every apply
process of the deployment (it travels through the state topic), and a resume asked of
another releases it. Two child processes share the accounts flow's partitions; what F&O
receives is read through its API."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx

from bridge.config import AdminSettings, Settings
from bridge.setup import run_setup
from tests.integration.conftest import Stack, eventually, free_port
from tests.integration.test_accounts_flow import create_account, customer
from tests.support.bridge_process import BridgeProcess


def admin_url(settings: Settings, path: str) -> str:
    return f"http://127.0.0.1:{settings.admin.port}{path}"


async def flow_state(settings: Settings, flow: str) -> str | None:
    try:
        async with httpx.AsyncClient() as client:
            body: dict[str, Any] = (await client.get(admin_url(settings, "/api/status"))).json()
    except httpx.HTTPError:
        return None
    return next((str(f["state"]) for f in body["flows"] if f["name"] == flow), None)


async def post(settings: Settings, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.post(admin_url(settings, path))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def test_a_pause_holds_in_every_apply_process(stack: Stack, tmp_path: Path) -> None:
    base = stack.with_settings(
        flows=stack.settings.flows.model_copy(update={"enabled": ["accounts"]})
    )
    ingest = base.model_copy(update={"admin": AdminSettings(port=free_port())})
    apply = base.model_copy(update={"admin": AdminSettings(port=free_port())})
    await run_setup(ingest)
    first = BridgeProcess(ingest, tmp_path / "all.log", role="all")
    second = BridgeProcess(apply, tmp_path / "apply.log", role="apply")
    try:
        first.start()
        second.start()
        await first.ready()
        for settings in (ingest, apply):
            await eventually(
                lambda s=settings: _is(flow_state(s, "accounts"), "running"), timeout=60
            )
        warm = await create_account(stack, name="Before the pause")
        await eventually(lambda: customer(stack, warm["accountnumber"]), timeout=60)

        answer = await post(ingest, "/api/flows/accounts/pause")
        assert answer["state"] == "paused"
        # the other process learns it from the state topic
        await eventually(lambda: _is(flow_state(apply, "accounts"), "paused"), timeout=10)
        made = [await create_account(stack, name=f"Paused {n}") for n in range(6)]
        await asyncio.sleep(4)  # eight poll intervals; both engines keep polling
        for account in made:
            assert await customer(stack, account["accountnumber"]) is None

        await post(apply, "/api/flows/accounts/resume")
        await eventually(lambda: _is(flow_state(ingest, "accounts"), "running"), timeout=10)
        for account in made:
            await eventually(lambda a=account: customer(stack, a["accountnumber"]), timeout=60)
    except BaseException:
        print(first.log_tail(40), second.log_tail(40), sep="\n----\n")
        raise
    finally:
        first.stop()
        second.stop()


async def _is(state: Any, wanted: str) -> bool:
    return bool(await state == wanted)


async def test_an_admin_port_already_taken_stops_the_start_cleanly(
    stack: Stack, tmp_path: Path
) -> None:
    """``bridge run`` whose admin port is taken exits with one line naming the port, and
    leaves no Kafka client half-started behind it (aiokafka would report it unclosed)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = stack.settings.model_copy(update={"admin": AdminSettings(port=port)})
        process = BridgeProcess(settings, tmp_path / "taken.log")
        process.start()
        assert process.process is not None
        try:
            returncode = await asyncio.to_thread(process.process.wait, 60)
        finally:
            process.stop()
    output = (tmp_path / "taken.log").read_text()
    assert returncode != 0, output
    assert f"admin server cannot listen on 127.0.0.1:{port}" in output
    assert "Unclosed" not in output and "Traceback" not in output, output
