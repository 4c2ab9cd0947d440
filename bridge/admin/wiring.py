"""The admin side of one ``bridge run`` process, composed as one async context manager."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from bridge.admin.controls import FlowControls
from bridge.admin.health import LagWatcher, TargetProbe
from bridge.admin.jobs import JobRunner
from bridge.admin.monitor import FlowMonitor
from bridge.admin.server import AdminContext, AdminServer
from bridge.config import Settings
from bridge.engine.flow import Flow
from bridge.http.client import ApiClient
from bridge.kafka.state_follower import StateFollower


def flow_controls(flows: Sequence[Flow]) -> FlowControls:
    """One monitor per flow, behind the controls that pause them."""
    return FlowControls({flow.name: FlowMonitor(flow.name) for flow in flows})


class Admin:
    """Follows the state topic (pauses of every process apply here), watches the lag and,
    when enabled, serves the admin API. Enter it before the engines start."""

    def __init__(
        self,
        settings: Settings,
        role: str,
        flows: Sequence[Flow],
        controls: FlowControls,
        clients: Mapping[str, ApiClient],
    ) -> None:
        self._settings = settings
        self._role = role
        self._flows = list(flows)
        self._controls = controls
        self._clients = clients
        self._stack = AsyncExitStack()
        self._lag_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            follower = await stack.enter_async_context(
                StateFollower(self._settings.kafka, self._controls.follow)
            )
            self._controls.connect(follower.put)
            lag = LagWatcher(self._settings, self._flows)
            if self._settings.admin.enabled:
                context = AdminContext(
                    settings=self._settings,
                    role=self._role,
                    flows=[flow.name for flow in self._flows],
                    controls=self._controls,
                    jobs=JobRunner(self._settings),
                    lag=lag,
                    follower=follower,
                    probes={name: TargetProbe(c) for name, c in self._clients.items()},
                )
                await stack.enter_async_context(AdminServer(context))
            # the watcher starts last: a port already taken then fails the start before
            # the watcher opened any Kafka client it would have to abandon half-started
            self._lag_task = asyncio.create_task(lag.run(), name="admin:lag")
            stack.push_async_callback(self._stop_lag)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _stop_lag(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
