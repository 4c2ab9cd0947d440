"""Asynchronous outbound HTTP deliveries (webhooks, business events).

Contract: :meth:`DeliveryDispatcher.submit` never blocks and never raises for delivery
problems. A delivery whose ``kind`` has a :class:`WorkerPool` goes to that pool's one queue,
served by ``workers`` concurrent tasks: deliveries overlap and finish in no guaranteed order
(Dataverse's asynchronous service, dynamics-apis.md A.9), and with a reorder window each waits
a random time before its first attempt, so close ones overtake each other. Any other delivery
goes to its channel's queue (a business-event endpoint), served by one task in submission
order. A delivery is retried per its :class:`RetryPolicy` by the task that holds it; the
outcome is appended to the :class:`DeliveryLog` and, on final failure, passed to the
delivery's ``on_failure`` callback. :meth:`DeliveryDispatcher.stop` cancels the workers and
closes the HTTP session, leaving no task behind.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed attempt is repeated.

    ``retry_statuses`` None retries any failure (non-2xx, timeout, connection error);
    otherwise only those statuses are retried (timeouts and connection errors are final).
    """

    max_retries: int
    interval_seconds: float
    timeout_seconds: float
    retry_statuses: frozenset[int] | None = None

    def should_retry(self, status: int | None, attempts: int) -> bool:
        """Whether attempt number ``attempts`` (1-based) that got ``status`` is retried."""
        if attempts > self.max_retries:
            return False
        if self.retry_statuses is None:
            return True
        return status is not None and status in self.retry_statuses


@dataclass(frozen=True)
class WorkerPool:
    """Concurrent delivery of one kind: ``workers`` tasks share a queue; each delivery waits
    a random ``0..reorder_window_seconds`` before its first attempt (``seed`` makes that
    reproducible)."""

    workers: int
    reorder_window_seconds: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """The final outcome of one delivery."""

    delivered: bool
    status: int | None
    attempts: int
    error: str | None


@dataclass(frozen=True)
class Delivery:
    """One outbound POST. ``display_url`` is the URL without secrets, for the log."""

    kind: str
    channel: str
    url: str
    display_url: str
    body: bytes
    headers: Mapping[str, str]
    policy: RetryPolicy
    meta: Mapping[str, Any] = field(default_factory=dict)
    on_failure: Callable[[Delivery, DeliveryResult], None] | None = None


class DeliveryLog:
    """Outcomes of finished deliveries, oldest first."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []

    def append(self, delivery: Delivery, result: DeliveryResult) -> None:
        """Record a finished delivery."""
        self._entries.append(
            {
                "id": len(self._entries) + 1,
                "kind": delivery.kind,
                "channel": delivery.channel,
                "url": delivery.display_url,
                "outcome": "delivered" if result.delivered else "failed",
                "status": result.status,
                "attempts": result.attempts,
                "error": result.error,
                "time": datetime.now(UTC).isoformat(),
                **delivery.meta,
            }
        )

    def entries(self) -> list[dict[str, Any]]:
        """Every entry."""
        return list(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


class DeliveryDispatcher:
    """Queues and workers per pool or channel; see the module docstring for the contract."""

    def __init__(
        self, delivery_log: DeliveryLog, pools: Mapping[str, WorkerPool] | None = None
    ) -> None:
        self._log = delivery_log
        self._pools = dict(pools or {})
        self._random = {kind: random.Random(pool.seed) for kind, pool in self._pools.items()}
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def submit(self, delivery: Delivery) -> None:
        """Queue ``delivery`` in its kind's pool, else behind earlier ones of its channel."""
        pool = self._pools.get(delivery.kind)
        name = f"pool:{delivery.kind}" if pool else delivery.channel
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = asyncio.Queue()
            for index in range(pool.workers if pool else 1):
                self._workers.append(
                    asyncio.create_task(
                        self._work(queue, delivery.kind if pool else None),
                        name=f"emulator-delivery-{name}-{index}",
                    )
                )
        queue.put_nowait(delivery)

    async def wait_idle(self) -> None:
        """Wait until every queued delivery has finished (wrap in ``asyncio.timeout``)."""
        seen = -1
        while seen != len(self._queues):
            seen = len(self._queues)
            for queue in list(self._queues.values()):
                await queue.join()

    async def stop(self) -> None:
        """Cancel the workers, drop queued deliveries and close the HTTP session."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self, queue: asyncio.Queue[Delivery], pool_kind: str | None) -> None:
        pool = self._pools.get(pool_kind) if pool_kind else None
        while True:
            delivery = await queue.get()
            try:
                if pool is not None and pool.reorder_window_seconds > 0:
                    rng = self._random[delivery.kind]
                    await asyncio.sleep(rng.uniform(0, pool.reorder_window_seconds))
                result = await self._deliver(delivery)
                self._finish(delivery, result)
            finally:
                queue.task_done()

    def _finish(self, delivery: Delivery, result: DeliveryResult) -> None:
        self._log.append(delivery, result)
        event = f"{delivery.kind}_delivered" if result.delivered else f"{delivery.kind}_failed"
        emit = log.debug if result.delivered else log.info
        emit(
            event,
            channel=delivery.channel,
            url=delivery.display_url,
            status=result.status,
            attempts=result.attempts,
            error=result.error,
        )
        if not result.delivered and delivery.on_failure is not None:
            try:
                delivery.on_failure(delivery, result)
            except Exception:
                log.exception("delivery_failure_handler_failed", channel=delivery.channel)

    async def _deliver(self, delivery: Delivery) -> DeliveryResult:
        attempts = 0
        while True:
            attempts += 1
            status, error = await self._attempt(delivery)
            if status is not None and 200 <= status < 300:
                return DeliveryResult(True, status, attempts, None)
            if not delivery.policy.should_retry(status, attempts):
                return DeliveryResult(False, status, attempts, error)
            await asyncio.sleep(delivery.policy.interval_seconds)

    async def _attempt(self, delivery: Delivery) -> tuple[int | None, str | None]:
        session = self._session_or_new()
        timeout = aiohttp.ClientTimeout(total=delivery.policy.timeout_seconds)
        try:
            async with session.post(
                delivery.url, data=delivery.body, headers=dict(delivery.headers), timeout=timeout
            ) as response:
                await response.read()
                error = None if response.status < 300 else f"HTTP {response.status}"
                return response.status, error
        except TimeoutError:
            return None, f"timed out after {delivery.policy.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            # aiohttp's message can quote the full URL, whose query may hold a webhook key
            return None, f"{type(exc).__name__}: {exc}".replace(delivery.url, delivery.display_url)

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session
