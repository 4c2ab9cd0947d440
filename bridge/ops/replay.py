"""``bridge replay --flow NAME --from ISO-TIME``: re-apply a flow's events since a moment.

Kafka lets a group's offsets be changed only while the group has no members, so replay
refuses (exit 2) while the flow runs: stop the bridge, replay, start it. The steps:

1. per partition of the source topic, find the first offset at or after the moment
   (``offsets_for_times``; a partition with nothing that recent uses its end offset);
2. never move a partition forward: the new offset is the smaller of that and the committed
   one, so no unapplied event is ever skipped. A partition without a committed offset is
   left alone (the flow reads it from the beginning anyway);
3. forget the entries (versions-topic tombstones) of every record with an event in
   ``[new offset, end)``, so the engine neither skips them as settled nor as stale;
4. commit the new offsets for the flow's group (Kafka refuses if the group came back).

Step 3 comes before step 4: a crash between them re-applies nothing twice that matters
(the sinks write only differences), whereas the other order could silently skip events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from rich.table import Table

from bridge.engine.flow import Flow
from bridge.engine.stream import VersionLog
from bridge.errors import ConfigError
from bridge.ops.ports import GroupOffsets, TopicReading
from bridge.ops.render import table

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionReset:
    """What replay does to one partition of the flow's source topic."""

    partition: int
    committed: int | None
    found: int | None
    end: int
    new: int | None

    @property
    def moves(self) -> bool:
        """Whether the group's offset changes."""
        return self.new is not None and self.new != self.committed

    @property
    def reapplied(self) -> int:
        """How many already-consumed events the flow will consume again."""
        if self.new is None or self.committed is None:
            return 0
        return self.committed - self.new


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The resets planned (and done unless ``dry_run``) and how many records' applied
    versions were forgotten."""

    resets: list[PartitionReset]
    forgotten: int = 0
    dry_run: bool = False


def parse_moment(text: str) -> datetime:
    """An ISO-8601 time; without an offset it is UTC. Raises :class:`ConfigError`."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--from {text!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plan_resets(
    committed: Mapping[int, int], found: Mapping[int, int | None], ends: Mapping[int, int]
) -> list[PartitionReset]:
    """The reset of every partition (see the module docstring, steps 1-2)."""
    resets = []
    for partition, end in sorted(ends.items()):
        at = found.get(partition)
        current = committed.get(partition)
        new = None if current is None else min(current, end if at is None else at)
        resets.append(PartitionReset(partition, current, at, end, new))
    return resets


async def replayed_keys(
    flow: Flow, topics: TopicReading, resets: list[PartitionReset]
) -> set[tuple[int, bytes]]:
    """The (partition, key) of every record with an event to replay."""
    ranges = {r.partition: (r.new, r.end) for r in resets if r.new is not None}
    return {
        (record.partition, record.key or b"") async for record in topics.records(flow.topic, ranges)
    }


async def refuse_if_running(flow: Flow, groups: GroupOffsets) -> None:
    """Raise :class:`ConfigError` if the flow's consumer group has active members."""
    members = await groups.members(flow.group)
    if members:
        raise ConfigError(
            f"flow {flow.name} is running ({len(members)} member(s) in consumer group "
            f"{flow.group}); stop the bridge, replay, then start it again"
        )


async def plan_replay(
    flow: Flow, moment: datetime, *, topics: TopicReading, groups: GroupOffsets
) -> list[PartitionReset]:
    """The reset of every partition of the flow's source topic to ``moment``; changes nothing."""
    ends = await topics.end_offsets(flow.topic)
    if not ends:
        raise ConfigError(f"topic {flow.topic} does not exist; run `bridge setup` first")
    found = await topics.offsets_at(flow.topic, moment)
    committed = await groups.committed(flow.group, flow.topic, [*ends])
    return plan_resets(committed, found, ends)


async def apply_replay(
    flow: Flow,
    resets: list[PartitionReset],
    *,
    topics: TopicReading,
    groups: GroupOffsets,
    versions: VersionLog,
) -> int:
    """Forget the records' entries, then commit the new offsets (module docstring, steps 3
    and 4); return how many entries were forgotten. The flow must be stopped."""
    forgotten = 0
    stored: dict[int, dict[bytes, bytes]] = {}
    for partition, key in sorted(await replayed_keys(flow, topics, resets)):
        if partition not in stored:
            stored.update(await versions.read([partition]))
        if key in stored[partition]:
            await (await versions.write(partition, key, None))
            forgotten += 1
    moved = {r.partition: r.new for r in resets if r.moves and r.new is not None}
    if moved:
        await groups.commit(flow.group, flow.topic, moved)
    log.info("flow_replay_reset", flow=flow.name, partitions=moved, forgotten_versions=forgotten)
    return forgotten


def resets_table(flow: Flow, result: ReplayResult) -> Table:
    """One row per partition: committed, found by time, new, end, events re-applied."""

    def text(value: int | None) -> str:
        return "-" if value is None else str(value)

    rows = [
        (
            str(r.partition),
            text(r.committed),
            text(r.found),
            text(r.new),
            str(r.end),
            str(r.reapplied),
        )
        for r in result.resets
    ]
    columns = ("partition", "old offset", "offset at time", "new offset", "end", "re-applied")
    return table(f"replay of {flow.name} ({flow.topic}, group {flow.group})", columns, rows)
