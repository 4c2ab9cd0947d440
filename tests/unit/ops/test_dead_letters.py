"""Dead letters: parsed, listed with their replay status, selected and re-published."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bridge.errors import ConfigError
from bridge.ops.dead_letters import (
    DeadLetter,
    advanced_marks,
    dead_letters_table,
    locate,
    parse_ref,
    read_dead_letters,
    replay,
    select,
)
from bridge.ops.headers import FORCE_HEADER, REPLAY_OF_HEADER
from bridge.ops.ports import RawRecord
from tests.unit.ops.fakes import MemoryGroups, MemoryTopics, RecordingSender, accounts_flow

FLOW = accounts_flow()
DLQ = FLOW.dead_letter_topic


def context_headers(stage: str = "map", offset: int = 7) -> tuple[tuple[str, bytes], ...]:
    return (
        ("dlq.flow", b"accounts"),
        ("dlq.stage", stage.encode()),
        ("dlq.error.class", b"MappingError"),
        ("dlq.error.message", b"CustomerAccount longer than 20 characters"),
        ("dlq.attempts", b"1"),
        ("dlq.original.topic", b"p2c.sales.account"),
        ("dlq.original.partition", b"1"),
        ("dlq.original.offset", str(offset).encode()),
        ("dlq.time", b"2026-01-01T00:00:00+00:00"),
    )


def letter(partition: int, offset: int, *, pending: bool = True) -> DeadLetter:
    record = RawRecord(DLQ, partition, offset, b"k", b"v", context_headers())
    return DeadLetter(record, {}, pending)


@pytest.mark.parametrize(
    ("text", "expected"), [("0:12", (0, 12)), (" 2:0 ", (2, 0)), ("10:999", (10, 999))]
)
def test_parse_ref(text: str, expected: tuple[int, int]) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["", "12", "a:1", "1:", ":1", "1:-2", "1;2"])
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="PARTITION:OFFSET"):
        parse_ref(text)


def test_a_dead_letter_exposes_its_context() -> None:
    record = RawRecord(DLQ, 1, 3, b"abc", b"v", (*context_headers(), (REPLAY_OF_HEADER, b"x:0:1")))
    dead = DeadLetter.of(record, replayed_below=2)
    assert dead.ref == "1:3"
    assert dead.get("stage") == "map"
    assert dead.get("error.class") == "MappingError"
    assert dead.get("nothing") == ""
    assert dead.key == "abc"
    assert dead.time == "2026-01-01T00:00:00+00:00"
    assert dead.replay_of == "x:0:1"
    assert dead.pending
    assert not DeadLetter.of(record, replayed_below=4).pending


async def test_read_dead_letters_marks_the_replayed_ones() -> None:
    topics, groups = MemoryTopics(), MemoryGroups()
    for offset in range(3):
        topics.append(
            DLQ, 0, b"v", headers=context_headers(offset=offset), timestamp_ms=10 + offset
        )
    topics.append(DLQ, 2, b"v", headers=context_headers(offset=9), timestamp_ms=5)
    groups.offsets[(FLOW.dead_letter_replay_group, DLQ)] = {0: 2}
    letters = await read_dead_letters(topics, groups, FLOW)
    assert [(d.ref, d.pending) for d in letters] == [
        ("2:0", True),
        ("0:0", False),
        ("0:1", False),
        ("0:2", True),
    ]


async def test_read_dead_letters_of_a_missing_topic_is_empty() -> None:
    assert await read_dead_letters(MemoryTopics(), MemoryGroups(), FLOW) == []


LETTERS = [letter(0, 0, pending=False), letter(0, 1), letter(0, 2), letter(1, 0)]


@pytest.mark.parametrize(
    ("refs", "pending", "chosen"),
    [
        ([], True, ["0:1", "0:2", "1:0"]),
        (["1:0", "0:0"], False, ["0:0", "1:0"]),
        (["0:2"], True, ["0:2"]),
    ],
)
def test_select(refs: list[str], pending: bool, chosen: list[str]) -> None:
    assert [d.ref for d in select(LETTERS, refs, pending=pending)] == chosen


def test_select_needs_refs_or_all() -> None:
    with pytest.raises(ConfigError, match="--all"):
        select(LETTERS, [], pending=False)


def test_select_rejects_unknown_refs() -> None:
    with pytest.raises(ConfigError, match="no dead letter 3:3"):
        select(LETTERS, ["0:1", "3:3"], pending=False)


@pytest.mark.parametrize(
    ("replayed", "marks"),
    [
        (["0:1", "0:2", "1:0"], {0: 3, 1: 1}),
        (["0:1"], {0: 2}),
        (["0:2"], {}),  # 0:1 still pending: the mark cannot pass it
        (["0:0"], {}),  # already below the mark
        ([], {}),
    ],
)
def test_advanced_marks(replayed: list[str], marks: dict[int, int]) -> None:
    done = [d for d in LETTERS if d.ref in replayed]
    assert advanced_marks(LETTERS, done) == marks


async def test_replay_republishes_to_the_source_topic_and_moves_the_marks() -> None:
    send, groups = RecordingSender(), MemoryGroups()
    chosen = select(LETTERS, [], pending=True)
    await replay(FLOW, LETTERS, chosen, send, groups)
    assert [(topic, key, value) for topic, value, key, _ in send.sent] == [
        (FLOW.topic, b"k", b"v")
    ] * 3
    replay_of = [dict(headers)[REPLAY_OF_HEADER] for *_, headers in send.sent]
    assert replay_of == [f"{DLQ}:0:1".encode(), f"{DLQ}:0:2".encode(), f"{DLQ}:1:0".encode()]
    assert all(dict(headers)[FORCE_HEADER] == b"1" for *_, headers in send.sent)
    assert all(not k.startswith("dlq.") for *_, headers in send.sent for k, _ in headers)
    assert groups.offsets[(FLOW.dead_letter_replay_group, DLQ)] == {0: 3, 1: 1}


def rendered(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=250).print(renderable)
    return out.getvalue()


def test_the_table_shows_status_replays_and_retry_origins() -> None:
    retry_headers = (
        *((k, v) for k, v in context_headers("dependency") if k != "dlq.original.topic"),
        ("dlq.original.topic", b"p2c.retry.accounts"),
        (REPLAY_OF_HEADER, f"{DLQ}:0:0".encode()),
    )
    letters = [
        DeadLetter.of(RawRecord(DLQ, 0, 0, b"acc-1", b"v", context_headers()), replayed_below=1),
        DeadLetter.of(RawRecord(DLQ, 0, 1, b"acc-1", b"v", retry_headers), replayed_below=1),
    ]
    text = rendered(dead_letters_table(FLOW, letters))
    assert f"{DLQ}: 2 dead letters, 1 pending" in text
    assert "replayed" in text and f"pending (replay of {DLQ}:0:0)" in text
    assert "1:7" in text and "p2c.retry.accounts:1:7" in text
    assert "CustomerAccount longer than 20 characters" in text


# --- copies of one original: a crash between sending a dead letter and recording it -------


def original_headers(
    offset: int, topic: bytes = b"p2c.sales.account", partition: bytes = b"1"
) -> tuple[tuple[str, bytes], ...]:
    replaced = {
        "dlq.original.topic": topic,
        "dlq.original.partition": partition,
        "dlq.original.offset": str(offset).encode(),
    }
    return tuple((k, replaced.get(k, v)) for k, v in context_headers())


async def dead_letters_of(
    *appended: tuple[int, int], marks: dict[int, int] | None = None
) -> tuple[list[DeadLetter], MemoryGroups]:
    """Dead letters appended as ``(dlq partition, original offset)``, in time order."""
    topics, groups = MemoryTopics(), MemoryGroups()
    for time, (partition, original) in enumerate(appended):
        headers = original_headers(original)
        topics.append(DLQ, partition, f"v{original}".encode(), headers=headers, timestamp_ms=time)
    groups.offsets[(FLOW.dead_letter_replay_group, DLQ)] = marks or {}
    return await read_dead_letters(topics, groups, FLOW), groups


async def test_copies_of_one_original_are_listed_once_as_the_first() -> None:
    letters, _ = await dead_letters_of((0, 7), (0, 8), (0, 7), (1, 7))
    assert [(d.ref, len(d.copies), d.record.value) for d in letters] == [
        ("0:0", 3, b"v7"),
        ("0:1", 1, b"v8"),
    ]
    assert [c.ref for c in letters[0].duplicates] == ["0:2", "1:0"]


@pytest.mark.parametrize(
    ("second", "collapsed"),
    [
        (original_headers(7), True),
        (original_headers(8), False),
        (original_headers(7, partition=b"2"), False),
        (original_headers(7, topic=b"p2c.retry.accounts"), False),
    ],
    ids=["same-original", "other-offset", "other-partition", "other-topic"],
)
async def test_the_original_topic_partition_and_offset_identify_a_dead_letter(
    second: tuple[tuple[str, bytes], ...], collapsed: bool
) -> None:
    topics = MemoryTopics()
    topics.append(DLQ, 0, b"v", headers=original_headers(7))
    topics.append(DLQ, 0, b"v", headers=second)
    letters = await read_dead_letters(topics, MemoryGroups(), FLOW)
    assert len(letters) == (1 if collapsed else 2)


async def test_dead_letters_without_their_original_are_never_collapsed() -> None:
    topics = MemoryTopics()
    for _ in range(2):
        topics.append(DLQ, 0, b"v", headers=(("dlq.stage", b"decode"),))
    assert [d.ref for d in await read_dead_letters(topics, MemoryGroups(), FLOW)] == ["0:0", "0:1"]


async def test_replay_all_replays_each_original_once_and_passes_every_copy() -> None:
    letters, groups = await dead_letters_of((0, 7), (0, 7), (0, 8), (0, 7))
    send = RecordingSender()
    chosen = select(letters, [], pending=True)
    await replay(FLOW, letters, chosen, send, groups)
    assert [value for _, value, _, _ in send.sent] == [b"v7", b"v8"]
    assert groups.offsets[(FLOW.dead_letter_replay_group, DLQ)] == {0: 4}


@pytest.mark.parametrize("refs", [["0:1"], ["0:0", "0:1"], ["0:1", "0:0", "0:1"]])
async def test_naming_any_copy_replays_its_original_once(refs: list[str]) -> None:
    letters, _ = await dead_letters_of((0, 7), (0, 7), (0, 8))
    assert [d.ref for d in select(letters, refs, pending=False)] == ["0:0"]


async def test_a_copy_dead_lettered_after_the_replay_is_not_replayed_again() -> None:
    letters, groups = await dead_letters_of((0, 7), (0, 8), (0, 7), marks={0: 1})
    assert [(d.ref, d.pending) for d in letters] == [("0:0", False), ("0:1", True)]
    chosen = select(letters, [], pending=True)
    assert [d.ref for d in chosen] == ["0:1"]
    await replay(FLOW, letters, chosen, RecordingSender(), groups)
    assert groups.offsets[(FLOW.dead_letter_replay_group, DLQ)] == {0: 2}


async def test_the_table_says_how_many_copies_were_collapsed() -> None:
    letters, _ = await dead_letters_of((0, 7), (0, 8), (0, 7))
    text = rendered(dead_letters_table(FLOW, letters))
    assert f"{DLQ}: 2 dead letters, 2 pending, 1 duplicate collapsed" in text
    assert "2 (also 0:2)" in text


async def test_show_finds_a_dead_letter_by_any_copy() -> None:
    letters, _ = await dead_letters_of((0, 7), (0, 8), (0, 7))
    found = locate(letters, "0:2")
    assert found is not None
    assert [d.ref for d in found] == ["0:0", "0:2"]
    assert locate(letters, "0:3") is None


async def test_the_first_copy_is_the_earliest_by_offset_within_one_millisecond() -> None:
    topics = MemoryTopics()
    for offset in range(11):
        original = 7 if offset in (2, 10) else 100 + offset
        topics.append(DLQ, 0, b"v", headers=original_headers(original), timestamp_ms=5)
    letters = await read_dead_letters(topics, MemoryGroups(), FLOW)
    collapsed = [d for d in letters if d.duplicates]
    assert [(d.ref, [c.ref for c in d.duplicates]) for d in collapsed] == [("0:2", ["0:10"])]
    assert [d.ref for d in letters][:3] == ["0:0", "0:1", "0:2"]
