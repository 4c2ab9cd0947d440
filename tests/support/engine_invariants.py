"""The engine's delivery contract as invariants of a :class:`ModelWorld`, each judged from
what the fake systems and the bus saw and what the test did in the source
(:class:`ChangeLedger`), never from the bridge's own bookkeeping (its versions topic).

Each check returns the violations it found, as readable lines (empty when it holds).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bridge.contract.envelope import ChangeEvent, Operation
from bridge.engine.dead_letters import dead_letter_context
from bridge.engine.flow import Flow
from bridge.engine.retries import attempts_of, retry_headers
from bridge.engine.stream import Partition, StreamRecord
from bridge.errors import UndecodableMessage
from tests.support.engine_model import (
    BRIDGE_FNO,
    ECHOES,
    ChangeLedger,
    ModelWorld,
    coordinates,
    target_key,
)
from tests.support.engine_world import (
    BRIDGE_USER,
    CODEC,
    COMPANY,
    expected_customers,
    expected_persons,
    held,
    version_of,
)

Origin = tuple[str, int, int]


class ContractJudge:
    """Checks the invariants of one model run."""

    def __init__(self, world: ModelWorld, ledger: ChangeLedger) -> None:
        self.world = world
        self.log = world.memory.log
        self.ledger = ledger
        self._decoded: dict[Origin, ChangeEvent | None] = {}
        self.excused: list[str] = []

    # --- reading the bus --------------------------------------------------------------

    def decoded(self, record: StreamRecord) -> ChangeEvent | None:
        """A record's event, or ``None`` when it is not one (decoded once per record)."""
        where = coordinates(record)
        if where not in self._decoded:
            try:
                self._decoded[where] = CODEC.decode(record.value or b"")
            except UndecodableMessage:
                self._decoded[where] = None
        return self._decoded[where]

    def dead_letters(self, flow: Flow) -> list[tuple[StreamRecord, dict[str, str]]]:
        """The flow's dead letters with their ``dlq.*`` context."""
        return [
            (r, dead_letter_context(r.headers)) for r in self.log.records(flow.dead_letter_topic)
        ]

    def dead_lettered(self, flow: Flow) -> list[Origin]:
        """The (topic, partition, offset) of every record the flow dead-lettered."""
        return [
            (c["original.topic"], int(c["original.partition"]), int(c["original.offset"]))
            for _, c in self.dead_letters(flow)
        ]

    def retry_copies(self, flow: Flow) -> set[tuple[Origin, int]]:
        """Each retry record as (its first original's coordinates, its attempt)."""
        return {(first_original(r), attempts_of(r)) for r in self.log.records(flow.retry_topic)}

    def unexpected_letter_of(self, flow: Flow, event: ChangeEvent) -> bool:
        """Whether ``event`` (this very change: same id and correlation) was dead-lettered
        because the target's answer made the bridge raise (stage ``unexpected``)."""
        for record, context in self.dead_letters(flow):
            letter = self.decoded(record)
            if (
                context["stage"] == "unexpected"
                and letter is not None
                and (letter.event_id, letter.correlation_id)
                == (event.event_id, event.correlation_id)
            ):
                return True
        return False

    # --- 1. the target ends as the source -------------------------------------------

    def target_matches_source(self) -> list[str]:
        """After a drain, each target record is what its final source record maps to,
        except a record whose newest change was dead-lettered on purpose (a garbage answer,
        stage ``unexpected``): it may hold an older state of the record, or nothing, and a
        dead letter carrying exactly that newest change must exist — nothing is lost
        silently."""
        problems = []
        source = self.world.source
        for flow_name, entity_set, expected in (
            ("customers", "Customers", expected_customers(source)),
            ("persons", "ContactPersons", expected_persons(source)),
        ):
            holds = held(self.world.target, entity_set)
            for number in sorted(expected.keys() | holds.keys()):
                body = holds.get(number)
                if body == expected.get(number):
                    continue
                record_id = self.ledger.targets[(entity_set, (COMPANY, number))]
                newest = self.ledger.newest(record_id)
                why = f"{entity_set} {number} holds {body}, the source says {expected.get(number)}"
                if not self.unexpected_letter_of(self.world.flow(flow_name), newest):
                    problems.append(f"{why}; its newest change is not dead-lettered")
                elif body is not None and not _older(version_of(body["Name"]), newest, self):
                    problems.append(f"{why}; it is not an older state of the record")
                else:
                    self.excused.append(why)
        return problems

    # --- 2. no record is created twice ----------------------------------------------

    def creates_bounded_by_source(self) -> list[str]:
        """Each target record was created at most as often as the test (re)created its
        source record: a deleted record is never resurrected by a stale event."""
        problems = []
        for where, created in self.world.target.creates.items():
            record_id = self.ledger.targets.get(where)
            allowed = self.world.source.creates[record_id] if record_id else 0
            if created > allowed:
                problems.append(f"{where} created {created} times, its source {allowed} times")
        return problems

    # --- 3. a dead letter per record at most ----------------------------------------

    def dead_letters_once(self) -> list[str]:
        """No source offset is dead-lettered twice (by the flow's dead-letter headers)."""
        problems = []
        for flow in self.world.flows:
            counts = Counter(self.dead_lettered(flow))
            problems += [
                f"{flow.name}: {o} dead-lettered {n} times" for o, n in counts.items() if n > 1
            ]
        return problems

    # --- 4. commits never pass an unsettled change ----------------------------------

    def commits_settled(self) -> list[str]:
        """Every record below a flow group's committed offset, in the flow's change topic
        and in its retry topic, is accounted for by :meth:`why_settled`."""
        problems = []
        for flow in self.world.flows:
            letters = set(self.dead_lettered(flow))
            copies = self.retry_copies(flow)
            committed = self.log.group(flow.group).committed
            for topic in flow.consumed_topics:
                for number, records in enumerate(self.log.topics.get(topic, [])):
                    for record in records[: committed.get(Partition(topic, number), 0)]:
                        if self.why_settled(flow, record, letters, copies) is None:
                            event = self.decoded(record)
                            problems.append(
                                f"{flow.name} committed {coordinates(record)} past an unsettled "
                                f"{_describe(event)}"
                            )
        return problems

    def why_settled(
        self,
        flow: Flow,
        record: StreamRecord,
        letters: set[Origin],
        copies: set[tuple[Origin, int]],
    ) -> str | None:
        """How a committed record was settled, or ``None`` when nothing shows it was:

        - **dead-lettered**: a dead letter of the flow names its coordinates
          (``dlq.original.*``);
        - **moved to the retry topic**: a retry record names the same first original (a copy
          of a copy keeps the first original's ``retry.original.*``) with the next attempt;
        - **an echo** (reverse flow only): it names one of the bridge's identities, so it is
          settled by being skipped (invariant 5 checks that nothing was written);
        - otherwise the target must show it (:meth:`reflected`).
        An undecodable record can only be settled by a dead letter.
        """
        if coordinates(record) in letters:
            return "dead-lettered"
        if (first_original(record), attempts_of(record) + 1) in copies:
            return "moved to the retry topic"
        event = self.decoded(record)
        if event is None:
            return None
        if flow.name == ECHOES.name:
            bridge = event.source.changed_by in (BRIDGE_FNO, BRIDGE_USER)
            return "an echo, skipped" if bridge else None
        return self.reflected(event)

    def reflected(self, event: ChangeEvent) -> str | None:
        """Whether the target shows a change as applied or superseded. Versions are global
        and grow, so a version names one life of the record (create … delete):

        - a create or update of version *v*: the target wrote version *v* or newer to the
          record at some point (its history); or the change's life was deleted in the
          source and the target holds nothing of that life now (no record, or a newer
          life's) — a delete superseded it;
        - a delete (versioned or not) of a life that ended at version *v*: the target holds
          nothing of that life now (no record, or one written at a version above *v*); or,
          for an unversioned delete only, the record was created again later, so the engine
          skipped the delete as contradicted by the source.
        """
        where = target_key(event)
        life = self.ledger.life_of(event)
        body = self.world.target.records.get(where)
        holds_none_of_life = body is None or version_of(body["Name"]) > life.last
        if event.operation is not Operation.DELETE:
            version = event.source.record_version or 0
            if self._newest_written(where) >= version:
                return f"version {version} or newer written"
            if life.delete is not None and holds_none_of_life:
                return "superseded by the delete of its life"
            return None
        if holds_none_of_life:
            return "the target holds nothing of the deleted life"
        recreated = self.ledger.recreated_after(life, event.source.record_id)
        if event.source.record_version is None and recreated:
            return "an unversioned delete of a record that exists again"
        return None

    def _newest_written(self, where: tuple[str, tuple[Any, ...]]) -> int:
        versions = [
            version_of(body["Name"])
            for es, key, body in self.world.target.history
            if (es, key) == where and body is not None
        ]
        return max(versions, default=-1)

    # --- 5. no echo ------------------------------------------------------------------

    def no_echo_applied(self) -> list[str]:
        """The reverse flow never called the Sales side and dead-lettered nothing: every
        F&O change in the model is the bridge's own write."""
        problems = []
        sales = self.world.sales_target
        if sales.calls or sales.history:
            problems.append(f"the reverse flow wrote to Sales: {sales.history}")
        letters = self.dead_letters(self.world.flow(ECHOES.name))
        if letters:
            problems.append(f"the reverse flow dead-lettered {[c for _, c in letters]}")
        return problems

    def while_running(self) -> list[str]:
        """The invariants that hold at any moment (2, 3, 4, 5)."""
        return (
            self.creates_bounded_by_source()
            + self.dead_letters_once()
            + self.commits_settled()
            + self.no_echo_applied()
        )


def first_original(record: StreamRecord) -> Origin:
    """The record a retry record was first copied from (itself when not a retry copy)."""
    retry = retry_headers(record.headers)
    if "original.topic" not in retry:
        return coordinates(record)
    return (
        retry["original.topic"],
        int(retry["original.partition"]),
        int(retry["original.offset"]),
    )


def _older(version: int, newest: ChangeEvent, judge: ContractJudge) -> bool:
    """Whether a held version is older than the newest change of its record (for a delete:
    not newer than the life it deleted)."""
    if newest.operation is Operation.DELETE:
        return version <= judge.ledger.life_of(newest).last
    return version < (newest.source.record_version or 0)


def _describe(event: ChangeEvent | None) -> str:
    if event is None:
        return "undecodable record"
    version = event.source.record_version
    return f"{event.operation} of {event.source.record_id} at version {version}"
