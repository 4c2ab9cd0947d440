"""Kafka failures become the error tree; table cells stay one readable line."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from bridge.errors import TransientError
from bridge.http.retry import RetryPolicy
from bridge.kafka.ops import kafka_call
from bridge.ops.render import cell, clip

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)


class Flaky:
    """Raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_retriable_kafka_errors_are_retried() -> None:
    flaky = Flaky(KafkaConnectionError(), UnknownTopicOrPartitionError())
    assert await kafka_call(FAST, "read", flaky) == "ok"
    assert flaky.calls == 3


async def test_retriable_errors_that_persist_become_transient() -> None:
    flaky = Flaky(*(KafkaConnectionError() for _ in range(3)))
    with pytest.raises(TransientError, match="read: KafkaConnectionError"):
        await kafka_call(FAST, "read", flaky)


async def test_fatal_kafka_errors_are_not_retried() -> None:
    flaky = Flaky(TopicAuthorizationFailedError())
    with pytest.raises(TransientError, match="TopicAuthorizationFailedError") as caught:
        await kafka_call(FAST, "read", flaky)
    assert flaky.calls == 1
    assert isinstance(caught.value.__cause__, TopicAuthorizationFailedError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "∅"),
        ("", "''"),
        ("Bonn", "'Bonn'"),
        (0, "0"),
        (1.5, "1.5"),
        (True, "true"),
        ({"a": 1}, '{"a": 1}'),
        ("x" * 100, "'" + "x" * 78 + "…"),
    ],
)
def test_cell(value: Any, text: str) -> None:
    assert cell(value) == text


def test_clip_makes_one_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    assert clip("abcdef", 4) == "abc…"
