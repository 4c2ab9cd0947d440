"""Every Kafka topic name the bridge uses, derived from the topic prefix.

Change topics (``<prefix>.<system>.<entity>``) are the public contract other consumers read;
the rest are the bridge's own: per flow a retry, a dead-letter and a versions topic, plus the
shared state and leader topics. Change, retry and versions topics of a flow have the same
number of partitions and the same keys, so partition *n* of each holds the same records.
"""

from __future__ import annotations


def dead_letter_topic(prefix: str, flow: str) -> str:
    """The dead-letter topic of one flow."""
    return f"{prefix}.dlq.{flow}"


def retry_topic(prefix: str, flow: str) -> str:
    """The topic where one flow's events wait for a missing prerequisite."""
    return f"{prefix}.retry.{flow}"


def versions_topic(prefix: str, flow: str) -> str:
    """The compacted topic of one flow's per-record versions and settled offsets."""
    return f"{prefix}._bridge.versions.{flow}"


def state_topic(prefix: str) -> str:
    """The compacted topic holding shared state (delta links, backfill progress)."""
    return f"{prefix}._bridge.state"


def leader_topic(prefix: str) -> str:
    """The single-partition topic whose owner runs the once-per-deployment work."""
    return f"{prefix}._bridge.leader"
