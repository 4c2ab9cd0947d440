"""Publishing change events: Avro single-object values, keyed by the record's identity.

:meth:`EventPublisher.publish` returns only after the broker acknowledged every event
(``acks=all``, idempotent producer), so a caller that answers its sender afterwards never
acknowledges a change that Kafka does not have.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bridge.config import KafkaSettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import ChangeEvent, Operation, now_millis
from bridge.errors import BridgeError, PublishFailed

log = structlog.get_logger(__name__)

_DELETED = -1


class PublishedVersions:
    """Remembers the newest version published per record, to publish each version once.

    Bounded (least recently used records are forgotten); a forgotten record may be published
    again, which consumers tolerate because their apply is idempotent.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._versions: OrderedDict[tuple[str, bytes], int] = OrderedDict()

    @staticmethod
    def _version(event: ChangeEvent) -> int | None:
        if event.operation is Operation.DELETE:
            return _DELETED
        return event.source.record_version

    def is_new(self, topic: str, event: ChangeEvent) -> bool:
        """Whether ``event`` is newer than anything published for its record."""
        version = self._version(event)
        seen = self._versions.get((topic, event.key))
        if version is None or seen is None:
            return True
        if seen == _DELETED:
            return False
        return version == _DELETED or version > seen

    def claim(self, topic: str, event: ChangeEvent) -> tuple[bool, int | None]:
        """Mark ``event`` published if it is new; return ``(is_new, previous)`` so a failed
        publish can :meth:`release` the claim. Check and mark happen without awaiting, so
        concurrent duplicates cannot both pass."""
        key = (topic, event.key)
        previous = self._versions.get(key)
        if not self.is_new(topic, event):
            return False, previous
        self.remember(topic, event)
        return True, previous

    def release(self, topic: str, event: ChangeEvent, previous: int | None) -> None:
        """Undo a claim whose publish failed."""
        key = (topic, event.key)
        if previous is None:
            self._versions.pop(key, None)
        else:
            self._versions[key] = previous

    def remember(self, topic: str, event: ChangeEvent) -> None:
        """Record that ``event`` was published."""
        version = self._version(event)
        if version is None:
            return
        key = (topic, event.key)
        self._versions[key] = version
        self._versions.move_to_end(key)
        while len(self._versions) > self._capacity:
            self._versions.popitem(last=False)


class Publisher(Protocol):
    """The publishing seam sources depend on (an in-memory fake in unit tests)."""

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        """Publish and wait for acknowledgement; return how many events were new."""
        ...


class EventPublisher:
    """Async context manager owning one idempotent Kafka producer."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec) -> None:
        self._settings = settings
        self._codec = codec
        self._versions = PublishedVersions()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-publisher",
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
            request_timeout_ms=settings.request_timeout_ms,
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        """Publish events not published before; return how many were sent.

        Raises :class:`PublishFailed` if the broker does not acknowledge all of them; the
        caller must then not acknowledge its own input (the sender retries, the poller
        keeps its token).
        """
        prefix = self._settings.topic_prefix
        claimed = []
        for entity, event in items:
            topic = entity.topic(prefix)
            is_new, previous = self._versions.claim(topic, event)
            if is_new:
                claimed.append((entity, topic, event, previous))
        now = now_millis()
        try:
            futures = [
                await self._producer.send(
                    topic, self._codec.encode(event.stamped(now), entity), key=event.key
                )
                for entity, topic, event, _ in claimed
            ]
            await asyncio.gather(*futures)
        except (KafkaError, BridgeError) as exc:
            for _, topic, event, previous in claimed:
                self._versions.release(topic, event, previous)
            if isinstance(exc, BridgeError):
                raise
            raise PublishFailed(f"Kafka did not acknowledge: {exc.__class__.__name__}") from exc
        if claimed:
            log.debug("events_published", count=len(claimed))
        return len(claimed)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        """Publish pre-encoded bytes (dead letters, retry copies, cascades, replays) and wait
        for the acknowledgement; without ``partition`` the key chooses it, as for events."""
        try:
            await self._producer.send_and_wait(
                topic, value, key=key, headers=list(headers), partition=partition
            )
        except KafkaError as exc:
            raise PublishFailed(f"Kafka did not acknowledge: {exc.__class__.__name__}") from exc
