"""Wiring: build every component from the settings and run them together.

Nothing here decides anything about events; it only composes the components, each an async
context manager or a long-running task, in one ``AsyncExitStack`` and one ``TaskGroup``.
A task that crashes is restarted with back-off by :func:`supervise`, so one failing flow or
poller never stops the others.

Roles: ``ingest`` answers webhooks (any number of processes may) and, on the one process
that leads the deployment, runs the change-tracking pollers; ``apply`` runs one engine per
flow, sharing partitions with every other process through the flow's consumer group;
``all`` (the default) does both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Literal

import structlog

from bridge.admin.controls import FlowControls
from bridge.admin.guard import refuse_unprotected_admin
from bridge.admin.wiring import Admin, flow_controls
from bridge.config import Settings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import System
from bridge.dataverse.delta_poller import DeltaPoller
from bridge.dataverse.metadata import DataverseMetadata
from bridge.dataverse.reader import DataverseReader
from bridge.dataverse.sink import DataverseSink
from bridge.dataverse.source import DataverseSource
from bridge.engine.flow import Flow, all_templates, captured_entities, enabled_flows
from bridge.engine.runner import FlowEngine
from bridge.engine.versions import VersionTable
from bridge.errors import ConfigError, FlowBlocked, TransientError
from bridge.flows.lookups import LookupResolver
from bridge.flows.processor import ChildFlow, FlowContext, FlowProcessor, Identities
from bridge.fno.data_events import virtual_table
from bridge.fno.reader import FnoReader
from bridge.fno.sink import FnoSink
from bridge.fno.snapshot_poller import SnapshotDiffPoller
from bridge.fno.source import FnoSource
from bridge.fno.virtual_poller import VirtualTablePoller
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.leadership import LeaderElection
from bridge.kafka.publisher import EventPublisher
from bridge.kafka.state import StateStore
from bridge.kafka.stream import KafkaRecordStream, KafkaVersionLog
from bridge.kafka.topics import ensure_topics
from bridge.mapping.template import Template
from bridge.setup import register_push
from bridge.sinks.base import Sink
from bridge.sinks.batching import BatchedReads
from bridge.sources.base import Sources
from bridge.sources.receiver import WebhookReceiver

log = structlog.get_logger(__name__)

_RESTART_BACKOFF_MAX = 30.0


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run()`` until it returns; after an unexpected failure call it again, with
    back-off. ``run`` must build fresh resources on each call."""
    delay = 1.0
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("component_crashed", component=name, error=str(exc), restart_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_BACKOFF_MAX)


async def resolve_identities(reader: DataverseReader, fno: ApiClient) -> Identities:
    """The principals the bridge writes as: Dataverse ``WhoAmI`` and F&O's token ``oid``.

    Waits (with back-off) while a system is unreachable; wrong credentials are fatal.
    """
    delay = 0.5
    while True:
        try:
            sales_users = await bridge_sales_users(reader)
            oids = {
                str((await r.tokens.claims()).get("oid", "")).lower() for r in fno.registrations
            }
            break
        except TransientError as exc:
            log.warning("waiting_for_dynamics", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except FlowBlocked as exc:
            raise ConfigError(f"the bridge's credentials are refused: {exc}") from exc
    log.info("bridge_identities", sales_users=sorted(sales_users), fno_oids=sorted(oids))
    # F&O data events arrive through Dataverse and name the writer's Dataverse user (the
    # one with the writer's Entra object id): the bridge's F&O writes show its WhoAmI there
    fno_principals = frozenset((oids | sales_users) - {""})
    return Identities({System.SALES: frozenset(sales_users), System.FNO: fno_principals})


async def bridge_sales_users(reader: DataverseReader) -> set[str]:
    """The Dataverse user of every registration the bridge writes to Sales as."""
    client = reader.client
    users = set()
    for index in range(len(client.registrations)):
        body = await client.get_json("WhoAmI", registration=index)
        users.add(str(body["UserId"]).lower())
    return users


Role = Literal["ingest", "apply", "all"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """The live components shared by every flow of one process."""

    settings: Settings
    codec: EventCodec
    publisher: EventPublisher
    processors: dict[str, FlowProcessor]
    sources: Sources
    controls: FlowControls | None = None

    async def run_flow(self, flow: Flow) -> None:
        """Run one flow's engine until cancelled, with fresh Kafka clients."""
        kafka = self.settings.kafka
        async with KafkaVersionLog(kafka, flow.versions_topic) as version_log:
            engine = FlowEngine(
                flow,
                self.processors[flow.name],
                codec=self.codec,
                sender=self.publisher,
                versions=VersionTable(version_log),
                source=self.sources,
                settings=self.settings.flows,
                topic_prefix=kafka.topic_prefix,
                observer=self.controls.monitors[flow.name] if self.controls else None,
            )
            async with KafkaRecordStream(kafka, flow, engine) as stream:
                if self.controls is None:
                    await engine.run(stream)
                    return
                await self.controls.attach(engine)
                try:
                    await engine.run(stream)
                finally:
                    self.controls.detach(engine)


def build_processors(
    templates: dict[str, Template], sinks: dict[System, Sink], context: FlowContext
) -> dict[str, FlowProcessor]:
    """One processor per template, each knowing the line flows it cascades to."""
    processors = {}
    for template in templates.values():
        children = tuple(
            ChildFlow(
                child.flow,
                source_entity(
                    templates[child.flow].source.system, templates[child.flow].source.entity
                ),
                child.match,
            )
            for child in template.children
        )
        entity = source_entity(template.source.system, template.source.entity)
        processors[template.name] = FlowProcessor(
            template, sinks[template.target.system], entity, context, children
        )
    return processors


async def run_bridge(
    settings: Settings, *, role: Role = "all", started: asyncio.Event | None = None
) -> None:
    """Run the bridge until cancelled: receiver and pollers (``ingest``), one engine per
    flow (``apply``), or both."""
    refuse_unprotected_admin(settings.admin)
    flows = enabled_flows(settings)
    controls = flow_controls(flows)
    codec = EventCodec.from_directory(settings.schemas_dir)
    policy = RetryPolicy.from_settings(settings.retry)
    await ensure_topics(settings.kafka, flows)
    async with AsyncExitStack() as stack:
        sales = await stack.enter_async_context(
            ApiClient(settings.sales, settings.sales.api_path, policy)
        )
        fno = await stack.enter_async_context(
            ApiClient(settings.fno, settings.fno.api_path, policy)
        )
        reader, fno_reader = DataverseReader(sales), FnoReader(fno)
        clients = {"sales": sales, "fno": fno}
        await stack.enter_async_context(Admin(settings, role, flows, controls, clients))
        publisher = await stack.enter_async_context(EventPublisher(settings.kafka, codec))
        if role in ("ingest", "all") and settings.webhook.enabled:
            await stack.enter_async_context(
                WebhookReceiver(settings.webhook, publisher, reader, fno_reader)
            )
        async with asyncio.TaskGroup() as tasks:
            if role in ("ingest", "all") and settings.webhook.enabled:
                # the receiver serves from the exit stack; without this task an ingest
                # process with the pollers off would have nothing to wait for and exit
                tasks.create_task(asyncio.Event().wait(), name="webhook-receiver")
            if role in ("ingest", "all") and (
                settings.poller.enabled
                or settings.fno_poller.enabled
                or settings.leader.register_on_start
            ):
                entities = captured_entities(flows)
                readers = (reader, fno_reader)
                work = partial(
                    lead_deployment, settings, entities, (sales, fno), readers, publisher
                )
                tasks.create_task(run_for_leader(settings, work))
            if role in ("apply", "all"):
                metadata = DataverseMetadata(sales)
                # the engine confirms many first changes at once (a backlog): gathered
                source_reads = BatchedReads(sales, settings.bulk)
                stack.push_async_callback(source_reads.aclose)
                sources = Sources(
                    {
                        System.SALES: DataverseSource(reader, source_reads),
                        System.FNO: FnoSource(fno_reader),
                    }
                )
                context = FlowContext(
                    identities=await resolve_identities(reader, fno),
                    companies=settings.companies,
                    resolver=LookupResolver(sales, metadata, fno_reader),
                    sources=sources,
                )
                # entered on the outer stack: they close after the engines stopped, once
                # the calls they gathered are answered
                sinks: dict[System, Sink] = {
                    System.FNO: await stack.enter_async_context(FnoSink(fno, settings.bulk)),
                    System.SALES: await stack.enter_async_context(
                        DataverseSink(sales, metadata, settings.bulk)
                    ),
                }
                processors = build_processors(all_templates(settings), sinks, context)
                runtime = Runtime(settings, codec, publisher, processors, sources, controls)
                for flow in flows:
                    tasks.create_task(
                        supervise(f"flow:{flow.name}", lambda f=flow: runtime.run_flow(f))  # type: ignore[misc]
                    )
            log.info("bridge_started", role=role, flows=[f.name for f in flows])
            if started is not None:
                started.set()


async def run_for_leader(settings: Settings, work: Callable[[], Awaitable[None]]) -> None:
    """Take part in the deployment's leader election; run ``work`` while leading."""
    leader = settings.leader
    election = LeaderElection(
        settings.kafka,
        f"{settings.flows.consumer_group_prefix}.leader",
        session_timeout_ms=leader.session_timeout_ms,
        heartbeat_interval_ms=leader.heartbeat_interval_ms,
        rebalance_timeout_ms=leader.rebalance_timeout_ms,
    )
    async with election:
        await election.lead(work)


async def lead_deployment(
    settings: Settings,
    entities: list[SourceEntity],
    clients: tuple[ApiClient, ApiClient],
    readers: tuple[DataverseReader, FnoReader],
    publisher: EventPublisher,
) -> None:
    """What one process per deployment does: register the push notifications (when told
    to), poll Dataverse change tracking and, where enabled, diff F&O snapshots, with the
    delta links and hashes they keep."""
    if settings.leader.register_on_start:
        await register_push(settings, entities, *clients)
    sales, fno = readers
    async with StateStore(settings.kafka) as state, asyncio.TaskGroup() as tasks:
        for entity in entities:
            poller: DeltaPoller | SnapshotDiffPoller | VirtualTablePoller
            if entity.system is System.SALES and settings.poller.enabled:
                poller = DeltaPoller(settings.poller, entity, sales, publisher, state)
            elif entity.system is System.FNO and settings.fno_poller.enabled:
                poller = SnapshotDiffPoller(
                    settings.fno_poller, entity, fno, publisher, state, settings.companies
                )
            elif (
                entity.system is System.FNO
                and settings.fno.capture == "data-events"
                and settings.poller.enabled
                and virtual_table(entity) is not None
            ):
                poller = VirtualTablePoller(settings.poller, entity, sales, fno, publisher, state)
            else:
                continue
            tasks.create_task(
                supervise(f"poller:{entity.system.lower()}.{entity.name}", poller.run)
            )


async def start_bridge(settings: Settings, *, role: Role = "all") -> asyncio.Task[None]:
    """Start :func:`run_bridge` as a task and return once it runs; re-raise if it fails."""
    started = asyncio.Event()
    bridge = asyncio.create_task(run_bridge(settings, role=role, started=started), name="bridge")
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({waiter, bridge}, return_when=asyncio.FIRST_COMPLETED)
    if bridge.done():
        waiter.cancel()
        bridge.result()
    return bridge
