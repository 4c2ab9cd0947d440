"""Flow names resolve to their Kafka names; replay headers keep the original context."""

from __future__ import annotations

import pytest

import bridge.engine.runner
from bridge.config import FlowSettings, KafkaSettings, Settings
from bridge.engine.flow import resolve_flow
from bridge.errors import ConfigError
from bridge.ops.headers import FORCE_HEADER, REPLAY_OF_HEADER, header_value, replay_headers
from bridge.ops.ports import RawRecord


def test_a_flow_knows_its_topics_and_groups() -> None:
    settings = Settings(
        kafka=KafkaSettings(topic_prefix="acme"),
        flows=FlowSettings(consumer_group_prefix="b"),
    )
    flow = resolve_flow(settings, "accounts")
    assert flow.topic == "acme.sales.account"
    assert flow.group == "b.accounts"
    assert flow.dead_letter_topic == "acme.dlq.accounts"
    assert flow.retry_topic == "acme.retry.accounts"
    assert flow.versions_topic == "acme._bridge.versions.accounts"
    assert flow.dead_letter_replay_group == "b.accounts.dlq-replay"
    assert flow.companies == settings.companies


def test_an_unknown_flow_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown flow 'orders'; known: accounts"):
        resolve_flow(Settings(), "orders")


def test_replay_headers_drop_dead_letter_and_retry_state_and_mark_the_replay() -> None:
    letter = RawRecord(
        "p2c.dlq.accounts",
        2,
        41,
        b"k",
        b"v",
        (
            ("traceparent", b"00-abc"),
            ("retry.attempts", b"8"),
            ("retry.not_before", b"1790000000000"),
            ("dlq.stage", b"map"),
            ("dlq.error.class", b"MappingError"),
            (REPLAY_OF_HEADER, b"p2c.dlq.accounts:0:1"),
            (FORCE_HEADER, b"1"),
        ),
    )
    headers = replay_headers(letter)
    assert headers == [
        ("traceparent", b"00-abc"),
        (REPLAY_OF_HEADER, b"p2c.dlq.accounts:2:41"),
        (FORCE_HEADER, b"1"),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), None),
        ((("a", b"1"),), "1"),
        ((("a", b"1"), ("a", b"2")), "2"),
        ((("b", b"1"),), None),
    ],
)
def test_header_value_is_the_last_one(
    headers: tuple[tuple[str, bytes], ...], expected: str | None
) -> None:
    assert header_value(headers, "a") == expected


def test_the_force_header_is_the_one_the_engine_honours() -> None:
    assert bridge.engine.runner.is_forced([(FORCE_HEADER, b"1")])
