"""A model of the engine's delivery contract: random interleavings of source changes,
out-of-order and repeated deliveries, target faults, process crashes and rebalances, run
on the real engine (customers, persons and a reverse flow of echoes) on the in-memory bus.

The invariants are stated in :mod:`tests.support.engine_invariants`; those that hold at
any moment (2-5) are checked after every step, all of them after the final drain.
``P2C_MODEL_EXAMPLES`` sets how many examples run (``make chaos`` runs many more).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from structlog.testing import capture_logs

from bridge.engine.runner import FORCE_HEADER
from tests.support.engine_invariants import ContractJudge
from tests.support.engine_model import ChangeLedger, ModelWorld
from tests.support.engine_world import ACCOUNT, CONTACT, MemoryBus

T = TypeVar("T")

RECORDS = st.integers(min_value=0, max_value=2)
PROCESSES = ("w1", "w2")
DRAIN_SECONDS = 15.0
FAULT_ROUNDS = 15
"""At the end, F&O goes on failing the calls it was told to fail for up to this many 2 ms
rounds before it recovers."""


def account_id(number: str) -> str:
    """The Sales id of the account with this account number (``A-1`` → ``a-1``)."""
    return number.lower()


class EngineModel(RuleBasedStateMachine):
    """One bridge deployment (one or two processes) and a Sales org whose users create,
    update, delete and restore accounts and contacts while webhooks deliver late and twice,
    F&O misbehaves, and processes come and go."""

    def __init__(self) -> None:
        super().__init__()
        self._closing = contextlib.ExitStack()
        self.logs = self._closing.enter_context(capture_logs())
        self.loop = asyncio.new_event_loop()
        self.world = ModelWorld(MemoryBus(), self.loop)
        self.ledger = ChangeLedger()
        self.judge = ContractJudge(self.world, self.ledger)
        self.poison = 0

    def run(self, step: Awaitable[T]) -> T:
        """Run one step of async work on the example's loop (the engines run meanwhile)."""
        return self.loop.run_until_complete(step)

    # --- the source -------------------------------------------------------------------

    @rule(n=RECORDS)
    def change_account(self, n: int) -> None:
        """A user creates (or restores) or edits an account."""
        change = self.ledger.change(self.world.source, ACCOUNT, f"a-{n}", accountnumber=f"A-{n}")
        self.run(self.world.publish(ACCOUNT, change))

    @rule(n=RECORDS, parent=RECORDS)
    def change_contact(self, n: int, parent: int) -> None:
        """A user creates (or restores) a contact of an account that may not exist yet, or
        edits one."""
        record_id = f"c-{n}"
        fields: dict[str, Any] = {}
        if record_id not in self.world.source.records:
            fields = {"contactnumber": f"P-{n}", "parentnumber": f"A-{parent}"}
        change = self.ledger.change(self.world.source, CONTACT, record_id, **fields)
        self.run(self.world.publish(CONTACT, change))

    def _deletable_accounts(self) -> list[str]:
        """Live accounts no live contact points at (Dataverse restricts the others)."""
        parents = {account_id(p) for p in self._parents()}
        return [a for a in self.ledger.live(ACCOUNT, self.world.source) if a not in parents]

    def _parents(self) -> set[str]:
        return {
            self.world.source.records[c].image["parentnumber"]
            for c in self.ledger.live(CONTACT, self.world.source)
        }

    def _named_parents(self) -> set[str]:
        """Every account any contact ever named (deleted contacts' changes may still wait
        for theirs in the retry topic)."""
        return {
            change.image["parentnumber"]
            for changes in self.ledger.events.values()
            for change in changes
            if change.source.entity == CONTACT.entity
        }

    @precondition(lambda self: self._deletable_accounts())
    @rule(data=st.data(), versioned=st.booleans())
    def delete_account(self, data: st.DataObject, versioned: bool) -> None:
        """A user deletes an account; a webhook reports it with the version it had, change
        tracking without one."""
        record_id = data.draw(st.sampled_from(self._deletable_accounts()), label="account")
        delete = self.ledger.delete(self.world.source, record_id, versioned_delete=versioned)
        self.run(self.world.publish(ACCOUNT, delete))

    @precondition(lambda self: self.ledger.live(CONTACT, self.world.source))
    @rule(data=st.data(), versioned=st.booleans())
    def delete_contact(self, data: st.DataObject, versioned: bool) -> None:
        """A user deletes a contact (reported with or without its version)."""
        live = self.ledger.live(CONTACT, self.world.source)
        record_id = data.draw(st.sampled_from(live), label="contact")
        delete = self.ledger.delete(self.world.source, record_id, versioned_delete=versioned)
        self.run(self.world.publish(CONTACT, delete))

    @precondition(lambda self: self.ledger.events)
    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        """A webhook delivers an older change of a record late, or the same change twice."""
        record_id = data.draw(st.sampled_from(sorted(self.ledger.events)), label="record")
        changes = self.ledger.events[record_id]
        back = data.draw(st.integers(0, len(changes) - 1), label="changes back (0: the last)")
        change = changes[-1 - back]
        entity = ACCOUNT if change.source.entity == ACCOUNT.entity else CONTACT
        self.run(self.world.publish(entity, change))

    @rule()
    def foreign_record(self) -> None:
        """A foreign producer writes bytes that are no change event to the accounts topic."""
        self.poison += 1
        self.run(self.world.publish_raw(ACCOUNT, b"not avro", key=f"x-{self.poison}".encode()))

    # --- F&O --------------------------------------------------------------------------

    @rule(fault=st.sampled_from(["429", "503", "401", "garbage-200"]))
    def target_fails(self, fault: str) -> None:
        """The next F&O call fails: throttled, down, refusing credentials, or answering
        200 with a body that is not JSON (the record is dead-lettered)."""
        self.world.target.faults.append(fault)

    @rule(ms=st.integers(min_value=5, max_value=60))
    def target_is_slow(self, ms: int) -> None:
        """The next F&O call takes a while (well within the engine's batch budget)."""
        self.world.target.hang_seconds = ms / 1000

    # --- processes --------------------------------------------------------------------

    @precondition(lambda self: len(self.world.workers) < len(PROCESSES))
    @rule(data=st.data())
    def start_process(self, data: st.DataObject) -> None:
        """A bridge process starts and joins every flow's group (a rebalance)."""
        stopped = [p for p in PROCESSES if p not in self.world.workers]
        self.run(self.world.start_process(data.draw(st.sampled_from(stopped), label="process")))

    @precondition(lambda self: self.world.workers)
    @rule(data=st.data())
    def stop_process(self, data: st.DataObject) -> None:
        """A bridge process shuts down cleanly: its partitions move with callbacks, and
        nothing of it runs on to write after they moved."""
        name = data.draw(st.sampled_from(sorted(self.world.workers)), label="process")
        self._note_batch_in_flight("stopped", name)
        left = self.run(self.world.stop_process(name))
        assert not left, f"{name} stopped, yet its tasks {left} still run"

    @precondition(lambda self: self.world.workers)
    @rule(data=st.data())
    def kill_process(self, data: st.DataObject) -> None:
        """A bridge process is killed, possibly mid-batch: no callbacks, no flush."""
        name = data.draw(st.sampled_from(sorted(self.world.workers)), label="process")
        self._note_batch_in_flight("killed", name)
        left = self.run(self.world.kill_process(name))
        assert not left, f"{name} was killed, yet its tasks {left} still run"

    def _note_batch_in_flight(self, how: str, name: str) -> None:
        if self.world.batch_in_flight(name):
            event(f"a process {how} with a batch in flight")

    @rule(ms=st.integers(min_value=0, max_value=10))
    def time_passes(self, ms: int) -> None:
        """The engines run on their own for a few milliseconds."""
        self.run(asyncio.sleep(ms / 1000))

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def contract_holds_while_running(self) -> None:
        """Invariants 2-5 hold after every step."""
        problems = self.judge.while_running()
        assert not problems, "\n".join(problems)

    def teardown(self) -> None:
        """Drain and judge the end state (unless a step failed already), then stop every
        process and close the loop, leaving no task behind."""
        failed = sys.exc_info()[1] is not None  # a step failed: hypothesis calls us anyway
        try:
            if not failed:
                self.run(self._settle())
                problems = self.judge.target_matches_source() + self.judge.while_running()
                assert not problems, "\n".join(problems)
                self._note_coverage()
        finally:
            left = self._close()
        assert failed or not left, f"the model left tasks running: {left}"

    async def _settle(self) -> None:
        """F&O fails the calls it was told to fail and then recovers, a process runs, every
        account a contact ever named arrives (late prerequisites; without them a change that
        waits in the retry topic would wait seconds for its last attempt), the operator
        replays the dead letters those accounts' newest changes became, and everything
        drains."""
        world = self.world
        if not world.workers:
            await world.start_process(PROCESSES[0])
        for _ in range(FAULT_ROUNDS):
            if not world.target.faults:
                break
            await asyncio.sleep(0.002)
        world.target.faults.clear()
        world.target.hang_seconds = 0.0
        for parent in sorted(self._named_parents()):
            if account_id(parent) not in world.source.records:
                change = self.ledger.change(
                    world.source, ACCOUNT, account_id(parent), accountnumber=parent
                )
                await world.publish(ACCOUNT, change)
        customers = world.flow("customers")
        for parent in sorted(self._named_parents()):
            newest = self.ledger.newest(account_id(parent))
            if self.judge.unexpected_letter_of(customers, newest):
                await world.publish(ACCOUNT, newest, (FORCE_HEADER, b"1"))
        await world.drain(timeout=DRAIN_SECONDS)

    def _note_coverage(self) -> None:
        """Tell hypothesis' statistics which paths this example took."""
        for flow in self.world.flows:
            stages = sorted({c["stage"] for _, c in self.judge.dead_letters(flow)})
            for stage in stages:
                event(f"{flow.name}: dead letters ({stage})")
            if self.world.memory.log.records(flow.retry_topic):
                event(f"{flow.name}: waited in the retry topic")
        if self.judge.excused:
            event("a record holds an older state behind a dead-lettered newest change")
        seen = {entry["event"] for entry in self.logs}
        for name in ("commit_refused", "revoke_unclean", "flow_paused"):
            if name in seen:
                event(f"engine: {name}")
        reasons = {str(entry.get("reason", "")) for entry in self.logs}
        for reason in (
            "already deleted",
            "was deleted",
            "is older than",
            "exists again",
            "no longer exists",
        ):
            if any(reason in r for r in reasons):
                event(f"engine: skipped a change because it {reason}")

    def _close(self) -> list[str]:
        """Stop every process, cancel what is left (naming it), close the loop."""
        try:
            self.run(self.world.stop())
            left = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                self.run(asyncio.wait(left))
            return [t.get_name() for t in left]
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            self._closing.close()


EngineModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("P2C_MODEL_EXAMPLES", "200")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestEngineModel = EngineModel.TestCase
