"""The consume → apply → commit loop of one flow, free of any transport.

Delivery contract, enforced here and nowhere else:

- **Order per record.** All records of one key in a fetched batch — from the change topic
  and from the retry topic, whose partition *n* the same engine owns — are settled by one
  task, one after the other. Checking a record's version and storing the new one are a
  single step of that task (:mod:`bridge.engine.versions`), so no two versions of a record
  are ever applied concurrently, and a stored version never goes down.
- **Newest wins.** A versioned event older than (or, unless forced, equal to) the applied
  version is skipped. An event waiting in the retry topic is *superseded* by a newer one:
  the newer event is applied as soon as it can be, and the waiting copy is skipped as stale
  when it comes due. An event without a version (an F&O snapshot, a polled delete), and
  the first change of a record the flow applies, are confirmed against the source first:
  the record is applied as the source holds it now, a delete only if the record is still
  gone, and a record deleted meanwhile not at all (so a deleted record whose business key a
  new record took over cannot overwrite it from a slower partition).
- **Once per offset.** Each record settles once — applied, skipped, dead-lettered, or copied
  to the retry topic — and the settled offset is stored with the record's version, so a
  rewind, a redelivery or a new owner after a rebalance never repeats a dead letter, a retry
  copy, a conflict write-back or a cascade. (A crash between an effect's acknowledgement and
  the flush of its entry can repeat that one effect; dead letters are identified by their
  original offset and every other effect is idempotent.)
- **Commit last.** A partition's offset is committed only after every earlier record was
  settled and the entries were flushed. A record that cannot be settled now (target down,
  credentials refused, a retry not yet due) rewinds its partition to it and pauses it; the
  partition resumes by itself.
- **Nothing replays forever.** Any exception while applying one record dead-letters it
  (stage ``unexpected``); a batch never outlives ``apply_budget_seconds``: what is still
  running then is cancelled and retried from its offset.

An operator may :meth:`FlowEngine.pause` a flow: once the call returns nothing more is
applied, the engine keeps polling with every owned partition paused (so it stays in its
group) and :meth:`FlowEngine.resume` goes on from the first record not settled.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

from bridge.config import FlowSettings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import Capture, ChangeEvent, Operation
from bridge.engine.dead_letters import DeadLetters
from bridge.engine.flow import Flow
from bridge.engine.observer import FlowObserver, NoObserver
from bridge.engine.retries import RetryScheduler, attempts_of, seconds_until_due
from bridge.engine.stream import Partition, RecordSender, RecordStream, StreamRecord
from bridge.engine.versions import RecordState, VersionTable, staleness
from bridge.errors import (
    BridgeError,
    ConflictLost,
    DependencyMissing,
    EventRejected,
    FlowBlocked,
    TransientError,
    UndecodableMessage,
)
from bridge.flows.processor import FlowProcessor

log = structlog.get_logger(__name__)

FORCE_HEADER = "bridge.force"
"""Header of an operator's corrective event (``bridge dlq replay``, ``reconcile --repair``):
with value ``1`` the event is applied even if its version was applied already."""
CASCADE_HEADER = "bridge.cascade.of"
RESYNC_HEADER = "bridge.resync.of"


def is_forced(headers: Any) -> bool:
    """Whether a record carries ``bridge.force=1``."""
    return any(name == FORCE_HEADER and value == b"1" for name, value in (headers or ()))


class SourceLookup(Protocol):
    """The source systems as the engine needs them (:class:`bridge.sources.base.Sources`)."""

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record ``event`` is about, as a snapshot event of its current state (with its
        version when the source has one), or ``None`` when it does not exist."""
        ...

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """A record read from its system as a snapshot event."""
        ...


class _Blocked(Exception):
    """A record cannot be settled now; its partition rewinds to it and pauses (for
    ``delay`` seconds when the record itself says how long, e.g. a retry not yet due)."""

    def __init__(self, cause: BaseException, delay: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.delay = delay


@dataclass(frozen=True, slots=True)
class _Stop:
    """Where one partition stopped in a batch, and why."""

    offset: int
    blocked: _Blocked


class FlowEngine:
    """Runs one flow on a :class:`RecordStream`; also the stream's rebalance listener."""

    def __init__(
        self,
        flow: Flow,
        processor: FlowProcessor,
        *,
        codec: EventCodec,
        sender: RecordSender,
        versions: VersionTable,
        source: SourceLookup,
        settings: FlowSettings,
        topic_prefix: str,
        observer: FlowObserver | None = None,
    ) -> None:
        self.flow = flow
        self._processor = processor
        self._codec = codec
        self._sender = sender
        self._versions = versions
        self._source = source
        self._settings = settings
        self._prefix = topic_prefix
        self._observer = observer or NoObserver()
        self._dead_letters = DeadLetters(
            flow.dead_letter_topic, flow.name, sender, self._observer.dead_lettered
        )
        self._retries = RetryScheduler(flow.retry_topic, settings, sender)
        self._stream: RecordStream | None = None
        self._batch = asyncio.Lock()
        self._resume_at: dict[Partition, float] = {}
        self._paused = False

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stream: RecordStream) -> None:
        """Fetch, settle and commit until cancelled."""
        self._stream = stream
        log.info("flow_started", flow=self.flow.name, topic=self.flow.topic)
        try:
            while True:
                if self._paused:
                    self._hold(stream)
                else:
                    self._resume_due(stream)
                batch = await stream.fetch(max_wait=0.2)
                if batch:
                    async with self._batch:
                        if self._paused:
                            self._rewind(stream, batch)
                        else:
                            await self._settle_batch(stream, batch)
        finally:
            log.info("flow_stopped", flow=self.flow.name)

    async def _settle_batch(
        self, stream: RecordStream, batch: Mapping[Partition, Sequence[StreamRecord]]
    ) -> None:
        owned = stream.assignment()
        # a rebalance between fetch and here may have taken partitions away; their records
        # are the new owner's. Fetching may also start before the assignment callback has
        # loaded a partition's entries: load them now, before anything is applied.
        mine = {p: rs for p, rs in batch.items() if rs and p in owned}
        await self._versions.load({p.number for p in mine})
        stops = await self._settle_chains(_chains(mine))
        await self._versions.flush()
        offsets: dict[Partition, int] = {}
        for partition, records in mine.items():
            stop = stops.get(partition)
            if stop is None:
                offsets[partition] = records[-1].offset + 1
                continue
            if stop.offset > records[0].offset:
                offsets[partition] = stop.offset
            self._pause(stream, partition, stop)
        if offsets:
            try:
                await stream.commit(offsets)
            except TransientError as exc:
                # the partitions moved to another member; it re-reads from the last commit
                # and skips what we settled, since the entries were flushed first
                log.warning("commit_refused", flow=self.flow.name, error=str(exc))

    async def _settle_chains(self, chains: list[list[StreamRecord]]) -> dict[Partition, _Stop]:
        stops: dict[Partition, _Stop] = {}
        current: dict[int, StreamRecord] = {}
        limit = asyncio.Semaphore(self._settings.apply_concurrency)

        def stop_at(record: StreamRecord, blocked: _Blocked) -> None:
            previous = stops.get(record.where)
            if previous is None or record.offset < previous.offset:
                stops[record.where] = _Stop(record.offset, blocked)

        async def settle_chain(index: int, records: list[StreamRecord]) -> None:
            halted: set[str] = set()
            async with limit:
                for record in records:
                    if record.topic in halted:
                        continue
                    current[index] = record
                    try:
                        await self._settle(record)
                    except _Blocked as blocked:
                        stop_at(record, blocked)
                        halted.add(record.topic)
                current.pop(index, None)

        tasks = [asyncio.create_task(settle_chain(i, c)) for i, c in enumerate(chains)]
        if not tasks:
            return stops
        try:
            _, late = await asyncio.wait(tasks, timeout=self._settings.apply_budget_seconds)
        finally:
            # on the budget, and when the engine itself is stopped: nothing of this batch
            # may go on writing once its partitions can move to another process
            late = {task for task in tasks if not task.done()}
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        overdue = TransientError("apply took longer than the batch budget")
        for index, task in enumerate(tasks):
            if task in late and index in current:
                stop_at(current[index], _Blocked(overdue))
        return stops

    # --- one record -------------------------------------------------------------------

    async def _settle(self, record: StreamRecord) -> None:
        """Settle one record and store its entry; raise :class:`_Blocked` if it cannot be
        settled now."""
        key = record.key or b""
        state = self._versions.get(record.partition, key)
        if state is not None and state.has_settled(record.topic, record.offset):
            return
        wait = seconds_until_due(record)
        if wait > 0:
            raise _Blocked(TransientError("retry not due yet"), delay=wait)
        try:
            applied = await self._outcome(record, state)
        except (TransientError, FlowBlocked) as exc:
            raise _Blocked(exc) from exc
        entry = applied or state or RecordState()
        await self._versions.put(
            record.partition, key, entry.after_settling(record.topic, record.offset)
        )

    async def _outcome(self, record: StreamRecord, state: RecordState | None) -> RecordState | None:
        """The record's new entry if it was applied, else ``None`` (skipped or handed to
        the dead letters or the retry topic)."""
        try:
            event = self._codec.decode(record.value or b"")
        except UndecodableMessage as exc:
            await self._dead_letters.send(record, exc, stage="decode", attempts=1)
            return None
        self._observer.seen(event)
        try:
            return await self._apply(record, event, state)
        except (TransientError, FlowBlocked):
            raise
        except DependencyMissing as exc:
            await self._wait_for_prerequisite(record, exc)
        except ConflictLost as exc:
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=1)
            await self._send_winner_back(exc)
        except EventRejected as exc:
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=1)
        except BridgeError as exc:
            await self._dead_letters.send(record, exc, stage="apply", attempts=1)
        except Exception as exc:
            log.exception("apply_crashed", flow=self.flow.name, offset=record.offset)
            await self._dead_letters.send(record, exc, stage="unexpected", attempts=1)
        return None

    async def _apply(
        self, record: StreamRecord, event: ChangeEvent, state: RecordState | None
    ) -> RecordState | None:
        forced = is_forced(record.headers)
        reason = staleness(event, state, forced=forced) or self._processor.skip_reason(event)
        if reason is None and _needs_confirmation(event, state):
            confirmed = await self._confirmed(event)
            if confirmed is None:
                return None
            event = confirmed
            reason = staleness(event, state, forced=forced)
        if reason is not None:
            self._log_skip(event, reason)
            return None
        processed = await self._processor.process(event, state.business_key if state else None)
        for entity, line in processed.cascade:
            await self._publish(entity, line, (CASCADE_HEADER, self.flow.name.encode()))
        if processed.skipped is not None:
            self._observer.skipped(event, processed.skipped)
            return None
        self._observer.applied(event)
        return (state or RecordState()).after_applying(event)

    async def _confirmed(self, event: ChangeEvent) -> ChangeEvent | None:
        """An event checked against the source: the record as it is now for a snapshot or
        change, the delete itself if the record is still gone; ``None`` (and a log line)
        when the source contradicts the event."""
        current = await self._source.current(event)
        if event.operation is Operation.DELETE:
            if current is None:
                return event
            self._log_skip(event, "the record exists again in the source")
            return None
        if current is None:
            self._log_skip(event, "the record no longer exists in the source")
            return None
        return replace(current, correlation_id=event.correlation_id)

    async def _wait_for_prerequisite(self, record: StreamRecord, exc: DependencyMissing) -> None:
        if self._retries.exhausted(record):
            attempts = attempts_of(record) + 1
            await self._dead_letters.send(record, exc, stage=exc.stage, attempts=attempts)
            return
        wait = await self._retries.schedule(record, str(exc))
        log.info(
            "waiting_for_prerequisite",
            flow=self.flow.name,
            reason=str(exc),
            attempt=attempts_of(record) + 1,
            retry_in_seconds=wait,
        )

    async def _send_winner_back(self, exc: ConflictLost) -> None:
        """Publish the winning target record as a forced snapshot of its own source entity,
        so the flow in the other direction writes it over the losing edit."""
        resync = self._processor.template.conflict_resync
        if resync is None or not exc.winner:
            return
        entity = source_entity(resync.system, resync.entity)
        event = self._source.snapshot(entity, exc.winner)
        await self._publish(
            entity, event, (FORCE_HEADER, b"1"), (RESYNC_HEADER, self.flow.name.encode())
        )
        log.info("conflict_winner_resent", flow=self.flow.name, record=event.source.record_id)

    async def _publish(
        self, entity: SourceEntity, event: ChangeEvent, *headers: tuple[str, bytes]
    ) -> None:
        payload = self._codec.encode(event, entity)
        await self._sender.send(entity.topic(self._prefix), payload, event.key, list(headers))

    def _log_skip(self, event: ChangeEvent, reason: str) -> None:
        self._observer.skipped(event, reason)
        log.info(
            "change_skipped",
            flow=self.flow.name,
            event_id=event.event_id,
            source_key=event.source.business_key or event.source.record_id,
            reason=reason,
        )

    # --- pausing ----------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether an operator paused the flow."""
        return self._paused

    async def pause(self) -> None:
        """Stop applying: returns once the batch in flight (if any) is settled; from then on
        nothing is fetched for settling until :meth:`resume`."""
        self._paused = True
        async with self._batch:
            pass
        log.info("flow_paused_by_operator", flow=self.flow.name)

    def resume(self) -> None:
        """Apply again, from the first record not settled; partitions paused by a blocked
        record keep waiting for their own resume time."""
        if not self._paused:
            return
        self._paused = False
        if self._stream is not None:
            for partition in self._stream.assignment() - self._resume_at.keys():
                self._stream.resume(partition)
        log.info("flow_resumed_by_operator", flow=self.flow.name)

    def _hold(self, stream: RecordStream) -> None:
        # every turn, so partitions assigned while paused are held too
        for partition in stream.assignment():
            stream.pause(partition)

    def _rewind(
        self, stream: RecordStream, batch: Mapping[Partition, Sequence[StreamRecord]]
    ) -> None:
        """A batch fetched just before a pause is not settled: fetch it again on resume."""
        owned = stream.assignment()
        for partition, records in batch.items():
            if records and partition in owned:
                stream.seek(partition, records[0].offset)
                stream.pause(partition)

    def _pause(self, stream: RecordStream, partition: Partition, stop: _Stop) -> None:
        delay = self._settings.blocked_retry_seconds
        cause = stop.blocked.cause
        if stop.blocked.delay is not None:
            delay = stop.blocked.delay
        elif isinstance(cause, TransientError) and cause.retry_after:
            delay = max(delay, cause.retry_after)
        stream.seek(partition, stop.offset)
        stream.pause(partition)
        self._resume_at[partition] = time.monotonic() + delay
        if stop.blocked.delay is None:  # a retry copy not yet due is no trouble
            self._observer.blocked(partition, cause, delay)
        log.warning(
            "flow_paused",
            flow=self.flow.name,
            topic=partition.topic,
            partition=partition.number,
            offset=stop.offset,
            error=str(cause),
            resume_in_seconds=round(delay, 3),
        )

    def _resume_due(self, stream: RecordStream) -> None:
        now = time.monotonic()
        for partition in [p for p, at in self._resume_at.items() if at <= now]:
            del self._resume_at[partition]
            if partition in stream.assignment():
                stream.resume(partition)
                log.info("flow_resumed", flow=self.flow.name, partition=partition.number)

    # --- rebalance listener -----------------------------------------------------------

    async def revoked(self, partitions: Collection[Partition]) -> None:
        """Let the batch in flight finish (within the budget), make its entries durable, and
        forget the partitions: their new owner loads them."""
        try:
            async with asyncio.timeout(self._settings.apply_budget_seconds + 5):
                async with self._batch:
                    await self._versions.flush()
        except (TimeoutError, BridgeError) as exc:
            log.warning("revoke_unclean", flow=self.flow.name, error=str(exc) or "timeout")
        for partition in partitions:
            self._resume_at.pop(partition, None)
        self._versions.drop({p.number for p in partitions})
        log.info("partitions_revoked", flow=self.flow.name, partitions=_names(partitions))

    async def assigned(self, partitions: Collection[Partition]) -> None:
        """Load the entries of newly owned partitions before any of their records is
        applied."""
        loaded = await self._versions.load(sorted({p.number for p in partitions}))
        log.info(
            "partitions_assigned",
            flow=self.flow.name,
            partitions=_names(partitions),
            entries_loaded=loaded,
        )


def _needs_confirmation(event: ChangeEvent, state: RecordState | None) -> bool:
    """Whether an event must be checked against its source before it is applied: when it
    has no version to order it by, when it is the first change of a record this flow
    applies, and when it changes a record this flow saw deleted. The latter keeps a record that was deleted before its creation was applied
    from landing in the target after another record took over its business key (a new
    account with the number of a deleted one, whose events travel in another partition)."""
    if event.source.record_version is None:
        return True
    if event.operation is Operation.DELETE:
        return False
    # a deleted record's later change may be a re-creation, or a change made before a
    # delete whose version nobody knew (change tracking reports deletes without one)
    return state is None or state.version is None or state.deleted


def _chains(batch: Mapping[Partition, Sequence[StreamRecord]]) -> list[list[StreamRecord]]:
    """The batch's records grouped by (partition number, key), each group in fetch order:
    a record's events from the change topic and the retry topic form one chain."""
    chains: dict[tuple[int, bytes | None], list[StreamRecord]] = defaultdict(list)
    for partition, records in batch.items():
        for record in records:
            chains[(partition.number, record.key)].append(record)
    return list(chains.values())


def _names(partitions: Collection[Partition]) -> list[str]:
    return sorted(f"{p.topic}:{p.number}" for p in partitions)
