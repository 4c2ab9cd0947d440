"""F&O catch-up without change tracking: a paged snapshot diff over the OData API.

For an environment without Power Platform integration (no data events, no virtual tables),
F&O offers no change feed over OData (spec B.4). This poller reads every record of an
entity set, page by page across companies, hashes each record's content, and compares the
hashes with those of its previous run, kept per record in the state topic
(``snapdiff|<entity>|<record id>`` → the hash and the record's key fields as F&O spells
them, so a delete can name the record exactly):

- a record whose hash is new or differs is published as a CREATE or UPDATE;
- a record whose hash is stored but that was not read is published as a DELETE.

The events carry no version (F&O's OData gives none), so the engine confirms each against
F&O before it applies it (:mod:`bridge.engine.runner`). Hashes are stored only after the
page's events were acknowledged, so a crash publishes a change again rather than losing it.
Cost per run: one request per page (``page_size`` records) and one state write per changed
record; it is measured in docs/measurements.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.config import CompanySettings, FnoPollerSettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.fno.reader import FnoReader, normalize_fno_record
from bridge.kafka.publisher import Publisher
from bridge.sources.base import poll_forever

log = structlog.get_logger(__name__)


class DiffState(Protocol):
    """The state store as the poller uses it (:class:`bridge.kafka.state.StateStore`)."""

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        """Every stored key starting with ``prefix``, with its value."""
        ...

    async def put(self, key: str, value: Any) -> None:
        """Store ``value`` durably; ``None`` deletes the key."""
        ...


def content_hash(record: Mapping[str, Any]) -> str:
    """A stable hash of a record's fields (OData annotations, such as the ETag, excluded)."""
    canonical = json.dumps(normalize_fno_record(record), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DiffRun:
    """What one run read and published, and what it cost."""

    records: int
    requests: int
    created: int
    updated: int
    deleted: int
    seconds: float

    @property
    def published(self) -> int:
        """Changes published."""
        return self.created + self.updated + self.deleted


class SnapshotDiffPoller:
    """Diffs one F&O entity set against the previous run; run it as a task."""

    def __init__(
        self,
        settings: FnoPollerSettings,
        entity: SourceEntity,
        reader: FnoReader,
        publisher: Publisher,
        state: DiffState,
        companies: CompanySettings,
    ) -> None:
        self._settings = settings
        self._entity = entity
        self._reader = reader
        self._publisher = publisher
        self._state = state
        self._companies = companies
        self._prefix = f"snapdiff|{entity.name}|"

    async def run(self) -> None:
        """Poll until cancelled; transient failures are logged and retried next interval."""
        await poll_forever(
            f"snapshot-diff:{self._entity.name}", self.poll_once, self._settings.interval_seconds
        )

    async def poll_once(self) -> DiffRun:
        """One full pass: publish every create, update and delete since the last pass."""
        started = time.monotonic()
        stored = {k.removeprefix(self._prefix): v for k, v in self._state.items(self._prefix)}
        seen: set[str] = set()
        counts = {Operation.CREATE: 0, Operation.UPDATE: 0, Operation.DELETE: 0}
        requests = 0
        pages = self._reader.client.pages(
            self._entity.entity_set,
            params={"cross-company": "true"},
            page_size=self._settings.page_size,
        )
        async for page in pages:
            requests += 1
            changed: list[tuple[ChangeEvent, str | None]] = []
            for raw in page.get("value", []):
                if not self._companies.is_mapped(raw.get("dataAreaId")):
                    continue
                record_id = self._entity.record_id(raw)
                seen.add(record_id)
                digest = content_hash(raw)
                if (stored.get(record_id) or {}).get("hash") != digest:
                    operation = Operation.UPDATE if record_id in stored else Operation.CREATE
                    changed.append((self._event(operation, normalize_fno_record(raw)), digest))
                    counts[operation] += 1
            await self._publish(changed)
        gone: list[tuple[ChangeEvent, str | None]] = [
            (self._event(Operation.DELETE, dict(stored[record_id].get("key") or {})), None)
            for record_id in sorted(set(stored) - seen)
        ]
        counts[Operation.DELETE] = len(gone)
        await self._publish(gone)
        run = DiffRun(
            records=len(seen),
            requests=requests,
            created=counts[Operation.CREATE],
            updated=counts[Operation.UPDATE],
            deleted=counts[Operation.DELETE],
            seconds=time.monotonic() - started,
        )
        if run.published:
            log.info("snapshot_diff_published", entity=self._entity.name, **_fields(run))
        return run

    async def _publish(self, changed: list[tuple[ChangeEvent, str | None]]) -> None:
        if not changed:
            return
        await self._publisher.publish([(self._entity, event) for event, _ in changed])
        for event, digest in changed:
            key = {name: event.image.get(name) for name in self._entity.key_attributes}
            value = None if digest is None else {"hash": digest, "key": key}
            await self._state.put(self._prefix + event.source.record_id, value)

    def _event(self, operation: Operation, image: dict[str, Any]) -> ChangeEvent:
        source = Source(
            system=System.FNO,
            entity=self._entity.entity,
            record_id=self._entity.record_id(image),
            business_key=self._entity.business_key_of(image),
            company=str(image.get("dataAreaId") or "") or None,
            change_time=datetime.now(UTC),
            capture=Capture.POLL,
        )
        if operation is Operation.DELETE:
            return ChangeEvent.create(source, operation, before=image)
        return ChangeEvent.create(source, operation, after=image)


def _fields(run: DiffRun) -> dict[str, Any]:
    return {
        "records": run.records,
        "requests": run.requests,
        "created": run.created,
        "updated": run.updated,
        "deleted": run.deleted,
        "seconds": round(run.seconds, 3),
    }
