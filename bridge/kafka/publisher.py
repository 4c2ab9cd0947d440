"""Publishing change events: Avro single-object values, keyed by the record's identity.

:meth:`EventPublisher.publish` returns only after the broker acknowledged every event
(``acks=all``, idempotent producer), so a caller that answers its sender afterwards never
acknowledges a change that Kafka does not have.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Protocol, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bridge.config import KafkaSettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import Capture, ChangeEvent, Operation, now_millis
from bridge.errors import PublishFailed
from bridge.kafka.clients import RenewingProducer, connection_options, start_client, stop_client
from bridge.metrics import captured, published


@dataclass(frozen=True, slots=True)
class Published:
    """What was last published for one record: the newest version known of it (``None`` when
    none of its events carried one) and whether it is deleted."""

    version: int | None
    deleted: bool = False


def _newer(version: int | None, than: int | None, *, or_equal: bool = False) -> bool:
    """Whether ``version`` is after ``than``; an unknown version on either side counts as
    after, because an event that cannot be proved old must not be lost."""
    if version is None or than is None:
        return True
    return version >= than if or_equal else version > than


def _delete_is_new(version: int | None, seen: Published) -> bool:
    if seen.deleted:
        # Still deleted: a duplicate (webhook and poller both report it), unless its version
        # proves the record lived again after the delete we know (its re-create is late).
        return version is not None and seen.version is not None and version > seen.version
    # A delete carries its pre-image's version (Dataverse) or its own (F&O): equal to the
    # live version is this life's delete, older is a late delete of an earlier life.
    return _newer(version, seen.version, or_equal=True)


class PublishedVersions:
    """Remembers, per record, the newest version published and whether it is deleted, so that
    each version is published once and each delete once.

    After a delete, the record's next life (an F&O product released again, a Dataverse record
    restored with its GUID) is published: any non-delete newer than the last version known
    before or with the delete, or without a version. A change that preceded the delete (a
    late, duplicate webhook) is not.

    Bounded (least recently used records are forgotten); a forgotten record may be published
    again, which consumers tolerate because their apply is idempotent.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._records: OrderedDict[tuple[str, bytes], Published] = OrderedDict()

    def is_new(self, topic: str, event: ChangeEvent) -> bool:
        """Whether ``event`` is newer than anything published for its record."""
        seen = self._records.get((topic, event.key))
        version = event.source.record_version
        if seen is None:
            return True
        if event.operation is Operation.DELETE:
            return _delete_is_new(version, seen)
        return _newer(version, seen.version)

    def claim(self, topic: str, event: ChangeEvent) -> tuple[bool, Published | None]:
        """Mark ``event`` published if it is new; return ``(is_new, previous)`` so a failed
        publish can :meth:`release` the claim. Check and mark happen without awaiting, so
        concurrent duplicates cannot both pass."""
        previous = self._records.get((topic, event.key))
        if not self.is_new(topic, event):
            return False, previous
        self.remember(topic, event)
        return True, previous

    def release(self, topic: str, event: ChangeEvent, previous: Published | None) -> None:
        """Undo a claim whose publish failed."""
        key = (topic, event.key)
        if previous is None:
            self._records.pop(key, None)
        else:
            self._records[key] = previous

    def remember(self, topic: str, event: ChangeEvent) -> None:
        """Record that ``event`` was published."""
        key = (topic, event.key)
        after = _after(self._records.get(key), event)
        if after is None:
            return
        self._records[key] = after
        self._records.move_to_end(key)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)


def _after(seen: Published | None, event: ChangeEvent) -> Published | None:
    """What is known of a record once ``event`` is published (``None``: nothing to keep)."""
    known = seen.version if seen is not None else None
    version = event.source.record_version
    if version is not None and (known is None or version > known):
        known = version
    if event.operation is Operation.DELETE:
        return Published(known, deleted=True)
    if seen is None and known is None:
        return None  # nothing to compare later events with: keep the room for others
    return Published(known)


class Publisher(Protocol):
    """The publishing seam sources depend on (an in-memory fake in unit tests)."""

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        """Publish and wait for acknowledgement; return how many events were new."""
        ...


def _label(entity: SourceEntity) -> str:
    """The entity's label in the capture and publish metrics."""
    return f"{entity.system.lower()}.{entity.name}"


class EventPublisher:
    """Async context manager owning one idempotent Kafka producer."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec) -> None:
        self._settings = settings
        self._codec = codec
        self._versions = PublishedVersions()
        self._in_flight: dict[tuple[str, bytes], asyncio.Future[None]] = {}
        self._producer = RenewingProducer(
            partial(
                AIOKafkaProducer,
                **connection_options(settings),
                client_id=f"{settings.client_id}-publisher",
                acks="all",
                enable_idempotence=True,
                linger_ms=settings.linger_ms,
                max_batch_size=settings.batch_bytes,
                request_timeout_ms=settings.request_timeout_ms,
            ),
            "publisher",
        )

    async def __aenter__(self) -> Self:
        await start_client(self._producer)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_client(self._producer)

    async def publish(self, items: Sequence[tuple[SourceEntity, ChangeEvent]]) -> int:
        """Publish events not published before; return how many were sent.

        Raises :class:`PublishFailed` if the broker does not acknowledge all of them; the
        caller must then not acknowledge its own input (the sender retries, the poller
        keeps its token).
        """
        prefix = self._settings.topic_prefix
        entries = [(entity, entity.topic(prefix), event) for entity, event in items]
        captures: Counter[tuple[str, Capture]] = Counter()
        for entity, _, event in entries:
            captures[(_label(entity), event.source.capture)] += 1
        # counted per entity, not per event: a backfill page is hundreds of events
        for (label, capture), count in captures.items():
            captured(label, capture, count)
        await self._after_publishes_in_flight({(topic, event.key) for _, topic, event in entries})
        claimed = []
        for entity, topic, event in entries:
            is_new, previous = self._versions.claim(topic, event)
            if is_new:
                claimed.append((entity, topic, event, previous))
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = {(topic, event.key) for _, topic, event, _ in claimed}
        self._in_flight.update(dict.fromkeys(keys, finished))
        now = now_millis()
        try:
            futures = [
                await self._producer.send(
                    topic, self._codec.encode(event, entity, now), key=event.key
                )
                for entity, topic, event, _ in claimed
            ]
            await asyncio.gather(*futures)
        except BaseException as exc:
            # cancelled too: the claim must not outlive a publish nobody saw acknowledged
            for _, topic, event, previous in claimed:
                self._versions.release(topic, event, previous)
            if isinstance(exc, KafkaError):
                raise PublishFailed(f"Kafka did not acknowledge: {exc.__class__.__name__}") from exc
            raise
        finally:
            for key in keys:
                if self._in_flight.get(key) is finished:
                    del self._in_flight[key]
            finished.set_result(None)
        for label, count in Counter(_label(entity) for entity, _, _, _ in claimed).items():
            published(label, count)
        return len(claimed)

    async def _after_publishes_in_flight(self, keys: set[tuple[str, bytes]]) -> None:
        """Wait until no publish of these records is in flight.

        A record claimed by a publish still waiting for Kafka is not new to a second
        publisher (a webhook and the poller report the same change), which would then
        acknowledge its own input — the poller would move its token past the change. If
        the first publish then fails, nobody publishes the change. So the second waits for
        the first's outcome and decides on what was acknowledged."""
        while pending := {
            id(future): future for key in keys if (future := self._in_flight.get(key)) is not None
        }:
            await asyncio.wait(pending.values())

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
