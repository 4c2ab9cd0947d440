"""The partition assignor of the leader election: every partition to one member, and to
the member that held them before if it is still in the group.

Kafka's built-in assignors would move leadership whenever a process joins (round robin
orders members by their random member ids), restarting the leader's work on another
machine for nothing; aiokafka's sticky assignor keeps its memory in class attributes,
shared by every consumer of the process. This one is an instance per consumer and pure:
the group leader's ``assign`` sees only the members' metadata, so it is tested without a
broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

HELD = b"bridge.leader.held"
"""A member's claim in its join metadata: it was assigned the partitions last time."""


class PartitionCatalog(Protocol):
    """What the assignor needs of aiokafka's cluster metadata."""

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The partition ids of ``topic``, or ``None`` while it is unknown."""
        ...


def choose_leader(claims: Mapping[str, bool]) -> str | None:
    """The member that gets every partition: a member that held them before, else any.

    ``claims`` maps member id to whether the member says it held the partitions. Among
    several claimants (a member evicted from the group still claims until its next
    assignment) and among newcomers the smallest member id wins, so every group leader
    computes the same answer. ``None`` for an empty group.
    """
    claimants = sorted(member for member, held in claims.items() if held)
    if claimants:
        return claimants[0]
    return min(claims, default=None)


class LeaderAssignor:
    """An aiokafka partition assignor (duck-typed, one instance per consumer)."""

    name = "bridge-leader"
    version = 0

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        """Whether the last assignment gave this member any partition."""
        return self._held

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        """The join metadata: the topics, and the claim if this member held them.

        Called when joining, after the revocation callback: the claim is about the
        previous generation, which is what stickiness needs.
        """
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), HELD if self._held else b""
        )

    def assign(
        self, cluster: PartitionCatalog, members: Mapping[str, Any]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        """Give every partition of every subscribed topic to :func:`choose_leader`'s member.

        A topic whose partitions are not known yet is left out; aiokafka rejoins the group
        when the metadata changes, so it is assigned then.
        """
        leader = choose_leader({member: meta.user_data == HELD for member, meta in members.items()})
        topics = sorted({topic for meta in members.values() for topic in meta.subscription})
        partitions = [
            (topic, sorted(cluster.partitions_for_topic(topic) or ())) for topic in topics
        ]
        owned = [(topic, ids) for topic, ids in partitions if ids]
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, owned if member == leader else [], b""
            )
            for member in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        """Remember whether this member got the partitions, for its next claim."""
        self._held = bool(assignment.partitions())
