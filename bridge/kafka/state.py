"""Durable key/value state in a compacted Kafka topic (delta links, backfill progress).

On start the whole topic is read into memory; :meth:`StateStore.put` writes through and
returns only after the broker acknowledged, so state survives a crash of the process. The
topic is compacted, so it holds one record per key however long the bridge runs.
"""

from __future__ import annotations

import json
from functools import partial
from types import TracebackType
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bridge.config import KafkaSettings
from bridge.contract.topics import state_topic
from bridge.errors import PublishFailed
from bridge.kafka.clients import RenewingProducer, connection_options, start_client, stop_client

log = structlog.get_logger(__name__)


class StateStore:
    """Async context manager: loads the state topic on enter, writes through on ``put``."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._topic = state_topic(settings.topic_prefix)
        self._values: dict[str, Any] = {}
        self._producer = RenewingProducer(
            partial(
                AIOKafkaProducer,
                **connection_options(settings),
                client_id=f"{settings.client_id}-state",
                acks="all",
                enable_idempotence=True,
            ),
            "state",
        )

    async def __aenter__(self) -> Self:
        try:
            await self._load()
        except BaseException:
            await stop_client(self._producer)  # created, never started: close it all the same
            raise
        await start_client(self._producer)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_client(self._producer)

    def get(self, key: str) -> Any:
        """The stored value, or ``None``."""
        return self._values.get(key)

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        """Every stored key starting with ``prefix``, with its value."""
        return [(k, v) for k, v in self._values.items() if k.startswith(prefix)]

    async def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) durably; ``None`` deletes the key."""
        payload = None if value is None else json.dumps(value, sort_keys=True).encode()
        try:
            await self._producer.send_and_wait(self._topic, payload, key=key.encode())
        except KafkaError as exc:
            raise PublishFailed(f"state write failed: {exc.__class__.__name__}") from exc
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value

    async def put_many(self, values: dict[str, Any]) -> None:
        """Store several values; returns after all are acknowledged."""
        try:
            futures = [
                await self._producer.send(
                    self._topic, json.dumps(v, sort_keys=True).encode(), key=k.encode()
                )
                for k, v in values.items()
            ]
            for future in futures:
                await future
        except KafkaError as exc:
            raise PublishFailed(f"state write failed: {exc.__class__.__name__}") from exc
        self._values.update(values)

    async def _load(self) -> None:
        consumer = AIOKafkaConsumer(
            **connection_options(self._settings),
            client_id=f"{self._settings.client_id}-state-loader",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # the end-offsets request waits on the connection behind the fetch the consumer
            # starts at once; with the default 500 ms long poll every load of a quiet topic
            # took half a second
            fetch_max_wait_ms=10,
        )
        await start_client(consumer)
        try:
            partitions = consumer.partitions_for_topic(self._topic) or {0}
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp: end[tp] for tp in tps if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        self._apply(record.key, record.value)
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        remaining.pop(tp)
        finally:
            await stop_client(consumer)
        log.info("state_loaded", topic=self._topic, keys=len(self._values))

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._values.pop(key.decode(), None)
        else:
            self._values[key.decode()] = json.loads(value)
