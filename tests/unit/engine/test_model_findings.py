"""Engine bugs the model (test_model.py) found, each reduced to its smallest reproduction
and kept as a regression test now that the engine is fixed. The model checks the same
properties among all the others: a stopped or killed process leaves no task running, and
late or waiting changes never bring back a record deleted without a version.
"""

from __future__ import annotations

import asyncio

from tests.support.engine_world import (
    ACCOUNT,
    CONTACT,
    MemoryBus,
    World,
    expected_customers,
    expected_persons,
    held,
    versioned,
)


async def test_a_stopped_process_applies_nothing_after_its_partitions_moved() -> None:
    """A process stops while its write of version 1 is slow; the next owner writes version
    2; the stopped process's write of version 1 must not land after it."""
    world = World(MemoryBus())
    try:
        await world.start_worker("w1")
        world.target.hang_seconds = 0.2
        first = world.source.change(ACCOUNT, "a-1", accountnumber="A-1", name=versioned("a", 1))
        await world.publish(ACCOUNT, first)
        await asyncio.sleep(0.05)  # w1 is inside the slow write of version 1
        await world.stop_worker("w1")
        await world.publish(ACCOUNT, world.source.change(ACCOUNT, "a-1", name=versioned("a", 2)))
        await world.start_worker("w2")
        await world.drain()
        await asyncio.sleep(0.3)  # the stopped process's write of version 1 completes now
        assert held(world.target, "Customers") == expected_customers(world.source)
    finally:
        await world.stop()


async def test_a_late_change_does_not_resurrect_a_record_deleted_without_a_version() -> None:
    """Change tracking reports a delete (no version) before the webhook of the record's
    creation arrives: the late creation must not bring the deleted record back."""
    world = World(MemoryBus())
    try:
        await world.start_worker("w1")
        created = world.source.change(ACCOUNT, "a-1", accountnumber="A-1", name="v1")
        deleted = world.source.delete("a-1", versioned_delete=False)
        await world.publish(ACCOUNT, deleted)
        await world.publish(ACCOUNT, created)
        await world.drain()
        assert held(world.target, "Customers") == expected_customers(world.source) == {}
    finally:
        await world.stop()


async def test_a_waiting_change_does_not_resurrect_a_contact_deleted_without_a_version() -> None:
    """A contact waits in the retry topic for its account; change tracking reports its
    delete; when the account arrives, no contact person may be created for it."""
    world = World(MemoryBus())
    try:
        await world.start_worker("w1")
        source = world.source
        contact = source.change(CONTACT, "c-1", contactnumber="P-1", parentnumber="A-1")
        await world.publish(CONTACT, contact)
        await asyncio.sleep(0.05)  # the contact waits in the retry topic for A-1
        await world.publish(CONTACT, source.delete("c-1", versioned_delete=False))
        await asyncio.sleep(0.05)  # the delete is applied: there is nothing to delete yet
        await world.publish(ACCOUNT, source.change(ACCOUNT, "a-1", accountnumber="A-1"))
        await world.drain()
        assert held(world.target, "ContactPersons") == expected_persons(source) == {}
    finally:
        await world.stop()
