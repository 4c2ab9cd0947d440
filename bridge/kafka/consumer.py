"""The consume → apply → commit loop of one flow.

Delivery contract: an offset is committed only after every event before it in its
partition was applied by the target, skipped on purpose, or dead-lettered, and after the
versions applied were stored. A crash anywhere therefore re-delivers, never loses; the
idempotent processor makes re-delivery harmless.

Events of one record (one Kafka key) are applied in order; different records in a batch
are applied concurrently. When the target stays unavailable or refuses the bridge's
credentials, the partition is rewound to its first unapplied event and paused for a while,
so its offsets never move past an unapplied change; it resumes by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bridge.config import FlowSettings, KafkaSettings
from bridge.contract.catalog import source_entity
from bridge.contract.codec import EventCodec
from bridge.errors import (
    BridgeError,
    ConflictLost,
    DependencyMissing,
    EventRejected,
    FlowBlocked,
    TransientError,
    UndecodableMessage,
)
from bridge.flows.processor import FlowProcessor, snapshot_event
from bridge.kafka.dead_letters import DeadLetters
from bridge.kafka.retries import RetryScheduler, attempts_of, seconds_until_due
from bridge.kafka.state import StateStore

log = structlog.get_logger(__name__)

FORCE_HEADER = "bridge.force"
"""Header of an operator's corrective event (``bridge dlq replay``, ``reconcile --repair``):
with value ``1`` the event is applied even if its version was applied already."""


def is_forced(headers: Any) -> bool:
    """Whether a record carries ``bridge.force=1``."""
    return any(name == FORCE_HEADER and value == b"1" for name, value in (headers or ()))


class _Blocked(Exception):
    """A record could not be applied now; its partition must pause (for ``delay`` seconds
    when the record itself says how long, e.g. a retry that is not due yet)."""

    def __init__(self, offset: int, cause: BaseException, delay: float | None = None) -> None:
        super().__init__(str(cause))
        self.offset = offset
        self.cause = cause
        self.delay = delay


class FlowConsumer:
    """Runs one flow until cancelled."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        flows: FlowSettings,
        topic: str,
        processor: FlowProcessor,
        codec: EventCodec,
        dead_letters: DeadLetters,
        state: StateStore,
        retries: RetryScheduler,
    ) -> None:
        self._kafka = kafka
        self._flows = flows
        self._topic = topic
        self._processor = processor
        self._codec = codec
        self._dead_letters = dead_letters
        self._state = state
        self._retries = retries
        self._name = processor.template.name
        self._resume_at: dict[TopicPartition, float] = {}
        self._consumer = AIOKafkaConsumer(
            topic,
            retries.topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"{flows.consumer_group_prefix}.{self._name}",
            client_id=f"{kafka.client_id}-{self._name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=kafka.max_batch_records,
        )

    async def run(self) -> None:
        """Consume, apply and commit until the task is cancelled."""
        await self._consumer.start()
        log.info("flow_started", flow=self._name, topic=self._topic)
        try:
            while True:
                self._resume_due()
                batch = await self._consumer.getmany(
                    timeout_ms=200, max_records=self._kafka.max_batch_records
                )
                if batch:
                    await self._apply_batch(batch)
        finally:
            await self._consumer.stop()
            log.info("flow_stopped", flow=self._name)

    async def _apply_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        results = await asyncio.gather(
            *(self._apply_partition(tp, records) for tp, records in batch.items())
        )
        versions: dict[str, Any] = {}
        offsets: dict[TopicPartition, int] = {}
        for tp, (next_offset, partition_versions, blocked) in zip(batch, results, strict=True):
            versions.update(partition_versions)
            if next_offset is not None:
                offsets[tp] = next_offset
            if blocked is not None:
                self._pause(tp, blocked)
        if versions:
            await self._state.put_many(versions)
        if offsets:
            await self._consumer.commit(offsets)

    async def _apply_partition(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord]
    ) -> tuple[int | None, dict[str, Any], _Blocked | None]:
        by_key: dict[bytes | None, list[ConsumerRecord]] = defaultdict(list)
        for record in records:
            by_key[record.key].append(record)
        limit = asyncio.Semaphore(self._flows.apply_concurrency)
        versions: dict[str, Any] = {}

        async def apply_key(key_records: list[ConsumerRecord]) -> _Blocked | None:
            async with limit:
                for record in key_records:
                    try:
                        versions.update(await self._apply_record(record))
                    except _Blocked as blocked:
                        return blocked
            return None

        outcomes = await asyncio.gather(*(apply_key(rs) for rs in by_key.values()))
        blocked = min((b for b in outcomes if b), key=lambda b: b.offset, default=None)
        if blocked is None:
            return records[-1].offset + 1, versions, None
        if blocked.offset > records[0].offset:
            return blocked.offset, versions, blocked
        return None, versions, blocked

    async def _apply_record(self, record: ConsumerRecord) -> dict[str, Any]:
        wait = seconds_until_due(record)
        if wait > 0:
            raise _Blocked(record.offset, TransientError("retry not due yet"), delay=wait)
        try:
            event = self._codec.decode(record.value or b"")
        except UndecodableMessage as exc:
            await self._dead_letters.send(record, exc, stage="decode", attempts=1)
            return {}
        try:
            processed = await self._processor.process(event, reapply=is_forced(record.headers))
        except DependencyMissing as exc:
            await self._wait_for_prerequisite(record, exc)
            return {}
        except ConflictLost as exc:
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=1)
            await self._send_winner_back(exc)
            return {}
        except EventRejected as exc:
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=1)
            return {}
        except (TransientError, FlowBlocked) as exc:
            raise _Blocked(record.offset, exc) from exc
        except BridgeError as exc:
            await self._dead_letters.send(record, exc, stage="apply", attempts=1)
            return {}
        return dict(processed.versions)

    async def _send_winner_back(self, exc: ConflictLost) -> None:
        """Publish the winning target record as a forced snapshot of its own source entity,
        so the flow in the other direction writes it over the losing edit."""
        resync = self._processor.template.conflict_resync
        if resync is None or not exc.winner:
            return
        entity = source_entity(resync.system, resync.entity)
        event = snapshot_event(entity, exc.winner)
        payload = self._codec.encode(event, entity)
        headers = [(FORCE_HEADER, b"1"), ("bridge.resync.of", self._name.encode())]
        await self._dead_letters.send_raw(
            entity.topic(self._kafka.topic_prefix), payload, event.key, headers
        )
        log.info(
            "conflict_winner_resent",
            flow=self._name,
            record=event.source.record_id,
            topic=entity.topic(self._kafka.topic_prefix),
        )

    async def _wait_for_prerequisite(self, record: ConsumerRecord, exc: DependencyMissing) -> None:
        if self._retries.exhausted(record):
            attempts = attempts_of(record) + 1
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=attempts)
            return
        wait = await self._retries.schedule(record, str(exc))
        log.info(
            "waiting_for_prerequisite",
            flow=self._name,
            reason=str(exc),
            attempt=attempts_of(record) + 1,
            retry_in_seconds=wait,
        )

    def _pause(self, tp: TopicPartition, blocked: _Blocked) -> None:
        delay = self._flows.blocked_retry_seconds
        if blocked.delay is not None:
            delay = blocked.delay
        elif isinstance(blocked.cause, TransientError) and blocked.cause.retry_after:
            delay = max(delay, blocked.cause.retry_after)
        self._consumer.seek(tp, blocked.offset)
        self._consumer.pause(tp)
        self._resume_at[tp] = time.monotonic() + delay
        log.warning(
            "flow_paused",
            flow=self._name,
            partition=tp.partition,
            offset=blocked.offset,
            error=str(blocked.cause),
            resume_in_seconds=delay,
        )

    def _resume_due(self) -> None:
        now = time.monotonic()
        due = [tp for tp, at in self._resume_at.items() if at <= now]
        for tp in due:
            del self._resume_at[tp]
            if tp in self._consumer.assignment():
                self._consumer.resume(tp)
                log.info("flow_resumed", flow=self._name, partition=tp.partition)
