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
        topics.append(DLQ, 0, b"v", headers=context_headers(), timestamp_ms=10 + offset)
    topics.append(DLQ, 2, b"v", headers=context_headers(), timestamp_ms=5)
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
