"""Topic creation. Change topics are partitioned by record; state and versions are compacted.

A flow's change, retry and versions topics must have the same number of partitions (the
engine owns partition *n* of all three together); a mismatch is refused at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from bridge.config import KafkaSettings
from bridge.contract.catalog import SOURCE_ENTITIES
from bridge.contract.topics import leader_topic, state_topic
from bridge.engine.flow import Flow
from bridge.errors import ConfigError
from bridge.kafka.clients import connection_options, security_failure, start_or_close

log = structlog.get_logger(__name__)

_LEADER_WAIT_SECONDS = 30.0


def change_topics(settings: KafkaSettings) -> list[str]:
    """Every change-event topic of the catalog."""
    return [entity.topic(settings.topic_prefix) for entity in SOURCE_ENTITIES]


def _compacted(name: str, partitions: int, settings: KafkaSettings) -> NewTopic:
    return NewTopic(
        name,
        partitions,
        settings.replication_factor,
        topic_configs={"cleanup.policy": "compact", "segment.ms": "600000"},
    )


async def ensure_topics(settings: KafkaSettings, flows: Iterable[Flow] = ()) -> None:
    """Create the change, retry, dead-letter, versions and state topics that do not exist
    yet; raise :class:`ConfigError` if partition counts that must agree do not."""
    flows = list(flows)
    partitioned = [
        *change_topics(settings),
        *(f.dead_letter_topic for f in flows),
        *(f.retry_topic for f in flows),
    ]
    wanted = [
        NewTopic(name, settings.partitions, settings.replication_factor) for name in partitioned
    ]
    wanted += [_compacted(f.versions_topic, settings.partitions, settings) for f in flows]
    wanted.append(_compacted(state_topic(settings.topic_prefix), 1, settings))
    wanted.append(NewTopic(leader_topic(settings.topic_prefix), 1, settings.replication_factor))
    admin = AIOKafkaAdminClient(
        **connection_options(settings), client_id=f"{settings.client_id}-admin"
    )
    await _start_admin(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            # another process may create them between our list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
            await _wait_for_leaders(admin, [t.name for t in missing])
        await _check_copartitioned(admin, flows)
    finally:
        await admin.close()


async def _start_admin(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> None:
    """Start the admin client; refused TLS or SASL credentials are a :class:`ConfigError`
    naming the cause (this is the first connection of every command)."""
    try:
        await start_or_close(admin.start, admin.close)
    except KafkaConnectionError:
        reason = await security_failure(settings)
        if reason is None:
            raise
        raise ConfigError(
            f"Kafka at {settings.bootstrap_servers} refused the bridge: {reason}"
        ) from None


async def _check_copartitioned(admin: AIOKafkaAdminClient, flows: list[Flow]) -> None:
    """Refuse a flow whose retry or versions topic is partitioned unlike its change topic."""
    names = sorted({t for f in flows for t in (*f.consumed_topics, f.versions_topic)})
    counts = await _partition_counts(admin, names)
    for flow in flows:
        found = {t: counts.get(t) for t in (*flow.consumed_topics, flow.versions_topic)}
        if len(set(found.values())) > 1:
            raise ConfigError(
                f"flow {flow.name}: its topics must have equal partition counts, found {found}"
            )


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once every partition of the new topics has a leader. A client that subscribes
    to a topic before then may get no metadata for it, and aiokafka asks again only after
    ``metadata_max_age_ms`` (five minutes by default): the flow would sit idle that long."""
    deadline = asyncio.get_running_loop().time() + _LEADER_WAIT_SECONDS
    while True:
        described = await admin.describe_topics(names)
        ready = {
            d["topic"]
            for d in described
            if not d.get("error_code")
            and d.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in d["partitions"])
        }
        if ready >= set(names) or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    described = await admin.describe_topics(names)
    return {d["topic"]: len(d.get("partitions") or ()) for d in described}
