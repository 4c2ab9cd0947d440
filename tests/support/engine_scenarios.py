"""The engine's delivery contract as scenarios, each run on the in-memory bus
(tests/unit/engine) and on the real broker (tests/integration/test_engine_on_kafka.py).

Every scenario judges the outcome by what the fake target accepted and what the test wrote
to the source, never by the bridge's own bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Operation
from bridge.engine.runner import CASCADE_HEADER, FORCE_HEADER
from tests.support.engine_world import (
    ACCOUNT,
    CODEC,
    CONTACT,
    CUSTOMERS,
    PERSONS,
    Bus,
    SalesSource,
    World,
    expected_customers,
    expected_persons,
    held,
    version_of,
    versioned,
)


async def newest_version_wins_over_a_waiting_retry_copy(world: World) -> None:
    """A contact waits in the retry topic for its customer while newer versions of it
    arrive: the newest is what F&O ends with, and no older version is written after it."""
    await world.start_worker("w1")
    source = world.source
    for n in range(1, 4):
        event = source.change(
            CONTACT, "c-1", contactnumber="P-1", parentnumber="A-1", fullname=versioned("c", n)
        )
        await world.publish(CONTACT, event)
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="Acme"))
    await world.drain()
    assert held(world.target, "ContactPersons") == expected_persons(source)
    written = [
        version_of(body["Name"])
        for es, _, body in world.target.history
        if es == "ContactPersons" and body
    ]
    assert written == sorted(written), f"an older version was written after a newer one: {written}"


async def a_retry_copy_and_a_newer_event_never_apply_concurrently(world: World) -> None:
    """An older version comes due in the retry topic in the same batch as a newer version
    on the change topic, and the older one's write is slow: the newer one still wins."""
    source, flow = world.source, world.flow("persons")
    source.change(ACCOUNT, "a-1", accountnumber="A-1")  # already synced, long ago:
    world.target.records[("Customers", ("usmf", "A-1"))] = {"CustomerAccount": "A-1"}
    older = source.change(
        CONTACT, "c-1", contactnumber="P-1", parentnumber="A-1", fullname=versioned("c", 1)
    )
    newer = source.change(CONTACT, "c-1", fullname=versioned("c", 2))
    await world.publish(CONTACT, newer)
    (published,) = await world.bus.records(flow.topic)
    due_now = [("retry.attempts", b"1"), ("retry.not_before", b"0")]
    payload = CODEC.encode(older, CONTACT)
    await world.bus.sender.send(
        flow.retry_topic, payload, older.key, due_now, partition=published.partition
    )
    world.target.hang_seconds = 0.2  # the first write (the older version's) is slow
    await world.start_worker("w1")
    await world.drain()
    assert held(world.target, "ContactPersons") == expected_persons(source)


async def a_stale_event_never_overwrites_a_newer_one(world: World) -> None:
    """Versions delivered out of order (an asynchronous webhook's late delivery, a
    redelivered older event): the target keeps the newest."""
    await world.start_worker("w1")
    source = world.source
    events = []
    for n in range(4):
        events.append(source.change(ACCOUNT, "a-1", accountnumber="A-1", name=versioned("a", n)))
    for event in (events[0], events[3], events[1], events[2]):
        await world.publish(ACCOUNT, event)
    await world.drain()
    assert held(world.target, "Customers") == expected_customers(source)
    assert world.target.creates[("Customers", ("usmf", "A-1"))] == 1


async def an_unversioned_snapshot_never_lowers_the_version(world: World) -> None:
    """A snapshot without a version (backfill, cascade, repair) is confirmed against the
    source, so an older image in it never overwrites a newer applied one, and an older
    versioned event that comes later is still stale."""
    await world.start_worker("w1")
    source = world.source
    old = source.change(ACCOUNT, "a-1", accountnumber="A-1", name="old")
    new = source.change(ACCOUNT, "a-1", name="new")
    await world.publish(ACCOUNT, new)
    await world.drain()
    snapshot = replace(
        old, operation=Operation.SNAPSHOT, source=replace(old.source, record_version=None)
    )
    await world.publish(ACCOUNT, snapshot, (FORCE_HEADER, b"1"))
    await world.publish(ACCOUNT, old)
    await world.drain()
    assert held(world.target, "Customers") == {"A-1": {"CustomerAccount": "A-1", "Name": "new"}}


async def a_dead_letter_is_sent_once_however_often_its_partition_rewinds(world: World) -> None:
    """A poison record behind a record whose target is down: the partition rewinds to the
    blocked record again and again, and the poison record is dead-lettered once."""
    await world.start_worker("w1")
    world.target.faults.extend(["503"] * 6)
    source = world.source
    for n in range(6):
        await world.publish(
            ACCOUNT, source.change(ACCOUNT, f"a-{n}", accountnumber=f"A-{n}", name=f"n{n}")
        )
        await world.publish_raw(ACCOUNT, b"not avro", key=f"x-{n}".encode())
    await world.drain()
    letters = await world.dead_letters("customers")
    origins = Counter(
        (c["original.topic"], c["original.partition"], c["original.offset"]) for _, c in letters
    )
    assert len(origins) == 6 and set(origins.values()) == {1}, origins
    assert {c["stage"] for _, c in letters} == {"decode"}
    assert held(world.target, "Customers") == expected_customers(source)


async def delete_then_recreate_with_the_same_key_is_applied(world: World) -> None:
    """A record deleted and created again with the same identity (a restored Dataverse
    record): the delete and the re-creation both reach the target, in order."""
    await world.start_worker("w1")
    source = world.source
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="v1"))
    await world.drain()
    await world.publish(ACCOUNT, source.delete("a-1"))
    await world.drain()
    assert held(world.target, "Customers") == {}
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="again"))
    await world.drain()
    assert held(world.target, "Customers") == expected_customers(source)
    assert world.target.creates[("Customers", ("usmf", "A-1"))] == 2


async def a_polled_delete_of_a_record_that_exists_again_is_skipped(world: World) -> None:
    """Change tracking reports a delete without a version; when it is applied the record
    was re-created already: the delete must not remove the new record."""
    await world.start_worker("w1")
    source = world.source
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="v1"))
    await world.drain()
    polled_delete = source.delete("a-1", versioned_delete=False)
    again = source.change(ACCOUNT, "a-1", accountnumber="A-1", name="again")
    await world.publish(ACCOUNT, again)
    await world.publish(ACCOUNT, polled_delete)
    await world.drain()
    assert held(world.target, "Customers") == expected_customers(source)


async def an_unexpected_exception_dead_letters_the_record_and_the_flow_goes_on(
    world: World,
) -> None:
    """A 200 answer whose body is not JSON makes the client raise ValueError: the record is
    dead-lettered (stage ``unexpected``) and the records after it are applied."""
    await world.start_worker("w1")
    world.target.faults.append("garbage-200")
    source = world.source
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="bad"))
    await world.drain()
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-2", accountnumber="A-2", name="fine"))
    await world.drain()
    letters = await world.dead_letters("customers")
    assert [(c["stage"], c["error.class"]) for _, c in letters] == [("unexpected", "ValueError")]
    assert held(world.target, "Customers") == {"A-2": {"CustomerAccount": "A-2", "Name": "fine"}}


async def a_refused_target_pauses_and_resumes_without_losing_anything(world: World) -> None:
    """401s and 429s pause the partition at the first unapplied record; nothing is
    dead-lettered and everything arrives."""
    await world.start_worker("w1")
    world.target.faults.extend(["401", "401", "429", "429", "401"])
    source = world.source
    for n in range(10):
        await world.publish(
            ACCOUNT, source.change(ACCOUNT, f"a-{n}", accountnumber=f"A-{n}", name=f"n{n}")
        )
    await world.drain()
    assert await world.dead_letters("customers") == []
    assert held(world.target, "Customers") == expected_customers(source)


async def an_apply_that_hangs_is_retried_within_the_batch_budget(world: World) -> None:
    """A target call that hangs longer than the batch budget is abandoned and retried;
    the flow does not stall behind it."""
    await world.start_worker("w1")
    world.target.hang_seconds = 30.0
    source = world.source
    for n in range(3):
        await world.publish(
            ACCOUNT, source.change(ACCOUNT, f"a-{n}", accountnumber=f"A-{n}", name=f"n{n}")
        )
    await world.drain(timeout=20)
    assert held(world.target, "Customers") == expected_customers(source)


async def two_workers_share_the_work_through_rebalances(world: World) -> None:
    """A second process joins mid-stream and the first leaves: every change arrives, each
    customer is created once, every dead letter once."""
    await world.start_worker("w1")
    source = world.source
    for n in range(20):
        await world.publish(
            ACCOUNT, source.change(ACCOUNT, f"a-{n}", accountnumber=f"A-{n}", name=f"n{n}")
        )
    await world.start_worker("w2")
    for n in range(20):
        await world.publish(ACCOUNT, source.change(ACCOUNT, f"a-{n}", name=f"m{n}"))
    await world.stop_worker("w1")
    for n in range(0, 20, 3):
        await world.publish(ACCOUNT, source.delete(f"a-{n}"))
    await world.drain()
    assert held(world.target, "Customers") == expected_customers(source)
    assert set(world.target.creates.values()) == {1}


class FrozenLines:
    """A reader of a header's lines that answers with the lines as they were when
    :meth:`freeze` was called (a cascade read that raced a newer line edit)."""

    def __init__(self, source: SalesSource) -> None:
        self._source = source
        self._frozen: list[dict[str, Any]] = []

    def freeze(self) -> None:
        """Remember the contacts as they are now."""
        records = self._source.records.values()
        self._frozen = [
            dict(r.image, versionnumber=r.version) for r in records if r.entity is CONTACT
        ]

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The frozen lines whose fields equal ``match``."""
        return [r for r in self._frozen if all(r.get(k) == v for k, v in match.items())]


CASCADING = {
    "customers": CUSTOMERS.override(
        {"children": [{"flow": "persons", "match": {"parentnumber": "accountnumber"}}]}
    ),
    "persons": PERSONS,
}


def cascading_world(bus: Bus) -> tuple[World, FrozenLines]:
    """A world whose customers flow cascades to its contact persons."""
    world = World(bus, templates=CASCADING)
    reader = FrozenLines(world.source)
    world.source.line_reader = reader
    return world, reader


async def a_cascaded_line_passes_the_line_flows_version_check(
    world: World, reader: FrozenLines
) -> None:
    """A header's change cascades its lines to the line flow: a line that only now
    qualifies is applied, and a cascade read older than the line's applied version never
    overwrites it."""
    await world.start_worker("w1")
    source = world.source
    line = source.change(
        CONTACT, "c-1", contactnumber="P-1", parentnumber="A-1", fullname=versioned("c", 1)
    )
    reader.freeze()  # the cascade will read version 1 of the line
    await world.publish(CONTACT, line)  # waits: its customer is not there yet
    newer = source.change(CONTACT, "c-1", fullname=versioned("c", 2))
    header = source.change(ACCOUNT, "a-1", accountnumber="A-1", name="Acme")
    await world.publish(ACCOUNT, header)  # applies, cascades the (old) line snapshot
    await world.drain()
    cascaded = [
        r
        for r in await world.bus.records(world.flow("persons").topic)
        if dict(r.headers).get(CASCADE_HEADER)
    ]
    assert cascaded, "the header published its lines to the line flow"
    await world.publish(CONTACT, newer)
    await world.drain()
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", name="Acme 2"))  # cascades v1 again
    await world.drain()
    assert held(world.target, "ContactPersons") == expected_persons(source)
    assert held(world.target, "ContactPersons")["P-1"]["Name"] == versioned("c", 2)


async def a_paused_flow_applies_nothing_until_resumed(world: World) -> None:
    """An operator pauses the customers flow: changes published meanwhile reach neither
    F&O nor the group's commits; after the resume every one of them is applied."""
    await world.start_worker("w1")
    source = world.source
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1", name="one"))
    await world.drain()
    engine = world.workers["w1"].engines["customers"]
    await engine.pause()
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-2", accountnumber="A-2", name="two"))
    await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", name="one, renamed"))
    await asyncio.sleep(1.5)  # many fetch turns of the paused engine
    assert held(world.target, "Customers") == {"A-1": {"CustomerAccount": "A-1", "Name": "one"}}
    assert (await world.backlog())["customers"] == 2
    engine.resume()
    await world.drain()
    assert held(world.target, "Customers") == expected_customers(source)


SCENARIOS = [
    a_paused_flow_applies_nothing_until_resumed,
    a_retry_copy_and_a_newer_event_never_apply_concurrently,
    newest_version_wins_over_a_waiting_retry_copy,
    a_stale_event_never_overwrites_a_newer_one,
    an_unversioned_snapshot_never_lowers_the_version,
    a_dead_letter_is_sent_once_however_often_its_partition_rewinds,
    delete_then_recreate_with_the_same_key_is_applied,
    a_polled_delete_of_a_record_that_exists_again_is_skipped,
    an_unexpected_exception_dead_letters_the_record_and_the_flow_goes_on,
    a_refused_target_pauses_and_resumes_without_losing_anything,
    an_apply_that_hangs_is_retried_within_the_batch_budget,
    two_workers_share_the_work_through_rebalances,
]
