"""The change event: what every topic carries, independent of its wire encoding.

An event describes one change of one source record. Its ``event_id`` is derived from the
change itself (system, entity, record, version; or the delete), so the same change captured
twice — by a webhook and by the poller, or by a sender's retry — has the same id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Image = Mapping[str, Any]


class System(StrEnum):
    """The source system of a change."""

    SALES = "SALES"
    FNO = "FNO"


class Operation(StrEnum):
    """What happened to the record. SNAPSHOT is a backfill or reconcile read, not a change."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    SNAPSHOT = "SNAPSHOT"


class Capture(StrEnum):
    """How the change was captured."""

    WEBHOOK = "WEBHOOK"
    POLL = "POLL"
    BUSINESS_EVENT = "BUSINESS_EVENT"
    BACKFILL = "BACKFILL"
    RECONCILE = "RECONCILE"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a change comes from. ``record_id`` is the stable identity and the Kafka key."""

    system: System
    entity: str
    record_id: str
    change_time: datetime
    capture: Capture
    business_key: str | None = None
    company: str | None = None
    record_version: int | None = None
    changed_by: str | None = None


def make_event_id(source: Source, operation: Operation) -> str:
    """Derive the idempotency key of a change.

    A non-delete is identified by the record and its version; a delete by the record alone
    (a deleted record has no later versions). Capture path and operation label do not count,
    so a webhook CREATE and a polled UPDATE of the same version collapse into one id.
    """
    version = "delete" if operation is Operation.DELETE else str(source.record_version)
    material = "|".join((source.system, source.entity.lower(), source.record_id.lower(), version))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def now_millis() -> datetime:
    """The current UTC time at millisecond precision (what the wire format keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of one record, with full before/after images where the source gives them."""

    event_id: str
    correlation_id: str
    operation: Operation
    source: Source
    before: Image | None = None
    after: Image | None = None
    published_at: datetime = field(default_factory=now_millis)

    @classmethod
    def create(
        cls,
        source: Source,
        operation: Operation,
        *,
        before: Image | None = None,
        after: Image | None = None,
        correlation_id: str | None = None,
    ) -> ChangeEvent:
        """Build an event whose ``event_id`` is derived from the change."""
        return cls(
            event_id=make_event_id(source, operation),
            correlation_id=correlation_id or str(uuid.uuid4()),
            operation=operation,
            source=source,
            before=before,
            after=after,
        )

    @property
    def key(self) -> bytes:
        """The Kafka message key: the record's stable source identity."""
        return self.source.record_id.lower().encode()

    @property
    def image(self) -> Image:
        """The latest known state: ``after``, or ``before`` for a delete."""
        return self.after if self.after is not None else (self.before or {})

    def stamped(self, published_at: datetime) -> ChangeEvent:
        """A copy with the publish time set."""
        return replace(self, published_at=published_at)
