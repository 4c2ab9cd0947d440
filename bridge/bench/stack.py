"""One scenario's local stack: the emulators in a process of their own, the bridge's roles in
theirs, all sharing a fresh topic prefix so scenarios never see each other's events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bridge.bench.processes import BenchError, ProcessSet, Started, free_port, wait_http
from bridge.config import (
    FlowSettings,
    FnoSettings,
    LogSettings,
    PollerSettings,
    SalesSettings,
    Settings,
    WebhookSettings,
)
from bridge.emulators.common.settings import EmulatorSettings
from bridge.engine.flow import Flow, resolve_flow
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy

FLOW = "accounts"


@dataclass
class Stack:
    """The settings every process of one scenario shares, and its processes."""

    name: str
    settings: Settings
    processes: ProcessSet
    wait_seconds: float

    @property
    def flow(self) -> Flow:
        """The benchmarked flow (accounts: Sales accounts → F&O customers)."""
        return resolve_flow(self.settings, FLOW)

    def bridge_env(self) -> dict[str, str]:
        """The ``BRIDGE_*`` variables that make a ``bridge`` process use this stack."""
        s = self.settings
        return {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "BRIDGE_KAFKA__TOPIC_PREFIX": s.kafka.topic_prefix,
            "BRIDGE_SALES__BASE_URL": s.sales.base_url,
            "BRIDGE_FNO__BASE_URL": s.fno.base_url,
            "BRIDGE_WEBHOOK__PORT": str(s.webhook.port),
            "BRIDGE_WEBHOOK__KEY": s.webhook.key.get_secret_value(),
            "BRIDGE_FLOWS__ENABLED": json.dumps(s.flows.enabled),
            "BRIDGE_FLOWS__CONSUMER_GROUP_PREFIX": s.flows.consumer_group_prefix,
            "BRIDGE_POLLER__ENABLED": "false",
            "BRIDGE_LOG__LEVEL": "WARNING",
            "BRIDGE_LOG__FORMAT": "json",
        }

    async def start_role(self, role: str) -> Started:
        """Start ``bridge run --role <role>`` and wait until it is ready (the receiver
        answers, or the process has been alive long enough to join its groups). Each
        process serves its admin API (``/metrics``) on a port of its own, so it collides
        neither with another bench process nor with a bridge running on the default port."""
        admin_port = free_port()
        env = {**self.bridge_env(), "BRIDGE_ADMIN__PORT": str(admin_port)}
        started = self.processes.start(role, ["run", "--role", role], env, admin_port)
        if role == "ingest":
            await wait_http(
                f"http://127.0.0.1:{self.settings.webhook.port}/healthz",
                self.wait_seconds,
                self.processes,
            )
        return started

    def user_client(self, system: str) -> ApiClient:
        """An API client acting as the salesperson (not the bridge, so no echo filter)."""
        emulator = EmulatorSettings()
        user = {
            "client_id": emulator.user_client_id,
            "client_secret": emulator.user_client_secret,
        }
        api = self.settings.sales if system == "sales" else self.settings.fno
        return ApiClient(api.model_copy(update=user), api.api_path, RetryPolicy())

    def bridge_client(self, system: str) -> ApiClient:
        """An API client with the bridge's own identity."""
        api = self.settings.sales if system == "sales" else self.settings.fno
        return ApiClient(api, api.api_path, RetryPolicy())


@asynccontextmanager
async def open_stack(
    name: str,
    run_dir: Path,
    wait_seconds: float,
    emulator_env: Mapping[str, str] | None = None,
    profile: frozenset[str] = frozenset(),
) -> AsyncIterator[Stack]:
    """Start the emulators for one scenario; stop every process of it on exit. Processes
    named in ``profile`` run under cProfile."""
    unique = f"bench{uuid.uuid4().hex[:8]}"
    sales_port, fno_port = free_port(), free_port()
    base = Settings()
    settings = Settings(
        kafka=base.kafka.model_copy(update={"topic_prefix": unique}),
        sales=SalesSettings(base_url=f"http://127.0.0.1:{sales_port}"),
        fno=FnoSettings(base_url=f"http://127.0.0.1:{fno_port}"),
        webhook=WebhookSettings(port=free_port(), key=SecretStr(unique)),
        poller=PollerSettings(enabled=False),
        flows=FlowSettings(enabled=[FLOW], consumer_group_prefix=unique),
        log=LogSettings(level="WARNING", format="json"),
    )
    async with AsyncExitStack() as exits:
        processes = await exits.enter_async_context(ProcessSet(run_dir / name, profile=profile))
        processes.start(
            "emulator",
            ["emulate", "--sales-port", str(sales_port), "--fno-port", str(fno_port)],
            {"BRIDGE_LOG__LEVEL": "WARNING", **(emulator_env or {})},
        )
        for url in (settings.sales.base_url, settings.fno.base_url):
            await wait_http(f"{url}/_emulator/health", wait_seconds, processes)
        yield Stack(name, settings, processes, wait_seconds)


def require(condition: bool, message: str) -> None:
    """Fail the scenario with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BenchError(message)
