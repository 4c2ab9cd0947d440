"""Follows the state topic as it changes: operator pauses, delta links, backfill progress.

:class:`StateFollower` reads the compacted state topic from the start and keeps reading, so
every process learns within a poll what any other process wrote (a pause set on one status
page holds in every apply process). It remembers each key's value and when it was written,
and tells a callback about every change. It writes through :meth:`put`, acknowledged like
:class:`bridge.kafka.state.StateStore` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bridge.config import KafkaSettings
from bridge.contract.topics import state_topic
from bridge.errors import PublishFailed
from bridge.kafka.clients import RenewingProducer, connection_options, start_clients, stop_client

log = structlog.get_logger(__name__)

StateChanged = Callable[[str, Any], None]


class StateFollower:
    """Async context manager: a group-less consumer tailing the state topic, and a producer."""

    def __init__(self, settings: KafkaSettings, on_change: StateChanged) -> None:
        self._topic = state_topic(settings.topic_prefix)
        self._on_change = on_change
        self.values: dict[str, Any] = {}
        self.written_at: dict[str, float] = {}
        self.loaded = asyncio.Event()
        self.last_read: float | None = None
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings),
            client_id=f"{settings.client_id}-state-follower",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,
        )
        self._producer = RenewingProducer(
            partial(
                AIOKafkaProducer,
                **connection_options(settings),
                client_id=f"{settings.client_id}-state-writer",
                acks="all",
                enable_idempotence=True,
            ),
            "state-writer",
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await start_clients(self._consumer, self._producer)
        self._task = asyncio.create_task(self._follow(), name="state-follower")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await stop_client(self._producer)
        finally:
            await stop_client(self._consumer)

    async def put(self, key: str, value: Any) -> None:
        """Store ``value`` durably (``None`` deletes the key); every follower sees it."""
        payload = None if value is None else json.dumps(value, sort_keys=True).encode()
        try:
            await self._producer.send_and_wait(self._topic, payload, key=key.encode())
        except KafkaError as exc:
            raise PublishFailed(f"state write failed: {exc.__class__.__name__}") from exc

    async def _follow(self) -> None:
        tps = [TopicPartition(self._topic, 0)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = (await self._consumer.end_offsets(tps))[tps[0]]
        if end == 0:
            self.loaded.set()
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("state_follow_failed", error=exc.__class__.__name__)
                await asyncio.sleep(1)
                continue
            self.last_read = time.time()
            for records in batch.values():
                for record in records:
                    self._apply(record.key, record.value, record.timestamp / 1000)
            if not self.loaded.is_set() and await self._consumer.position(tps[0]) >= end:
                self.loaded.set()

    def _apply(self, key: bytes | None, value: bytes | None, at: float) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        try:
            decoded = None if value is None else json.loads(value)
        except ValueError:
            return
        if decoded is None:
            self.values.pop(name, None)
        else:
            self.values[name] = decoded
        self.written_at[name] = at
        self._on_change(name, decoded)
