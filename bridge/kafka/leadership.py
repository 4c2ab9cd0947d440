"""Leader election through a Kafka consumer group: the member assigned the single partition
of ``<prefix>._bridge.leader`` is the leader and runs the leader's work.

Contract: within one group generation at most one process runs the work. The leader stops
its work, and waits for it to end, before it rejoins the group (aiokafka calls the
revocation callback before every rejoin), and before it leaves the group on a graceful
stop; a process that dies stops heartbeating and loses the partition after the session
timeout. What this cannot guarantee: a leader cut off from the broker keeps its work
running until it reaches the broker again and learns it was evicted (the classic group
protocol has no fencing, and aiokafka does not revoke on an expired session), so the work
must tolerate a short overlap; the bridge's pollers and registration are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ConsumerStoppedError, KafkaError, TopicAlreadyExistsError

from bridge.config import KafkaSettings
from bridge.contract import topics as contract_topics
from bridge.http.retry import RetryPolicy
from bridge.kafka.clients import connection_options, start_client, start_or_close, stop_client
from bridge.kafka.leader_assignor import LeaderAssignor

log = structlog.get_logger(__name__)

Work = Callable[[], Awaitable[None]]

_POLL_TIMEOUT_MS = 1_000


def leader_topic(settings: KafkaSettings) -> str:
    """The single-partition coordination topic; no record is ever written to it."""
    return contract_topics.leader_topic(settings.topic_prefix)


async def ensure_leader_topic(settings: KafkaSettings) -> None:
    """Create the coordination topic (one partition) unless it exists."""
    topic = leader_topic(settings)
    admin = AIOKafkaAdminClient(
        **connection_options(settings), client_id=f"{settings.client_id}-admin"
    )
    await start_or_close(admin.start, admin.close)
    try:
        if topic not in set(await admin.list_topics()):
            # another process may create it between our list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, 1, settings.replication_factor)])
            log.info("topics_created", topics=[topic])
    finally:
        await admin.close()


class LeaderWork:
    """Runs one work function for one term of leadership: :meth:`start` starts it,
    :meth:`stop` cancels it and returns only once it has ended.

    A crash is logged and the work restarted after a back-off (full jitter, doubling);
    a run that lasted longer than the back-off ceiling counts as healthy and resets it.
    A work that returns normally is finished for this term and not restarted.
    """

    def __init__(
        self,
        work: Work,
        backoff: RetryPolicy,
        *,
        slow_stop_seconds: float,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._work = work
        self._backoff = backoff
        self._slow_stop_seconds = slow_stop_seconds
        self._log = logger
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether a term's work (or its wait before a restart) is in progress."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the work for a new term; no-op if it is running."""
        if not self.running:
            self._task = asyncio.create_task(self._supervise(), name="leader-work")

    async def stop(self) -> None:
        """Cancel the work and wait until it has ended (logging if that is slow: past the
        group's rebalance timeout another member may lead while it still runs)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self._slow_stop_seconds)
        if not done:
            self._log.warning("leader_work_slow_to_stop", waited_seconds=self._slow_stop_seconds)
            await asyncio.wait({task})

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        crashes = 0
        while True:
            started = loop.time()
            try:
                await self._work()
            except Exception:
                healthy = loop.time() - started >= self._backoff.max_backoff
                crashes = 1 if healthy else crashes + 1
                delay = self._backoff.delay(crashes, None)
                self._log.exception(
                    "leader_work_crashed", crashes=crashes, restart_in_seconds=round(delay, 3)
                )
                await asyncio.sleep(delay)
            else:
                self._log.info("leader_work_finished")
                return


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Forwards aiokafka's rebalance callbacks; aiokafka awaits them in its coordination
    task, so the group does not move on before they return."""

    def __init__(
        self,
        on_assigned: Callable[[set[TopicPartition]], Awaitable[None]],
        on_revoked: Callable[[], Awaitable[None]],
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(assigned)


class LeaderElection:
    """Async context manager: one candidate in the leader election of ``group_id``.

    Entering creates the coordination topic if missing and connects; :meth:`lead` joins
    the group and runs the work while this process leads. Exiting stops the work, then
    leaves the group, so another member takes over within about one heartbeat interval.
    If the process dies instead, the broker moves leadership after ``session_timeout_ms``.

    ``session_timeout_ms`` must lie within the broker's ``group.min.session.timeout.ms``
    (6 s by default) and ``group.max.session.timeout.ms``; the default is that minimum.
    ``heartbeat_interval_ms`` bounds how late a member notices a rebalance.
    ``rebalance_timeout_ms`` is how long the broker waits for members to rejoin: a leader
    must stop its work within it, or the next leader may start while it still runs.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        *,
        session_timeout_ms: int = 6_000,
        heartbeat_interval_ms: int = 1_000,
        rebalance_timeout_ms: int = 10_000,
        restart_initial_seconds: float = 1.0,
        restart_max_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._topic = leader_topic(settings)
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._backoff = RetryPolicy(
            initial_backoff=restart_initial_seconds, max_backoff=restart_max_seconds
        )
        self._candidate = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self._log = log.bind(group=group_id, topic=self._topic, candidate=self._candidate)
        self._assignor = LeaderAssignor()
        self._consumer = AIOKafkaConsumer(
            **connection_options(settings),
            group_id=group_id,
            client_id=f"{settings.client_id}-leader",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            partition_assignment_strategy=(self._assignor,),
            # a topic created a moment ago may be missing from the first metadata answer;
            # without a short refresh the group would wait the default five minutes
            metadata_max_age_ms=3_000,
        )
        self._work: LeaderWork | None = None
        self._leading = False
        self._closing = False

    @property
    def is_leader(self) -> bool:
        """Whether this process holds leadership now (its work may be backing off)."""
        return self._leading

    @property
    def candidate(self) -> str:
        """This candidate's name in the logs: host, process id and a random suffix."""
        return self._candidate

    @property
    def topic(self) -> str:
        """The coordination topic."""
        return self._topic

    async def __aenter__(self) -> Self:
        try:
            await ensure_leader_topic(self._settings)
        except BaseException:
            await stop_client(self._consumer)  # created, never started: close it all the same
            raise
        await start_client(self._consumer)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._resign()

    async def lead(self, work: Work) -> None:
        """Take part in the election and run ``work()`` whenever this process leads.

        Runs until cancelled (or until the election is exited from another task). Each
        time leadership is gained a fresh ``work()`` starts; when it is lost the work is
        cancelled and awaited before the group may move on. Leaving ``lead`` stops the work
        and leaves the group. Call it once per election. Raises the consumer's
        non-retriable :class:`~aiokafka.errors.KafkaError` (a session timeout the broker
        refuses, an authorization failure).
        """
        if self._work is not None or self._closing:
            raise RuntimeError("lead() runs once per LeaderElection")
        slow_stop = self._rebalance_timeout_ms / 2_000
        self._work = LeaderWork(work, self._backoff, slow_stop_seconds=slow_stop, logger=self._log)
        self._consumer.subscribe([self._topic], listener=_Listener(self._gain, self._lose))
        try:
            await self._hold()
        finally:
            await self._resign()

    async def _hold(self) -> None:
        # aiokafka heartbeats in the background, but leaves the group of a consumer that
        # has not fetched for max_poll_interval_ms; the partition is paused, so these
        # calls only keep the member alive and surface coordination errors.
        while True:
            try:
                await self._consumer.getmany(timeout_ms=_POLL_TIMEOUT_MS)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                self._log.warning("leadership_coordination_error", error=repr(exc))
                await asyncio.sleep(_POLL_TIMEOUT_MS / 1_000)

    async def _gain(self, assigned: set[TopicPartition]) -> None:
        if not assigned or self._closing or self._work is None:
            return
        self._consumer.pause(*assigned)
        self._leading = True
        self._log.info("leadership_acquired")
        self._work.start()

    async def _lose(self, reason: str = "rebalance") -> None:
        if not self._leading:
            return
        self._leading = False
        if self._work is not None:
            await self._work.stop()
        self._log.info("leadership_lost", reason=reason)

    async def _resign(self) -> None:
        # the work stops before the LeaveGroup: aiokafka does not call the revocation
        # callback on stop, and the next leader is assigned as soon as we have left
        self._closing = True
        await self._lose("stopped")
        await stop_client(self._consumer)
