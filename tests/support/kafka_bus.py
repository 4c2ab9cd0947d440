"""The engine world's bus on the real broker: the same scenarios as in memory, with the
Kafka adapter (KafkaRecordStream, KafkaVersionLog) and the bridge's publisher."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bridge.config import KafkaSettings
from bridge.engine.flow import Flow
from bridge.engine.stream import Partition, RebalanceListener, StreamRecord
from bridge.http.retry import RetryPolicy
from bridge.kafka.ops import KafkaGroups, KafkaTopics
from bridge.kafka.publisher import EventPublisher
from bridge.kafka.stream import KafkaRecordStream, KafkaVersionLog
from bridge.kafka.topics import ensure_topics
from tests.support.engine_world import CODEC, World


class KafkaBus:
    """Records on the broker at ``settings.bootstrap_servers``."""

    poll_interval = 0.1

    def __init__(
        self, settings: KafkaSettings, publisher: EventPublisher, group_prefix: str
    ) -> None:
        self.settings = settings
        self.sender = publisher
        self.prefix = settings.topic_prefix
        self.group_prefix = group_prefix

    def stream(self, flow: Flow, listener: RebalanceListener, member: str) -> Any:
        return KafkaRecordStream(self.settings, flow, listener)

    def version_log(self, flow: Flow) -> Any:
        return KafkaVersionLog(self.settings, flow.versions_topic)

    async def records(self, topic: str) -> list[StreamRecord]:
        async with KafkaTopics(self.settings, RetryPolicy()) as topics:
            ends = await topics.end_offsets(topic)
            return [
                StreamRecord(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers))
                async for r in topics.records(topic, {p: (0, end) for p, end in ends.items()})
            ]

    async def committed(self, flow: Flow) -> dict[Partition, int]:
        committed: dict[Partition, int] = {}
        async with KafkaGroups(self.settings, RetryPolicy()) as groups:
            for topic in flow.consumed_topics:
                offsets = await groups.committed(flow.group, topic, [0, 1, 2])
                committed.update({Partition(topic, p): o for p, o in offsets.items()})
        return committed

    async def ends(self, flow: Flow) -> dict[Partition, int]:
        ends: dict[Partition, int] = {}
        async with KafkaTopics(self.settings, RetryPolicy()) as topics:
            for topic in flow.consumed_topics:
                found = await topics.end_offsets(topic)
                ends.update({Partition(topic, p): end for p, end in found.items()})
        return ends


@contextlib.asynccontextmanager
async def kafka_bus(bootstrap: str) -> AsyncIterator[KafkaBus]:
    """A bus on the real broker with its own topic prefix and consumer groups."""
    unique = uuid.uuid4().hex[:8]
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"e{unique}", partitions=3)
    async with EventPublisher(settings, CODEC) as publisher:
        yield KafkaBus(settings, publisher, f"g{unique}")


@contextlib.asynccontextmanager
async def running(world: World) -> AsyncIterator[World]:
    """Create the world's topics; stop every worker at the end."""
    assert isinstance(world.bus, KafkaBus)
    await ensure_topics(world.bus.settings, world.flows)
    try:
        yield world
    finally:
        await world.stop()
