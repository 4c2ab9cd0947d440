"""Wiring: build every component from the settings and run them together.

Nothing here decides anything about events; it only composes the components, each an async
context manager or a long-running task, in one ``AsyncExitStack`` and one ``TaskGroup``.
A task that crashes is restarted with back-off by :func:`supervise`, so one failing flow or
poller never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog

from bridge.config import Settings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import System
from bridge.errors import ConfigError, FlowBlocked, TransientError
from bridge.flows.lookups import LookupResolver
from bridge.flows.processor import FlowContext, FlowProcessor, Identities
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.consumer import FlowConsumer
from bridge.kafka.dead_letters import DeadLetters
from bridge.kafka.publisher import EventPublisher
from bridge.kafka.retries import RetryScheduler, retry_topic
from bridge.kafka.state import StateStore
from bridge.kafka.topics import dead_letter_topic, ensure_topics
from bridge.mapping.loader import load_templates
from bridge.mapping.template import Template
from bridge.metadata import DataverseMetadata
from bridge.sinks.base import Sink
from bridge.sinks.dataverse import DataverseSink
from bridge.sinks.fno import FnoSink
from bridge.sources.dataverse_reader import DataverseReader
from bridge.sources.delta_poller import DeltaPoller
from bridge.sources.fno_reader import FnoReader
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


def enabled_templates(settings: Settings) -> list[Template]:
    """The templates of the enabled flows, with the user's overrides applied."""
    templates = load_templates(settings.flows.templates_file)
    wanted = settings.flows.enabled if settings.flows.enabled is not None else list(templates)
    unknown = sorted(set(wanted) - set(templates))
    if unknown:
        raise ConfigError(f"unknown flows {unknown}; known: {sorted(templates)}")
    return [templates[name] for name in wanted if templates[name].enabled]


def flows_with_children(enabled: list[Template], every: dict[str, Template]) -> list[Template]:
    """The enabled templates plus the line templates their headers apply."""
    result = {t.name: t for t in enabled}
    pending = [c.flow for t in enabled for c in t.children]
    while pending:
        name = pending.pop()
        if name not in result:
            result[name] = every[name]
            pending.extend(c.flow for c in every[name].children)
    return list(result.values())


def captured_entities(templates: list[Template]) -> list[SourceEntity]:
    """The source entities the enabled flows read, in a stable order."""
    entities = {source_entity(t.source.system, t.source.entity) for t in templates}
    return sorted(entities, key=lambda e: (e.system, e.name))


async def resolve_identities(reader: DataverseReader, fno: ApiClient) -> Identities:
    """The principals the bridge writes as: Dataverse ``WhoAmI`` and F&O's token ``oid``.

    Waits (with back-off) while a system is unreachable; wrong credentials are fatal.
    """
    delay = 0.5
    while True:
        try:
            sales_user = await reader.whoami()
            oid = str((await fno.tokens.claims()).get("oid", "")).lower()
            break
        except TransientError as exc:
            log.warning("waiting_for_dynamics", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except FlowBlocked as exc:
            raise ConfigError(f"the bridge's credentials are refused: {exc}") from exc
    log.info("bridge_identities", sales_user=sales_user, fno_oid=oid or None)
    return Identities({System.SALES: frozenset({sales_user}), System.FNO: frozenset({oid} - {""})})


@dataclass(frozen=True, slots=True)
class Runtime:
    """The live components shared by every flow of one process."""

    settings: Settings
    codec: EventCodec
    state: StateStore
    publisher: EventPublisher
    context: FlowContext

    def flow_consumer(self, template: Template) -> FlowConsumer:
        """The consumer of one flow."""
        kafka = self.settings.kafka
        processor = self.context.processors[template.name]
        dead_letters = DeadLetters(
            dead_letter_topic(kafka, template.name), template.name, self.publisher.send_raw
        )
        retries = RetryScheduler(
            retry_topic(kafka, template.name), self.settings.flows, self.publisher.send_raw
        )
        return FlowConsumer(
            kafka=kafka,
            flows=self.settings.flows,
            topic=processor.entity.topic(kafka.topic_prefix),
            processor=processor,
            codec=self.codec,
            dead_letters=dead_letters,
            state=self.state,
            retries=retries,
        )


def build_processors(
    templates: dict[str, Template], sinks: dict[System, Sink], context: FlowContext
) -> None:
    """One processor per template (line flows too: headers apply them), into ``context``."""
    for template in templates.values():
        entity = source_entity(template.source.system, template.source.entity)
        context.processors[template.name] = FlowProcessor(
            template, sinks[template.target.system], entity, context
        )


async def run_bridge(settings: Settings, *, started: asyncio.Event | None = None) -> None:
    """Run the bridge until cancelled: receiver, pollers and one consumer per flow."""
    templates = enabled_templates(settings)
    all_templates = load_templates(settings.flows.templates_file)
    entities = captured_entities(flows_with_children(templates, all_templates))
    codec = EventCodec.from_directory(settings.schemas_dir)
    policy = RetryPolicy.from_settings(settings.retry)
    await ensure_topics(settings.kafka, [t.name for t in templates])
    async with AsyncExitStack() as stack:
        sales = await stack.enter_async_context(
            ApiClient(settings.sales, settings.sales.api_path, policy)
        )
        fno = await stack.enter_async_context(
            ApiClient(settings.fno, settings.fno.api_path, policy)
        )
        reader, fno_reader = DataverseReader(sales), FnoReader(fno)
        metadata = DataverseMetadata(sales)
        state = await stack.enter_async_context(StateStore(settings.kafka))
        publisher = await stack.enter_async_context(EventPublisher(settings.kafka, codec))
        context = FlowContext(
            identities=await resolve_identities(reader, fno),
            companies=settings.companies,
            applied_versions=state,
            resolver=LookupResolver(sales, metadata),
            readers={System.SALES: reader, System.FNO: fno_reader},
        )
        sinks: dict[System, Sink] = {
            System.FNO: FnoSink(fno),
            System.SALES: DataverseSink(sales, metadata),
        }
        build_processors(all_templates, sinks, context)
        runtime = Runtime(settings, codec, state, publisher, context)
        if settings.webhook.enabled:
            await stack.enter_async_context(
                WebhookReceiver(settings.webhook, publisher, reader, fno_reader)
            )
        async with asyncio.TaskGroup() as tasks:
            if settings.poller.enabled:
                for entity in (e for e in entities if e.system is System.SALES):
                    poller = DeltaPoller(settings.poller, entity, reader, publisher, state)
                    tasks.create_task(supervise(f"poller:{entity.name}", poller.run))
            for template in templates:
                tasks.create_task(
                    supervise(
                        f"flow:{template.name}",
                        lambda t=template: runtime.flow_consumer(t).run(),  # type: ignore[misc]
                    )
                )
            log.info("bridge_started", flows=[t.name for t in templates])
            if started is not None:
                started.set()


async def start_bridge(settings: Settings) -> asyncio.Task[None]:
    """Start :func:`run_bridge` as a task and return once it runs; re-raise if it fails."""
    started = asyncio.Event()
    bridge = asyncio.create_task(run_bridge(settings, started=started), name="bridge")
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({waiter, bridge}, return_when=asyncio.FIRST_COMPLETED)
    if bridge.done():
        waiter.cancel()
        bridge.result()
    return bridge
