"""``bridge status`` reads a running bridge's admin API and prints its flows."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from rich.console import Console

from bridge.admin.server import build_app
from bridge.admin.status_cli import BridgeUnreachable, show_status
from bridge.config import AdminSettings
from tests.unit.admin.test_api import context
from tests.unit.admin.test_monitor import event
from tests.unit.admin.test_wire import free_port


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


async def test_the_table_shows_each_flow_as_the_api_does() -> None:
    ctx, _ = context(token="t0ken")
    monitor = ctx.controls.monitors["accounts"]
    monitor.running_here = True
    monitor.applied(event("A-7", 0))
    monitor.dead_lettered("map", ValueError("no value map entry"))
    await ctx.controls.apply("contacts", paused=True)
    async with TestServer(build_app(ctx)) as server:
        settings = AdminSettings(url=str(server.make_url("")), token=SecretStr("t0ken"))
        console, out = _console()
        await asyncio.to_thread(show_status, settings, as_json=False, console=console)
        lines = [" ".join(line.replace("│", " ").split()) for line in out.getvalue().splitlines()]
        rows = {line.split()[0]: line for line in lines if line}
        assert "running" in rows["accounts"] and "CREATE A-7" in rows["accounts"]
        assert "1 1 x map/ValueError" in rows["accounts"]
        assert "paused" in rows["contacts"]
        console, out = _console()
        await asyncio.to_thread(show_status, settings, as_json=True, console=console)
        document = json.loads(out.getvalue())
        assert [f["name"] for f in document["flows"]] == ["accounts", "contacts"]
        wrong = AdminSettings(url=settings.url, token=SecretStr("guess"))
        with pytest.raises(BridgeUnreachable, match="refused the token"):
            await asyncio.to_thread(show_status, wrong, as_json=False)


def test_a_bridge_that_does_not_answer_is_a_clear_error() -> None:
    with pytest.raises(BridgeUnreachable, match=r"no bridge answers at http://127\.0\.0\.1:"):
        show_status(AdminSettings(port=free_port()), as_json=False)
