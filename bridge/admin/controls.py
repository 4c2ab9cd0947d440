"""Pausing and resuming flows, for every process of a deployment at once.

A pause is stored in the state topic under ``pause|<flow>`` (value ``{"paused": true, "at":
ISO time}``; a resume deletes the key). Every ``bridge run`` follows that topic
(:class:`bridge.kafka.state_follower.StateFollower`) and pauses or resumes its own engine
of the flow, so a pause set on any process's status page holds in every apply process, in
processes started later, and across restarts. The process that receives the request also
pauses its engine at once, before it answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from bridge import metrics
from bridge.admin.monitor import FlowMonitor
from bridge.engine.runner import FlowEngine

log = structlog.get_logger(__name__)

PAUSE_PREFIX = "pause|"
Store = Callable[[str, Any], Awaitable[None]]


def pause_key(flow: str) -> str:
    """The state-topic key of a flow's pause."""
    return f"{PAUSE_PREFIX}{flow}"


class FlowControls:
    """The engines of this process by flow, and which flows are paused."""

    def __init__(self, monitors: dict[str, FlowMonitor]) -> None:
        self.monitors = monitors
        self._engines: dict[str, FlowEngine] = {}
        self._paused: set[str] = set()
        self._store: Store | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def connect(self, store: Store) -> None:
        """Where pauses are published (the state follower's ``put``)."""
        self._store = store

    def is_paused(self, flow: str) -> bool:
        """Whether ``flow`` is paused."""
        return flow in self._paused

    async def attach(self, engine: FlowEngine) -> None:
        """Register a starting engine; it starts paused if its flow is."""
        self._engines[engine.flow.name] = engine
        self._mark(engine.flow.name, running=True)
        if engine.flow.name in self._paused:
            await engine.pause()

    def detach(self, engine: FlowEngine) -> None:
        """Forget a stopped engine."""
        if self._engines.get(engine.flow.name) is engine:
            del self._engines[engine.flow.name]
            self._mark(engine.flow.name, running=False)

    async def set_paused(self, flow: str, paused: bool) -> None:
        """Pause or resume ``flow`` here now, and publish it for every other process.

        Returns once this process's engine applies nothing more (pause) and the state
        topic acknowledged the change.
        """
        await self.apply(flow, paused)
        if self._store is not None:
            value = {"paused": True, "at": datetime.now(UTC).isoformat()} if paused else None
            await self._store(pause_key(flow), value)

    def follow(self, key: str, value: Any) -> None:
        """A state-topic change (from the follower): apply pauses written by anyone."""
        if not key.startswith(PAUSE_PREFIX):
            return
        flow = key.removeprefix(PAUSE_PREFIX)
        paused = isinstance(value, dict) and bool(value.get("paused"))
        if paused != (flow in self._paused):
            task = asyncio.get_running_loop().create_task(self.apply(flow, paused))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def apply(self, flow: str, paused: bool) -> None:
        """Pause or resume this process's engine of ``flow`` (if it runs one here)."""
        if paused:
            self._paused.add(flow)
        else:
            self._paused.discard(flow)
        monitor = self.monitors.get(flow)
        if monitor is not None:
            monitor.paused = paused
        metrics.FLOW_PAUSED.labels(flow).set(1 if paused else 0)
        engine = self._engines.get(flow)
        if engine is None:
            return
        if paused:
            await engine.pause()
        else:
            engine.resume()
        log.info("flow_pause_applied", flow=flow, paused=paused)

    def _mark(self, flow: str, *, running: bool) -> None:
        monitor = self.monitors.get(flow)
        if monitor is not None:
            monitor.running_here = running
