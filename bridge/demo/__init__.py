"""``make demo``: the local stack end to end, shown live in the terminal.

Starts both emulators (real HTTP on loopback) and the bridge in this process, registers the
webhooks, then acts as a Sales user creating and editing accounts while it watches F&O
(through its API) for each change and shows how long each took. Ctrl-C stops everything.
Bridge logs go to ``.local/demo.log`` so they do not disturb the live view.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live

from bridge.app import start_bridge
from bridge.config import LogSettings, Settings
from bridge.demo.activity import AccountActivity, Change
from bridge.demo.actors import OrderProcessor, Salesperson
from bridge.demo.story import tell
from bridge.demo.view import render, summary
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.server import Emulators
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.logs import configure_logging
from bridge.setup import run_setup

LOG_FILE = Path(".local/demo.log")


def user_clients(
    settings: Settings, policy: RetryPolicy, emulator: EmulatorSettings | None = None
) -> tuple[ApiClient, ApiClient]:
    """API clients (Sales, F&O) acting as the emulators' human user (not the bridge's
    identity)."""
    emulator = emulator or EmulatorSettings()
    user = {"client_id": emulator.user_client_id, "client_secret": emulator.user_client_secret}
    return (
        ApiClient(settings.sales.model_copy(update=user), settings.sales.api_path, policy),
        ApiClient(settings.fno.model_copy(update=user), settings.fno.api_path, policy),
    )


async def watch(changes: list[Change]) -> None:
    """Mark each change seen once its check passes."""
    while True:
        for change in [c for c in changes if c.seen_at is None]:
            if await change.check():
                change.seen_at = time.monotonic()
        await asyncio.sleep(0.05)


async def generate(
    sales: Salesperson, fno: OrderProcessor, accounts: int, changes: list[Change]
) -> None:
    """Tell the prospect-to-cash story, then create and edit accounts, a few per second."""
    await tell(sales, fno, changes)
    activity = AccountActivity(sales, fno)
    for index in range(accounts):
        changes.append(await activity.create_account(index))
        await asyncio.sleep(0.3)
        if index % 2:
            update = await activity.update_random_account()
            if update:
                changes.append(update)
            await asyncio.sleep(0.3)


async def run_demo(
    settings: Settings, *, accounts: int, seconds: float, log_stream: TextIO
) -> None:
    """Run the demo until Ctrl-C (or ``seconds`` when positive); bridge logs go to ``log_stream``."""
    console = Console()
    settings = _fresh_namespace(settings)
    configure_logging(LogSettings(format="json"), stream=log_stream)
    console.print(f"[bold]Prospect-to-cash bridge demo[/] — logs in {LOG_FILE}")
    policy = RetryPolicy.from_settings(settings.retry)
    sales_url, fno_url = settings.sales.base_url, settings.fno.base_url
    async with Emulators(
        EmulatorSettings(),
        host="127.0.0.1",
        sales_port=_port(sales_url),
        fno_port=_port(fno_url),
    ):
        console.print(
            f"emulators: Sales {sales_url}, F&O {fno_url}; Kafka {settings.kafka.bootstrap_servers}"
        )
        await run_setup(settings)
        bridge = await start_bridge(settings)
        if settings.admin.enabled:
            admin = settings.admin
            console.print(
                f"status page: [link]http://{admin.host}:{admin.port}/[/link] "
                "(pause a flow there, or run `bridge status` in another terminal)"
            )
        changes: list[Change] = []
        sales, fno = user_clients(settings, policy)
        async with sales, fno:
            people = Salesperson(sales), OrderProcessor(fno, settings.fno.default_company)
            tasks = [
                asyncio.create_task(watch(changes)),
                asyncio.create_task(generate(*people, accounts, changes)),
            ]
            try:
                await _show(console, changes, seconds)
            finally:
                for task in [*tasks, bridge]:
                    task.cancel()
                for task in [*tasks, bridge]:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        console.print(summary(changes))


async def _show(console: Console, changes: list[Change], seconds: float) -> None:
    deadline = time.monotonic() + seconds if seconds > 0 else None
    title = "Prospect to cash: Sales ⇄ Kafka ⇄ Finance and Operations (Ctrl-C to stop)"
    with Live(render(changes, title), console=console, refresh_per_second=8) as live:
        while deadline is None or time.monotonic() < deadline:
            live.update(render(changes, title))
            await asyncio.sleep(0.125)


def _fresh_namespace(settings: Settings) -> Settings:
    """Give this run its own topics and consumer groups: the emulators start empty every
    time, so state (delta links, versions) from an earlier run must not be reused."""
    run = f"demo{int(time.time())}"
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": run}),
            "flows": settings.flows.model_copy(update={"consumer_group_prefix": run}),
        }
    )


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])
