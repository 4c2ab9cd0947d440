"""Which change events the publisher sends: each version once, each delete once, and a
record deleted and created again with the same key is published again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.kafka.publisher import PublishedVersions

TOPIC = "p2c.fno.product"


def change(
    version: int | None, operation: Operation = Operation.UPDATE, record: str = "usmf|p-1"
) -> ChangeEvent:
    """An event of ``record`` at ``version`` (a delete's version is its pre-image's, or the
    delete's own, as each source gives it; ``None`` when the source gives none)."""
    source = Source(
        system=System.FNO,
        entity="CDSReleasedDistinctProducts",
        record_id=record,
        change_time=datetime(2026, 1, 1, tzinfo=UTC),
        capture=Capture.BUSINESS_EVENT,
        record_version=version,
    )
    return ChangeEvent.create(source, operation)


def deleted(version: int | None = None, record: str = "usmf|p-1") -> ChangeEvent:
    return change(version, Operation.DELETE, record)


def published(versions: PublishedVersions, *events: ChangeEvent) -> list[bool]:
    """Claim each event in turn, as the publisher does; which ones would be sent."""
    return [versions.claim(TOPIC, event)[0] for event in events]


# --- the rules, one example each ---------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "sent"),
    [
        ([change(5), change(5)], [True, False]),
        ([change(5), change(4), change(6)], [True, False, True]),
        ([change(5), deleted(5), deleted(5)], [True, True, False]),
        ([change(5), deleted(5), deleted()], [True, True, False]),
        ([change(5), deleted(), deleted(5)], [True, True, False]),
        ([deleted(), deleted()], [True, False]),
    ],
    ids=[
        "a-version-once",
        "older-version-after-newer",
        "a-delete-once",
        "webhook-then-polled-delete",
        "polled-then-webhook-delete",
        "unknown-record-delete-once",
    ],
)
def test_each_version_and_each_delete_is_published_once(
    events: list[ChangeEvent], sent: list[bool]
) -> None:
    assert published(PublishedVersions(), *events) == sent


@pytest.mark.parametrize(
    ("events", "sent"),
    [
        ([change(5), deleted(5), change(9, Operation.CREATE)], [True, True, True]),
        ([change(5), deleted(6), change(7, Operation.CREATE)], [True, True, True]),
        ([change(5), deleted(), change(9, Operation.CREATE)], [True, True, True]),
        ([change(5), deleted(5), change(None, Operation.CREATE)], [True, True, True]),
        ([deleted(), change(3, Operation.CREATE)], [True, True]),
        ([change(5), deleted(5), change(9), deleted(9)], [True, True, True, True]),
        ([deleted(), change(None, Operation.CREATE), deleted()], [True, True, True]),
    ],
    ids=[
        "re-created-newer-than-the-pre-image",
        "re-created-newer-than-the-delete",
        "re-created-after-an-unversioned-delete",
        "re-created-without-a-version",
        "created-after-the-delete-of-an-unknown-record",
        "deleted-again-after-the-re-create",
        "deleted-again-after-an-unversioned-re-create",
    ],
)
def test_a_record_deleted_and_created_again_is_published_again(
    events: list[ChangeEvent], sent: list[bool]
) -> None:
    assert published(PublishedVersions(), *events) == sent


@pytest.mark.parametrize(
    ("events", "sent"),
    [
        ([change(5), deleted(5), change(5)], [True, True, False]),
        ([change(5), deleted(5), change(4)], [True, True, False]),
        ([change(5), deleted(8), change(7)], [True, True, False]),
        ([change(5), deleted(), change(5)], [True, True, False]),
        ([change(9, Operation.CREATE), deleted(5)], [True, False]),
    ],
    ids=[
        "late-duplicate-of-the-last-update",
        "late-older-update",
        "update-older-than-the-deletes-version",
        "late-update-after-an-unversioned-delete",
        "late-delete-of-an-earlier-life",
    ],
)
def test_what_precedes_a_delete_is_not_published_after_it(
    events: list[ChangeEvent], sent: list[bool]
) -> None:
    assert published(PublishedVersions(), *events) == sent


def test_a_delete_newer_than_the_last_known_version_is_a_new_delete() -> None:
    """Deleted at 5, then a delete whose pre-image is 8: the record lived again (its
    re-create is late or was missed), so this is the delete of its second life."""
    assert published(PublishedVersions(), change(5), deleted(5), deleted(8), change(7)) == [
        True,
        True,
        True,
        False,
    ]


def test_an_unversioned_event_does_not_hide_later_versions() -> None:
    assert published(PublishedVersions(), change(None), change(None), change(2)) == [
        True,
        True,
        True,
    ]


def test_records_and_topics_are_independent() -> None:
    versions = PublishedVersions()
    assert published(versions, deleted(record="a"), change(1, record="b")) == [True, True]
    assert versions.claim("another.topic", deleted(record="a"))[0]


# --- claim and release -------------------------------------------------------------------

PROBES = [change(v, op) for v in (None, 4, 5, 6, 9) for op in Operation]


def decisions(versions: PublishedVersions) -> list[bool]:
    return [versions.is_new(TOPIC, probe) for probe in PROBES]


@pytest.mark.parametrize(
    "history",
    [
        [],
        [change(5)],
        [change(5), deleted(5)],
        [change(5), deleted(5), change(9)],
        [deleted()],
    ],
)
@pytest.mark.parametrize("claimed", [change(6), change(9, Operation.CREATE), deleted(5), deleted()])
def test_a_released_claim_leaves_no_trace(history: list[ChangeEvent], claimed: ChangeEvent) -> None:
    versions = PublishedVersions()
    published(versions, *history)
    before = decisions(versions)
    is_new, previous = versions.claim(TOPIC, claimed)
    if is_new:
        versions.release(TOPIC, claimed, previous)
    assert decisions(versions) == before


def test_a_failed_re_create_is_published_when_sent_again() -> None:
    versions = PublishedVersions()
    published(versions, change(5), deleted(5))
    recreated = change(9, Operation.CREATE)
    is_new, previous = versions.claim(TOPIC, recreated)
    assert is_new
    versions.release(TOPIC, recreated, previous)
    assert published(versions, deleted(5), recreated, recreated) == [False, True, False]


def test_the_least_recently_published_record_is_forgotten() -> None:
    versions = PublishedVersions(capacity=2)
    published(versions, deleted(record="a"), change(1, record="b"), change(1, record="c"))
    assert published(versions, deleted(record="a"), change(1, record="c")) == [True, False]


# --- interleavings (hypothesis) ----------------------------------------------------------


@dataclass(frozen=True)
class Life:
    """The true history of one record: its events in the order they happened."""

    events: tuple[ChangeEvent, ...]


@st.composite
def lives(draw: st.DrawFn, record: str, *, versioned_deletes: bool = True) -> Life:
    """Updates, deletes and re-creates of one record with increasing versions, maybe
    starting before capture did (its first event is then an update or a delete). A delete's
    version is its pre-image's (Dataverse webhooks) or its own (F&O), drawn once per record;
    with ``versioned_deletes`` off, deletes carry none (Dataverse change tracking)."""
    own_delete_version = draw(st.booleans())
    version = draw(st.integers(1, 5))
    live = True
    events: list[ChangeEvent] = []
    if draw(st.booleans()):
        events.append(change(version, Operation.CREATE, record))
    for _ in range(draw(st.integers(0, 8))):
        if live and draw(st.booleans()):
            if own_delete_version:
                version += draw(st.integers(1, 3))
            events.append(deleted(version if versioned_deletes else None, record))
            live = False
        else:
            version += draw(st.integers(1, 3))
            operation = Operation.UPDATE if live else Operation.CREATE
            events.append(change(version, operation, record))
            live = True
    if not events:
        events.append(change(version, Operation.CREATE, record))
    return Life(tuple(events))


def expected(lives_: dict[str, Life], deliveries: list[ChangeEvent]) -> list[bool]:
    """The contract, from the true histories alone: a delivery is published exactly when
    nothing at least as recent in its record's history has been published before it."""
    published_up_to: dict[str, int] = {}
    outcome = []
    for event in deliveries:
        record = event.source.record_id
        position = lives_[record].events.index(event)
        is_new = position > published_up_to.get(record, -1)
        if is_new:
            published_up_to[record] = position
        outcome.append(is_new)
    return outcome


RECORDS = ("a", "b", "c")


@st.composite
def shuffled_deliveries(draw: st.DrawFn) -> tuple[dict[str, Life], list[ChangeEvent]]:
    """Every event of every record at least once, some several times, in any order."""
    lives_ = {record: draw(lives(record)) for record in RECORDS}
    events = [e for life in lives_.values() for e in life.events]
    duplicates = draw(st.lists(st.sampled_from(events), max_size=12))
    return lives_, draw(st.permutations(events + duplicates))


@settings(max_examples=400, deadline=None)
@given(shuffled_deliveries())
def test_shuffled_duplicated_deliveries_publish_each_newer_change_once(
    case: tuple[dict[str, Life], list[ChangeEvent]],
) -> None:
    lives_, deliveries = case
    versions = PublishedVersions()
    outcome = published(versions, *deliveries)
    assert outcome == expected(lives_, deliveries)
    sent = [e for e, is_new in zip(deliveries, outcome, strict=True) if is_new]
    assert len(sent) == len(set(sent)), "nothing is published twice"
    for life in lives_.values():
        assert sent.count(life.events[-1]) == 1, "every record ends as it truly is"


@st.composite
def in_order_deliveries(
    draw: st.DrawFn, *, versioned_deletes: bool
) -> tuple[dict[str, Life], list[ChangeEvent]]:
    """Each record's events in the order they happened, each delivered once or more in a
    row (a sender's retry, a poller re-reading a page), records interleaved."""
    lives_ = {r: draw(lives(r, versioned_deletes=versioned_deletes)) for r in RECORDS}
    queues = {
        r: [e for e in life.events for _ in range(draw(st.integers(1, 3)))]
        for r, life in lives_.items()
    }
    deliveries = []
    while any(queues.values()):
        record = draw(st.sampled_from([r for r, q in queues.items() if q]))
        deliveries.append(queues[record].pop(0))
    return lives_, deliveries


@settings(max_examples=300, deadline=None)
@given(st.booleans().flatmap(lambda v: in_order_deliveries(versioned_deletes=v)))
def test_in_order_deliveries_publish_the_whole_history_once(
    case: tuple[dict[str, Life], list[ChangeEvent]],
) -> None:
    lives_, deliveries = case
    outcome = published(PublishedVersions(), *deliveries)
    for record, life in lives_.items():
        sent = [
            e
            for e, is_new in zip(deliveries, outcome, strict=True)
            if is_new and e.source.record_id == record
        ]
        assert sent == list(life.events)
