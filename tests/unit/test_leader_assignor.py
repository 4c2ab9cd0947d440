"""The leader assignor: every partition to one member, kept by the member that held it."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from bridge.kafka.leader_assignor import HELD, LeaderAssignor, choose_leader

TOPIC = "p2c._bridge.leader"


@pytest.mark.parametrize(
    ("claims", "leader"),
    [
        ({}, None),
        ({"m-b": False}, "m-b"),
        ({"m-b": False, "m-a": False}, "m-a"),
        ({"m-a": False, "m-b": True}, "m-b"),
        ({"m-c": True, "m-a": False, "m-b": True}, "m-b"),
    ],
    ids=["empty", "alone", "newcomers", "holder-stays", "two-claims"],
)
def test_choose_leader(claims: dict[str, bool], leader: str | None) -> None:
    assert choose_leader(claims) == leader


class Cluster:
    """Cluster metadata that knows some topics' partitions."""

    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


def member(*, held: bool = False) -> ConsumerProtocolMemberMetadata:
    return ConsumerProtocolMemberMetadata(0, [TOPIC], HELD if held else b"")


def owned(assignment: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Each member's partitions."""
    return {m: [(tp.topic, tp.partition) for tp in a.partitions()] for m, a in assignment.items()}


def test_the_holder_keeps_every_partition_when_a_member_joins() -> None:
    members = {"m-a": member(), "m-z": member(held=True)}
    assignment = LeaderAssignor().assign(Cluster({TOPIC: {0}}), members)
    assert owned(assignment) == {"m-a": [], "m-z": [(TOPIC, 0)]}


def test_every_partition_goes_to_one_member_even_on_a_wider_topic() -> None:
    members = {"m-b": member(), "m-a": member()}
    assignment = LeaderAssignor().assign(Cluster({TOPIC: {2, 0, 1}}), members)
    assert owned(assignment) == {"m-a": [(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)], "m-b": []}


def test_an_unknown_topic_assigns_nothing_yet() -> None:
    assignment = LeaderAssignor().assign(Cluster({}), {"m-a": member()})
    assert owned(assignment) == {"m-a": []}


def test_a_member_claims_what_its_last_assignment_gave_it() -> None:
    assignor = LeaderAssignor()
    assert assignor.metadata([TOPIC]).user_data == b""
    won = LeaderAssignor().assign(Cluster({TOPIC: {0}}), {"m-a": member(), "m-b": member()})
    assignor.on_assignment(won["m-a"])
    assert assignor.held and assignor.metadata([TOPIC]).user_data == HELD
    assignor.on_assignment(won["m-b"])
    assert not assignor.held and assignor.metadata([TOPIC]).user_data == b""
