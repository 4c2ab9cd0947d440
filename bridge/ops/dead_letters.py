"""``bridge dlq list|show|replay``: inspect a flow's dead letters and re-inject them.

A replay re-publishes the dead letter's original key and value bytes to the flow's source
topic with headers ``replay.of`` and ``bridge.force=1`` (see :mod:`bridge.ops.headers`), so
it goes through the same idempotent path as any event: a version older than the one already
applied is still skipped, nothing is ever applied twice.

Which dead letters were replayed is kept as the committed offsets of the consumer group
``<flow group>.dlq-replay`` on the dead-letter topic (nobody consumes with it): a dead letter
below that offset is *replayed*, the others are *pending*. ``replay --all`` replays the
pending ones; naming dead letters (``PARTITION:OFFSET``) replays exactly those, replayed or
not. A replay that fails again is dead-lettered again, as a new pending dead letter.

A dead letter is identified by the record it was consumed from: its ``dlq.original.topic``,
``dlq.original.partition`` and ``dlq.original.offset`` (one without them stands for itself).
A crash between sending a dead letter and committing the offset behind it dead-letters that
record again on restart, so the topic can hold several copies of one original. They are
listed as one dead letter, the first copy, which carries the others as ``duplicates``; it is
pending only while no copy has been replayed, and naming any copy's ``PARTITION:OFFSET``
names it. So each original is shown once and replayed once, and a replay moves the marks
past all its copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from rich.table import Table

from bridge.contract.envelope import ChangeEvent
from bridge.engine.dead_letters import RawSender, dead_letter_context
from bridge.engine.flow import Flow
from bridge.errors import ConfigError
from bridge.ops.headers import REPLAY_OF_HEADER, header_value, replay_headers
from bridge.ops.ports import GroupOffsets, RawRecord, TopicReading
from bridge.ops.render import clip, table

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic with its parsed ``dlq.*`` context and the later
    copies of the same original collapsed into it (see the module docstring)."""

    record: RawRecord
    context: Mapping[str, str]
    pending: bool = True
    duplicates: tuple[DeadLetter, ...] = ()

    @classmethod
    def of(cls, record: RawRecord, replayed_below: int = 0) -> DeadLetter:
        """Wrap a dead-letter record; it is pending unless its offset is below the mark."""
        return cls(record, dead_letter_context(record.headers), record.offset >= replayed_below)

    @property
    def ref(self) -> str:
        """``partition:offset`` in the dead-letter topic."""
        return self.record.ref

    @property
    def time(self) -> str:
        """When it was dead-lettered (``dlq.time``), else the record's timestamp."""
        if "time" in self.context:
            return self.context["time"]
        return datetime.fromtimestamp(self.record.timestamp_ms / 1000, UTC).isoformat()

    @property
    def key(self) -> str:
        """The record key (the source record's identity) as text."""
        return (self.record.key or b"").decode(errors="replace")

    @property
    def replay_of(self) -> str | None:
        """The dead letter this one is a failed replay of, if any."""
        return header_value(self.record.headers, REPLAY_OF_HEADER)

    def get(self, name: str) -> str:
        """A ``dlq.*`` header value (without the prefix), or ``""``."""
        return self.context.get(name, "")

    @property
    def original(self) -> tuple[str, str, str]:
        """The identity of a dead letter: the topic, partition and offset it was consumed
        from, or its own place in the dead-letter topic when its headers do not say."""
        where = (self.get("original.topic"), self.get("original.partition"))
        offset = self.get("original.offset")
        if all(where) and offset:
            return (*where, offset)
        return (self.record.topic, str(self.record.partition), str(self.record.offset))

    @property
    def copies(self) -> tuple[DeadLetter, ...]:
        """This dead letter and its duplicates, in the order they were read."""
        return (self, *self.duplicates)

    @property
    def place(self) -> tuple[int, int]:
        """``(partition, offset)`` in the dead-letter topic."""
        return self.record.partition, self.record.offset


def parse_ref(text: str) -> tuple[int, int]:
    """Parse ``PARTITION:OFFSET``; raise :class:`ConfigError` otherwise."""
    partition, sep, offset = text.strip().partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ConfigError(f"dead letter {text!r}: expected PARTITION:OFFSET, e.g. 0:12")
    return int(partition), int(offset)


async def read_dead_letters(
    topics: TopicReading, groups: GroupOffsets, flow: Flow
) -> list[DeadLetter]:
    """Every dead letter of ``flow`` now in its topic, oldest first, marked pending or not."""
    ends = await topics.end_offsets(flow.dead_letter_topic)
    marks = await groups.committed(flow.dead_letter_replay_group, flow.dead_letter_topic, [*ends])
    ranges = {partition: (0, end) for partition, end in ends.items()}
    letters = [
        DeadLetter.of(record, marks.get(record.partition, 0))
        async for record in topics.records(flow.dead_letter_topic, ranges)
    ]
    return collapse(sorted(letters, key=lambda d: (d.record.timestamp_ms, *d.place)))


def collapse(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per original, in the order given: the first copy, carrying the others
    as duplicates, pending only if none of them has been replayed."""
    by_original: dict[tuple[str, str, str], list[DeadLetter]] = {}
    for letter in letters:
        by_original.setdefault(letter.original, []).append(letter)
    return [
        replace(first, pending=all(c.pending for c in (first, *rest)), duplicates=tuple(rest))
        for first, *rest in by_original.values()
    ]


def locate(letters: Sequence[DeadLetter], ref: str) -> tuple[DeadLetter, DeadLetter] | None:
    """``(dead letter, copy)`` for a ``PARTITION:OFFSET`` naming any copy of a dead letter,
    or ``None`` when no copy is there."""
    wanted = parse_ref(ref)
    found = ((d, copy) for d in letters for copy in d.copies if copy.place == wanted)
    return next(found, None)


def select(
    letters: Sequence[DeadLetter], refs: Iterable[str], *, pending: bool
) -> list[DeadLetter]:
    """The dead letters named by ``refs`` (a ref may name any copy; each dead letter comes
    once), or with ``pending`` every pending one, in partition and offset order. Raises
    :class:`ConfigError` for a ref not in the topic or when nothing was asked for."""
    wanted = [parse_ref(ref) for ref in refs]
    if not wanted and not pending:
        raise ConfigError("name the dead letters to replay (PARTITION:OFFSET ...) or pass --all")
    by_ref = {copy.place: d for d in letters for copy in d.copies}
    missing = [f"{p}:{o}" for p, o in wanted if (p, o) not in by_ref]
    if missing:
        raise ConfigError(f"no dead letter {', '.join(missing)} in the topic")
    chosen = [by_ref[ref] for ref in wanted] if wanted else [d for d in letters if d.pending]
    unique = {d.place: d for d in chosen}
    return [unique[place] for place in sorted(unique)]


def advanced_marks(letters: Sequence[DeadLetter], replayed: Sequence[DeadLetter]) -> dict[int, int]:
    """Per partition, the new replayed-below offset: past every copy of a pending dead letter
    that is now replayed, up to the first one still pending. Only partitions that move are
    listed."""
    done = {copy.place for d in replayed for copy in d.copies}
    pending = sorted(copy.place for d in letters if d.pending for copy in d.copies)
    marks: dict[int, int] = {}
    blocked: set[int] = set()
    for partition, offset in pending:
        if partition in blocked:
            continue
        if (partition, offset) in done:
            marks[partition] = offset + 1
        else:
            blocked.add(partition)
    return marks


async def replay(
    flow: Flow,
    letters: Sequence[DeadLetter],
    chosen: Sequence[DeadLetter],
    send: RawSender,
    groups: GroupOffsets,
) -> None:
    """Re-publish ``chosen`` to the flow's source topic, each acknowledged, then move the
    replayed-below marks. A crash in between replays some again later: harmless."""
    for letter in chosen:
        await send(
            flow.topic, letter.record.value, letter.record.key, replay_headers(letter.record)
        )
        log.info(
            "dead_letter_replayed",
            flow=flow.name,
            ref=letter.ref,
            topic=flow.topic,
            error_class=letter.get("error.class"),
            copies=len(letter.copies),
        )
    marks = advanced_marks(letters, chosen)
    if marks:
        await groups.commit(flow.dead_letter_replay_group, flow.dead_letter_topic, marks)


DLQ_COLUMNS = ("ref", "time", "stage", "error", "message", "key", "original", "copies", "status")


def dead_letters_table(flow: Flow, letters: Sequence[DeadLetter]) -> Table:
    """One row per dead letter, its copies counted in one cell and in the title."""
    rows = [
        (
            d.ref,
            d.time,
            d.get("stage"),
            d.get("error.class"),
            clip(d.get("error.message"), 60),
            d.key,
            _original(flow, d),
            _copies(d),
            ("pending" if d.pending else "replayed")
            + (f" (replay of {d.replay_of})" if d.replay_of else ""),
        )
        for d in letters
    ]
    pending = sum(d.pending for d in letters)
    title = f"{flow.dead_letter_topic}: {len(letters)} dead letters, {pending} pending"
    collapsed = sum(len(d.duplicates) for d in letters)
    if collapsed:
        title += f", {collapsed} duplicate{'s' if collapsed > 1 else ''} collapsed"
    return table(title, DLQ_COLUMNS, rows)


def _copies(letter: DeadLetter) -> str:
    """``1``, or the count and where the other copies are: ``2 (also 0:5)``."""
    if not letter.duplicates:
        return "1"
    return f"{len(letter.copies)} (also {' '.join(d.ref for d in letter.duplicates)})"


def _original(flow: Flow, letter: DeadLetter) -> str:
    """Where the event was consumed: ``partition:offset``, with the topic if not the source
    topic (a retry topic, for a prerequisite that never arrived)."""
    where = f"{letter.get('original.partition')}:{letter.get('original.offset')}"
    topic = letter.get("original.topic")
    return where if topic in ("", flow.topic) else f"{topic}:{where}"


def event_summary(event: ChangeEvent) -> dict[str, Any]:
    """The envelope fields of an event an operator looks at first."""
    source = event.source
    return {
        "event_id": event.event_id,
        "operation": event.operation.value,
        "record_id": source.record_id,
        "business_key": source.business_key,
        "record_version": source.record_version,
        "change_time": source.change_time.isoformat(),
        "changed_by": source.changed_by,
        "capture": source.capture.value,
    }
