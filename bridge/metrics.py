"""Prometheus metrics of one bridge process, and the small hooks that feed them.

Every metric lives in :data:`REGISTRY` (not prometheus-client's global one, so nothing else a
process imports leaks into ``/metrics``). Components call the hook functions below, never the
metric objects, so the names and labels are defined here once:

=====================================  =========  ==========================================
Metric                                 Type       Labels
=====================================  =========  ==========================================
``bridge_events_captured_total``       counter    ``entity`` (system.entity), ``capture``
``bridge_events_published_total``      counter    ``entity``
``bridge_events_applied_total``        counter    ``flow``
``bridge_events_skipped_total``        counter    ``flow``, ``reason`` (digits as ``N``)
``bridge_events_dead_lettered_total``  counter    ``flow``, ``stage``, ``error``
``bridge_apply_latency_seconds``       histogram  ``flow``: publish → applied
``bridge_consumer_lag``                gauge      ``flow``, ``topic``, ``partition``
``bridge_http_throttled_total``        counter    ``target`` (``sales``/``fno``): 429s
``bridge_http_retries_total``          counter    ``target``: attempts after the first
``bridge_token_refreshes_total``       counter    ``target``
``bridge_poll_last_success_seconds``   gauge      ``poller``: Unix time of the last good round
``bridge_flow_paused``                 gauge      ``flow``: 1 while an operator paused it
=====================================  =========  ==========================================

Label values are bounded: flows, entities, stages and targets are finite, and a skip reason
has its numbers replaced, so a version number never becomes a time series.
"""

from __future__ import annotations

import re
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.config import ApiSettings

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

CAPTURED = Counter(
    "bridge_events_captured",
    "Change events captured (before de-duplication)",
    ["entity", "capture"],
    registry=REGISTRY,
)
PUBLISHED = Counter(
    "bridge_events_published",
    "Change events acknowledged by Kafka (new versions only)",
    ["entity"],
    registry=REGISTRY,
)
APPLIED = Counter("bridge_events_applied", "Events applied", ["flow"], registry=REGISTRY)
SKIPPED = Counter(
    "bridge_events_skipped", "Events skipped, by reason", ["flow", "reason"], registry=REGISTRY
)
DEAD_LETTERED = Counter(
    "bridge_events_dead_lettered",
    "Events sent to the dead letters, by stage and error class",
    ["flow", "stage", "error"],
    registry=REGISTRY,
)
APPLY_LATENCY = Histogram(
    "bridge_apply_latency_seconds",
    "Seconds from an event's publication to its application",
    ["flow"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "bridge_consumer_lag",
    "Records not yet committed by the flow's consumer group",
    ["flow", "topic", "partition"],
    registry=REGISTRY,
)
THROTTLED = Counter(
    "bridge_http_throttled", "HTTP 429 answers from a target", ["target"], registry=REGISTRY
)
RETRIES = Counter(
    "bridge_http_retries", "Retried HTTP attempts to a target", ["target"], registry=REGISTRY
)
TOKEN_REFRESHES = Counter(
    "bridge_token_refreshes", "Access tokens fetched", ["target"], registry=REGISTRY
)
POLL_SUCCESS = Gauge(
    "bridge_poll_last_success_seconds",
    "Unix time of a poller's last successful round",
    ["poller"],
    registry=REGISTRY,
)
FLOW_PAUSED = Gauge(
    "bridge_flow_paused", "1 while an operator paused the flow", ["flow"], registry=REGISTRY
)

_DIGITS = re.compile(r"\d+")


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)


def target_name(settings: ApiSettings) -> str:
    """The ``target`` label of an API: ``sales`` or ``fno`` (the settings class says which)."""
    return type(settings).__name__.removesuffix("Settings").lower() or "api"


def reason_label(reason: str) -> str:
    """A skip reason as a bounded label value: numbers replaced, at most 60 characters."""
    return _DIGITS.sub("N", reason)[:60]


# --- hooks ----------------------------------------------------------------------------------


def captured(entity: str, capture: str, count: int = 1) -> None:
    """``count`` change events of ``entity`` were captured by ``capture``."""
    CAPTURED.labels(entity, capture).inc(count)
    CAPTURE_TIMES[(entity, capture)] = time.time()


def published(entity: str, count: int) -> None:
    """Kafka acknowledged ``count`` new events of ``entity``."""
    if count:
        PUBLISHED.labels(entity).inc(count)


def http_answered(target: str, status: int) -> None:
    """A target answered ``status`` (only 429s are counted)."""
    if status == 429:
        THROTTLED.labels(target).inc()


def http_retried(target: str) -> None:
    """A request to ``target`` is attempted again."""
    RETRIES.labels(target).inc()


def token_refreshed(target: str) -> None:
    """A new access token for ``target`` was fetched."""
    TOKEN_REFRESHES.labels(target).inc()


def poll_finished(poller: str, error: str | None) -> None:
    """A poller finished one round, successfully when ``error`` is ``None``."""
    now = time.time()
    if error is None:
        POLL_SUCCESS.labels(poller).set(now)
    previous = POLL_ROUNDS.get(poller)
    last_ok = now if error is None else (previous.last_success if previous else None)
    POLL_ROUNDS[poller] = PollRound(now, last_ok, error)


class PollRound:
    """The last round of one poller, as the status page shows it."""

    __slots__ = ("error", "last_round", "last_success")

    def __init__(self, last_round: float, last_success: float | None, error: str | None) -> None:
        self.last_round = last_round
        self.last_success = last_success
        self.error = error


CAPTURE_TIMES: dict[tuple[str, str], float] = {}
"""When each (entity, capture path) last captured a change, Unix seconds."""
POLL_ROUNDS: dict[str, PollRound] = {}
"""The last round of each poller of this process."""
