"""Replay from a time: offsets never move forward, versions are forgotten before commits."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console

from bridge.contract.codec import EventCodec
from bridge.engine.memory import MemoryLog, MemoryVersionLog
from bridge.engine.versions import RecordState
from bridge.errors import ConfigError
from bridge.ops.replay import (
    PartitionReset,
    ReplayResult,
    apply_replay,
    parse_moment,
    plan_replay,
    plan_resets,
    refuse_if_running,
    resets_table,
)
from tests.unit.ops.fakes import (
    MemoryGroups,
    MemoryTopics,
    account_event,
    accounts_flow,
)

FLOW = accounts_flow()
CODEC = EventCodec.from_directory()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00+02:00", datetime(2026, 3, 1, 8, tzinfo=UTC)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert parse_moment(text) == expected


def test_parse_moment_keeps_the_offset() -> None:
    assert parse_moment("2026-03-01T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert parse_moment("2026-03-01T10:00:00+02:00").tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01"])
def test_parse_moment_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="ISO-8601"):
        parse_moment(text)


@pytest.mark.parametrize(
    ("committed", "found", "end", "new", "reapplied"),
    [
        (10, 4, 12, 4, 6),  # normal: back to the first event at the time
        (10, None, 12, 10, 0),  # nothing that recent: the end (12), but never forward
        (3, 8, 12, 3, 0),  # the time is after the committed offset: stays
        (None, 4, 12, None, 0),  # never committed: left alone (read from the start)
        (10, 10, 10, 10, 0),
    ],
)
def test_plan_resets(
    committed: int | None, found: int | None, end: int, new: int | None, reapplied: int
) -> None:
    (reset,) = plan_resets({} if committed is None else {0: committed}, {0: found}, {0: end})
    assert reset == PartitionReset(0, committed, found, end, new)
    assert reset.reapplied == reapplied
    assert reset.moves == (new is not None and new != committed)


def fill_topic(topics: MemoryTopics) -> None:
    """Partition 0: a1 v1 (t=100), a2 v1 (t=200), a1 v2 (t=300); partition 1: a3 (t=50)."""
    events = [(0, account_event("a1", 1), 100), (0, account_event("a2", 1), 200)]
    events += [(0, account_event("a1", 2), 300), (1, account_event("a3", 1), 50)]
    topics.create(FLOW.topic, partitions=2)
    for partition, event, millis in events:
        payload = CODEC.encode(event, FLOW.entity)
        topics.append(FLOW.topic, partition, payload, key=event.key, timestamp_ms=millis)
    topics.append(FLOW.topic, 0, b"not avro", timestamp_ms=400)


async def test_plan_replay_uses_offsets_by_time() -> None:
    topics, groups = MemoryTopics(), MemoryGroups()
    fill_topic(topics)
    groups.offsets[(FLOW.group, FLOW.topic)] = {0: 4, 1: 1}
    moment = datetime.fromtimestamp(0.2, UTC)
    resets = await plan_replay(FLOW, moment, topics=topics, groups=groups)
    assert resets == [PartitionReset(0, 4, 1, 4, 1), PartitionReset(1, 1, None, 1, 1)]


async def test_plan_replay_of_a_missing_topic_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await plan_replay(FLOW, datetime.now(UTC), topics=MemoryTopics(), groups=MemoryGroups())


async def test_apply_replay_forgets_versions_then_commits() -> None:
    journal: list[str] = []
    topics, groups = MemoryTopics(), MemoryGroups(journal)
    fill_topic(topics)
    log = MemoryLog(partitions=2)
    versions = MemoryVersionLog(log, FLOW.versions_topic)
    entry = RecordState(version=1, settled={FLOW.topic: 3}).to_json()
    for partition, record in ((0, "a1"), (0, "a2"), (1, "a3")):
        await versions.write(partition, record.encode(), entry)
    resets = [PartitionReset(0, 4, 1, 4, 1), PartitionReset(1, 1, None, 1, 1)]
    forgotten = await apply_replay(FLOW, resets, topics=topics, groups=groups, versions=versions)
    assert forgotten == 2
    assert set(versions.entries()) == {b"a3"}  # a3's only event is before the time
    tombstones = [r.key for r in log.records(FLOW.versions_topic) if r.value is None]
    assert tombstones == [b"a1", b"a2"]
    assert groups.offsets[(FLOW.group, FLOW.topic)] == {0: 1}
    assert journal[-1].startswith("commit"), "offsets move only after the versions are gone"


async def test_a_running_flow_is_refused() -> None:
    groups = MemoryGroups()
    groups.running[FLOW.group] = ["bridge-accounts"]
    with pytest.raises(ConfigError, match="stop the bridge, replay, then start it again"):
        await refuse_if_running(FLOW, groups)
    await refuse_if_running(FLOW, MemoryGroups())


def test_the_resets_table_shows_missing_offsets_as_dashes() -> None:
    result = ReplayResult([PartitionReset(0, 10, 4, 12, 4), PartitionReset(1, None, None, 0, None)])
    out = io.StringIO()
    Console(file=out, width=200).print(resets_table(FLOW, result))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines] == [
        ["0", "10", "4", "4", "12", "6"],
        ["1", "-", "-", "-", "0", "0"],
    ]
