"""Topic names and creation. Change topics are partitioned by record; state is compacted."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bridge.config import KafkaSettings
from bridge.contract.catalog import SOURCE_ENTITIES

log = structlog.get_logger(__name__)


def state_topic(settings: KafkaSettings) -> str:
    """The compacted topic holding the bridge's durable state (delta tokens, versions)."""
    return f"{settings.topic_prefix}._bridge.state"


def dead_letter_topic(settings: KafkaSettings, flow: str) -> str:
    """The dead-letter topic of one flow."""
    return f"{settings.topic_prefix}.dlq.{flow}"


def change_topics(settings: KafkaSettings) -> list[str]:
    """Every change-event topic of the catalog."""
    return [entity.topic(settings.topic_prefix) for entity in SOURCE_ENTITIES]


async def ensure_topics(settings: KafkaSettings, flows: Iterable[str] = ()) -> None:
    """Create the change, dead-letter and state topics that do not exist yet."""
    flows = list(flows)
    partitioned = [
        *change_topics(settings),
        *(dead_letter_topic(settings, f) for f in flows),
        *(f"{settings.topic_prefix}.retry.{f}" for f in flows),
    ]
    wanted = [
        NewTopic(name, settings.partitions, settings.replication_factor) for name in partitioned
    ]
    wanted.append(
        NewTopic(
            state_topic(settings),
            1,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact", "segment.ms": "600000"},
        )
    )
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.client_id}-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            # another process may create them between our list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()
