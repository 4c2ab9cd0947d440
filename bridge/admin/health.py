"""The health of what surrounds the flows: consumer lag, Kafka, both targets, the state topic
and the capture paths (webhook receiver, pollers, delta links).

Lag is read from Kafka, not from the engines: per partition of a flow's change and retry
topics, the end offset minus the group's committed offset. So every process shows the lag of
the whole deployment, whichever partitions it owns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from bridge import metrics
from bridge.config import Settings
from bridge.engine.flow import Flow
from bridge.errors import BridgeError
from bridge.http.client import ApiClient
from bridge.kafka.ops import open_kafka
from bridge.kafka.state_follower import StateFollower

log = structlog.get_logger(__name__)

DELTA_PREFIX = "delta|"


class LagWatcher:
    """Reads every flow's consumer lag every ``interval`` seconds; run :meth:`run` as a task."""

    def __init__(self, settings: Settings, flows: Sequence[Flow]) -> None:
        self._settings = settings
        self._flows = list(flows)
        self.lag: dict[str, list[dict[str, Any]]] = {}
        self.refreshed_at: float | None = None
        self.error: str | None = None

    async def run(self) -> None:
        """Refresh until cancelled; a failure is kept as :attr:`error` and retried with the
        same clients (they reconnect by themselves: opening new ones while the broker is
        away would leave half-started clients behind)."""
        interval = self._settings.admin.lag_interval_seconds
        while True:
            try:
                async with open_kafka(self._settings) as (topics, groups):
                    while True:
                        await self._refresh_once(topics, groups)
                        await asyncio.sleep(interval)
            except BridgeError as exc:  # Kafka away while connecting: rare, try again later
                self._failed(exc)
                await asyncio.sleep(interval)

    async def _refresh_once(self, topics: Any, groups: Any) -> None:
        try:
            await self._refresh(topics, groups)
        except BridgeError as exc:
            self._failed(exc)

    def _failed(self, exc: BridgeError) -> None:
        self.error = str(exc)
        log.warning("lag_refresh_failed", error=self.error)

    async def _refresh(self, topics: Any, groups: Any) -> None:
        for flow in self._flows:
            rows = []
            for topic in flow.consumed_topics:
                ends: dict[int, int] = await topics.end_offsets(topic)
                committed: dict[int, int] = await groups.committed(flow.group, topic, list(ends))
                for partition, end in sorted(ends.items()):
                    done = committed.get(partition)
                    lag = end - (done or 0)
                    rows.append(
                        {
                            "topic": topic,
                            "partition": partition,
                            "end": end,
                            "committed": done,
                            "lag": lag,
                        }
                    )
                    metrics.CONSUMER_LAG.labels(flow.name, topic, str(partition)).set(lag)
            self.lag[flow.name] = rows
        self.refreshed_at = time.time()
        self.error = None

    def fresh(self) -> bool:
        """Whether Kafka answered the last refresh, recently."""
        if self.refreshed_at is None or self.error is not None:
            return False
        return time.time() - self.refreshed_at < 3 * self._settings.admin.lag_interval_seconds + 10


class TargetProbe:
    """Whether a Dynamics API answers: a token and the service document, cached 5 s."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._checked_at = 0.0
        self._result: tuple[bool, str] = (False, "not checked yet")

    async def check(self) -> tuple[bool, str]:
        """``(reachable, detail)``; at most one request every 5 seconds."""
        if time.monotonic() - self._checked_at < 5:
            return self._result
        try:
            async with asyncio.timeout(5):
                await self._client.request("GET", "")
            self._result = (True, "ok")
        except TimeoutError:
            self._result = (False, "no answer within 5 s")
        except BridgeError as exc:
            self._result = (False, str(exc)[:200])
        self._checked_at = time.monotonic()
        return self._result


def delta_token_time(link: str) -> datetime | None:
    """The time in a Dataverse delta link's ``$deltatoken`` (``<version>!<MM/dd/yyyy
    HH:mm:ss>``, UTC), or ``None`` when the link carries none."""
    tokens = parse_qs(urlsplit(link).query).get("$deltatoken")
    if not tokens or "!" not in tokens[0]:
        return None
    try:
        moment = datetime.strptime(tokens[0].split("!", 1)[1], "%m/%d/%Y %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def delta_links(
    values: Mapping[str, Any], written_at: Mapping[str, float], expiry_days: float, now: float
) -> list[dict[str, Any]]:
    """Each stored delta link's age against the change-tracking expiry (Dataverse's
    ``organization.expirechangetrackingindays``: a link older than that is refused and the
    poller must resync in full)."""
    rows = []
    for key, value in sorted(values.items()):
        if not key.startswith(DELTA_PREFIX) or not isinstance(value, str):
            continue
        issued = delta_token_time(value)
        issued_at = issued.timestamp() if issued else written_at.get(key, now)
        age = max(0.0, now - issued_at)
        rows.append(
            {
                "entity": key.removeprefix(DELTA_PREFIX).replace("|", "."),
                "issued_at": issued_at,
                "age_seconds": round(age, 1),
                "expires_in_seconds": round(expiry_days * 86400 - age, 1),
                "expiry_days": expiry_days,
            }
        )
    return rows


def capture_health(
    settings: Settings, role: str, follower: StateFollower | None, now: float
) -> dict[str, Any]:
    """The capture paths: the webhook receiver, this process's pollers, the delta links."""
    ingest = role in ("ingest", "all")
    return {
        "webhook": {
            "enabled": ingest and settings.webhook.enabled,
            "url": settings.webhook.url if ingest and settings.webhook.enabled else None,
        },
        "captures": [
            {"entity": entity, "capture": capture, "last_at": at}
            for (entity, capture), at in sorted(metrics.CAPTURE_TIMES.items())
        ],
        "pollers": [
            {
                "name": name,
                "last_round": poll.last_round,
                "last_success": poll.last_success,
                "error": poll.error,
            }
            for name, poll in sorted(metrics.POLL_ROUNDS.items())
        ],
        "delta_links": delta_links(
            follower.values if follower else {},
            follower.written_at if follower else {},
            settings.admin.change_tracking_expiry_days,
            now,
        ),
    }
