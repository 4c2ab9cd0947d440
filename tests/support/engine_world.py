"""A small world to run the real flow engine in: a Sales-like source, an F&O-like target,
flows, and bridge workers, on a record bus that is either in memory or the real broker.

The source and the target are fakes at the engine's seams (a ``SourceLookup`` and a
``Sink``); they keep what a test needs to judge the outcome independently of the bridge:
every write the target accepted (with the version the test encoded in the written name),
creates per key, and the source's own truth. Nothing here uses the bridge's mapping to
decide what the target should hold: :func:`expected_customers` says it directly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.config import CompanySettings, FlowSettings, KafkaSettings, Settings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.source import event_company as dataverse_company
from bridge.engine.dead_letters import dead_letter_context
from bridge.engine.flow import Flow, build_flow
from bridge.engine.memory import MemoryConsumer, MemoryLog, MemorySender, MemoryVersionLog
from bridge.engine.runner import FlowEngine
from bridge.engine.stream import (
    Headers,
    Partition,
    RebalanceListener,
    RecordSender,
    RecordStream,
    StreamRecord,
    VersionLog,
)
from bridge.engine.versions import VersionTable
from bridge.errors import DependencyMissing, FlowBlocked, TargetUnavailable, Throttled
from bridge.flows.processor import ChildFlow, FlowContext, FlowProcessor, Identities
from bridge.mapping.template import Template
from bridge.mapping.writes import TargetWrite, WriteKind
from bridge.sinks.base import ApplyOutcome, Sink
from bridge.sources.base import Sources

BRIDGE_USER = "b0000000-0000-0000-0000-00000000b0b0"
HUMAN = "a0000000-0000-0000-0000-00000000a0a0"
COMPANY = "usmf"
CODEC = EventCodec.from_directory()

CUSTOMERS = Template.model_validate(
    {
        "name": "customers",
        "title": "model: Sales accounts to F&O customers",
        "source": {"system": "SALES", "entity": "account"},
        "target": {
            "system": "FNO",
            "entity_set": "Customers",
            "key": ["dataAreaId", "CustomerAccount"],
            "company_field": "dataAreaId",
        },
        "fields": [
            {"target": "CustomerAccount", "source": "accountnumber", "required": True},
            {"target": "Name", "source": "name"},
        ],
        "apply_deletes": True,
    }
)
PERSONS = Template.model_validate(
    {
        "name": "persons",
        "title": "model: Sales contacts to F&O contact persons of a customer",
        "source": {"system": "SALES", "entity": "contact"},
        "target": {
            "system": "FNO",
            "entity_set": "ContactPersons",
            "key": ["dataAreaId", "ContactPersonId"],
            "company_field": "dataAreaId",
        },
        "fields": [
            {"target": "ContactPersonId", "source": "contactnumber", "required": True},
            {"target": "Name", "source": "fullname"},
            {"target": "CustomerAccount", "source": "parentnumber"},
        ],
        "requires": [
            {
                "entity_set": "Customers",
                "key": {"dataAreaId": "$company", "CustomerAccount": "parentnumber"},
            }
        ],
        "apply_deletes": True,
    }
)
TEMPLATES = {t.name: t for t in (CUSTOMERS, PERSONS)}
ACCOUNT = source_entity(System.SALES, "account")
CONTACT = source_entity(System.SALES, "contact")


def versioned(name: str, version: int) -> str:
    """A value that carries the version it was written at (so the target's history tells
    which version of the source it holds)."""
    return f"{name} @v{version}"


def version_of(value: Any) -> int:
    """The version a :func:`versioned` value was written at."""
    return int(str(value).rsplit("@v", 1)[1])


# --- the source -----------------------------------------------------------------------


@dataclass
class SourceRecord:
    """One live record of the fake Sales, with its row version."""

    entity: SourceEntity
    record_id: str
    image: dict[str, Any]
    version: int


class SalesSource:
    """A fake Dataverse: records with a global, increasing row version; changes come out
    as the change events its webhooks would publish. Also the engine's SourceLookup."""

    def __init__(self) -> None:
        self.records: dict[str, SourceRecord] = {}
        self.creates: Counter[str] = Counter()
        self._versions = itertools.count(1)

    def change(self, entity: SourceEntity, record_id: str, **fields: Any) -> ChangeEvent:
        """Create or update a record; return its change event."""
        version = next(self._versions)
        known = self.records.get(record_id)
        operation = Operation.UPDATE if known else Operation.CREATE
        if known is None:
            self.creates[record_id] += 1
        image = {**(known.image if known else {}), **fields}
        image[entity.id_attribute or ""] = record_id
        image["_owningbusinessunit_value"] = "bu-1"
        self.records[record_id] = SourceRecord(entity, record_id, image, version)
        return self._event(entity, record_id, operation, dict(image), version)

    def delete(self, record_id: str, *, versioned_delete: bool = True) -> ChangeEvent:
        """Delete a record; its event carries the pre-image's version like a webhook, or
        none like change tracking's ``$deletedEntity``."""
        known = self.records.pop(record_id)
        version = known.version if versioned_delete else None
        return self._event(known.entity, record_id, Operation.DELETE, dict(known.image), version)

    def _event(
        self,
        entity: SourceEntity,
        record_id: str,
        operation: Operation,
        image: dict[str, Any],
        version: int | None,
    ) -> ChangeEvent:
        source = Source(
            system=System.SALES,
            entity=entity.entity,
            record_id=record_id,
            business_key=entity.business_key_of(image),
            record_version=version,
            change_time=datetime.now(UTC),
            changed_by=HUMAN,
            capture=Capture.WEBHOOK,
        )
        if operation is Operation.DELETE:
            return ChangeEvent.create(source, operation, before=image)
        return ChangeEvent.create(source, operation, after=image)

    async def current(self, event: ChangeEvent) -> ChangeEvent | None:
        """The record as it is now (the engine's confirmation of unversioned events)."""
        known = self.records.get(event.source.record_id)
        if known is None:
            return None
        return self._event(
            known.entity, known.record_id, Operation.SNAPSHOT, dict(known.image), known.version
        )

    # the rest of the SourceSystem protocol

    line_reader: Any = None
    """Answers :meth:`children` instead of the live records when set (a stale read)."""

    def snapshot(
        self,
        entity: SourceEntity,
        record: Mapping[str, Any],
        header: ChangeEvent | None = None,
        capture: Capture = Capture.RECONCILE,
    ) -> ChangeEvent:
        """A record as Dataverse returns it (``versionnumber`` included) as a snapshot."""
        version = record.get("versionnumber")
        event = self._event(
            entity, entity.record_id(record), Operation.SNAPSHOT, dict(record), version
        )
        return replace(event, correlation_id=header.correlation_id) if header else event

    def company(self, event: ChangeEvent, companies: CompanySettings) -> str | None:
        """The company of the record's business unit, as for Dataverse."""
        return dataverse_company(event, companies)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Live records of ``entity`` whose fields equal ``match``."""
        if self.line_reader is not None:
            lines: list[dict[str, Any]] = await self.line_reader.children(entity, match)
            return lines
        return [
            dict(r.image, versionnumber=r.version)
            for r in self.records.values()
            if r.entity is entity and all(r.image.get(k) == v for k, v in match.items())
        ]


# --- the target -----------------------------------------------------------------------


class TargetFault(Protocol):
    """Raised into one target call."""

    def __call__(self) -> BaseException: ...


FAULTS: dict[str, Callable[[], BaseException]] = {
    "429": lambda: Throttled("429 Too Many Requests", retry_after=0.005),
    "503": lambda: TargetUnavailable("503 Service Unavailable"),
    "401": lambda: FlowBlocked("401 Unauthorized", status=401),
    # a 200 whose body is not JSON: the client's JSON parser raises outside the error tree
    "garbage-200": lambda: ValueError("Expecting value: line 1 column 1 (char 0)"),
}


@dataclass
class TargetStore:
    """A fake F&O: records by entity set and key, read-compare-write like the real sink,
    with injectable faults, latency, and a history of every accepted write."""

    records: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = field(default_factory=dict)
    creates: Counter[tuple[str, tuple[Any, ...]]] = field(default_factory=Counter)
    history: list[tuple[str, tuple[Any, ...], dict[str, Any] | None]] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    hang_seconds: float = 0.0
    calls: int = 0

    async def apply_all(self, writes: Sequence[TargetWrite]) -> list[ApplyOutcome]:
        """Apply the writes of one change in order (the engine's Sink)."""
        return [await self.apply(write) for write in writes]

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Make the record match ``write``."""
        self.calls += 1
        await asyncio.sleep(0)  # a request is in flight: other tasks run meanwhile
        if self.faults:
            raise FAULTS[self.faults.popleft()]()
        if self.hang_seconds:
            hang, self.hang_seconds = self.hang_seconds, 0.0
            await asyncio.sleep(hang)
        for entity_set, key in write.requires:
            if (entity_set, tuple(key.values())) not in self.records:
                raise DependencyMissing(f"{entity_set} {dict(key)} does not exist yet")
        where = (write.entity_set, tuple(write.key.values()))
        current = self.records.get(where)
        await asyncio.sleep(0)
        if write.kind is WriteKind.DELETE:
            if current is None:
                return ApplyOutcome.UNCHANGED
            del self.records[where]
            self.history.append((*where, None))
            return ApplyOutcome.DELETED
        body = dict(write.body)
        if current is None:
            self.records[where] = body
            self.creates[where] += 1
            self.history.append((*where, dict(body)))
            return ApplyOutcome.CREATED
        if all(current.get(k) == v for k, v in body.items()):
            return ApplyOutcome.UNCHANGED
        current.update(body)
        self.history.append((*where, dict(current)))
        return ApplyOutcome.UPDATED

    def customer(self, number: str) -> dict[str, Any] | None:
        """The customer with this account number, if present."""
        return self.records.get(("Customers", (COMPANY, number)))

    def person(self, number: str) -> dict[str, Any] | None:
        """The contact person with this number, if present."""
        return self.records.get(("ContactPersons", (COMPANY, number)))


# --- the bus: memory or Kafka ---------------------------------------------------------


class Bus(Protocol):
    """Where records live: the engine's ports plus what a test needs to look."""

    sender: RecordSender
    prefix: str
    group_prefix: str
    poll_interval: float

    def stream(self, flow: Flow, listener: RebalanceListener, member: str) -> Any:
        """An async context manager yielding a RecordStream member of the flow's group."""
        ...

    def version_log(self, flow: Flow) -> Any:
        """An async context manager yielding the flow's VersionLog."""
        ...

    async def records(self, topic: str) -> list[StreamRecord]:
        """Every record of a topic."""
        ...

    async def committed(self, flow: Flow) -> dict[Partition, int]:
        """The group's committed offsets of the flow's consumed partitions."""
        ...

    async def ends(self, flow: Flow) -> dict[Partition, int]:
        """The end offsets of the flow's consumed partitions."""
        ...


class _Entered:
    """An already-built object as an async context manager."""

    def __init__(self, value: Any, enter: Callable[[], Awaitable[None]] | None = None) -> None:
        self._value = value
        self._enter = enter
        self._exit: Callable[[], Awaitable[None]] | None = None

    async def __aenter__(self) -> Any:
        if self._enter is not None:
            await self._enter()
        return self._value

    async def __aexit__(self, *exc: object) -> None:
        if self._exit is not None:
            await self._exit()


class MemoryBus:
    """The bus in memory."""

    prefix = "m"
    group_prefix = "bridge"
    poll_interval = 0.005

    def __init__(self, partitions: int = 3) -> None:
        self.log = MemoryLog(partitions)
        self.sender = MemorySender(self.log)
        self.consumers: dict[tuple[str, str], MemoryConsumer] = {}

    def stream(self, flow: Flow, listener: RebalanceListener, member: str) -> Any:
        consumer = MemoryConsumer(self.log, flow.group, flow.consumed_topics, listener, member)
        self.consumers[(flow.name, member)] = consumer
        entered = _Entered(consumer, lambda: consumer.group.join(consumer))
        entered._exit = lambda: consumer.group.leave(consumer)
        return entered

    def version_log(self, flow: Flow) -> Any:
        return _Entered(MemoryVersionLog(self.log, flow.versions_topic))

    async def crash(self, flow: Flow, member: str) -> None:
        """The member leaves without callbacks, as a killed process does."""
        consumer = self.consumers[(flow.name, member)]
        await consumer.group.crash(consumer)

    async def records(self, topic: str) -> list[StreamRecord]:
        return self.log.records(topic)

    async def committed(self, flow: Flow) -> dict[Partition, int]:
        return dict(self.log.group(flow.group).committed)

    async def ends(self, flow: Flow) -> dict[Partition, int]:
        ends = {}
        for topic in flow.consumed_topics:
            self.log.create(topic)
            for number, records in enumerate(self.log.topics[topic]):
                ends[Partition(topic, number)] = len(records)
        return ends


# --- the bridge workers ---------------------------------------------------------------


ENGINE_SETTINGS = FlowSettings(
    apply_concurrency=4,
    blocked_retry_seconds=0.01,
    apply_budget_seconds=1.0,
    dependency_retry_attempts=200,
    dependency_retry_initial_seconds=0.005,
    dependency_retry_max_seconds=0.02,
)


@dataclass
class Worker:
    """One bridge process: an engine per flow, each a member of its flow's group."""

    name: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    exits: list[Any] = field(default_factory=list)
    engines: dict[str, FlowEngine] = field(default_factory=dict)


class World:
    """Source, target, flows and workers on one bus."""

    def __init__(
        self,
        bus: Bus,
        *,
        templates: Mapping[str, Template] = TEMPLATES,
        settings: FlowSettings = ENGINE_SETTINGS,
        sink: Sink | None = None,
    ) -> None:
        self.bus = bus
        self.source = SalesSource()
        self.target = TargetStore()
        writes_to = sink or self.target
        self.settings = Settings(
            kafka=KafkaSettings(topic_prefix=bus.prefix),
            flows=settings.model_copy(update={"consumer_group_prefix": bus.group_prefix}),
            companies=CompanySettings(map={COMPANY: "*"}),
        )
        self.templates = dict(templates)
        self.flows = [build_flow(self.settings, t) for t in self.templates.values()]
        self.sources = Sources({System.SALES: self.source})
        context = FlowContext(
            identities=Identities({System.SALES: frozenset({BRIDGE_USER})}),
            companies=self.settings.companies,
            sources=self.sources,
        )
        self.processors = {
            t.name: FlowProcessor(
                t,
                writes_to,
                source_entity(t.source.system, t.source.entity),
                context,
                tuple(
                    ChildFlow(
                        c.flow,
                        source_entity(
                            self.templates[c.flow].source.system,
                            self.templates[c.flow].source.entity,
                        ),
                        c.match,
                    )
                    for c in t.children
                ),
            )
            for t in self.templates.values()
        }
        self.workers: dict[str, Worker] = {}

    def flow(self, name: str) -> Flow:
        """The flow called ``name``."""
        return next(f for f in self.flows if f.name == name)

    async def publish(
        self, entity: SourceEntity, event: ChangeEvent, *headers: tuple[str, bytes]
    ) -> None:
        """Put a change event on its topic as the capture side would."""
        topic = entity.topic(self.settings.kafka.topic_prefix)
        await self.bus.sender.send(topic, CODEC.encode(event, entity), event.key, list(headers))

    async def publish_raw(self, entity: SourceEntity, value: bytes, key: bytes) -> None:
        """Put arbitrary bytes on an entity's topic (a foreign producer)."""
        await self.bus.sender.send(entity.topic(self.settings.kafka.topic_prefix), value, key)

    # workers

    async def start_worker(self, name: str) -> None:
        """Start a bridge process called ``name``."""
        worker = Worker(name)
        self.workers[name] = worker
        for flow in self.flows:
            await self._start_engine(worker, flow)

    async def _start_engine(self, worker: Worker, flow: Flow) -> None:
        log_cm = self.bus.version_log(flow)
        version_log: VersionLog = await log_cm.__aenter__()
        engine = FlowEngine(
            flow,
            self.processors[flow.name],
            codec=CODEC,
            sender=self.bus.sender,
            versions=VersionTable(version_log),
            source=self.sources,
            settings=self.settings.flows,
            topic_prefix=self.settings.kafka.topic_prefix,
        )
        worker.engines[flow.name] = engine
        stream_cm = self.bus.stream(flow, engine, worker.name)
        stream: RecordStream = await stream_cm.__aenter__()
        worker.exits += [stream_cm, log_cm]
        worker.tasks.append(
            asyncio.create_task(engine.run(stream), name=f"{worker.name}:{flow.name}")
        )

    async def stop_worker(self, name: str) -> None:
        """Stop a process cleanly: its partitions are handed over with callbacks."""
        worker = self.workers.pop(name)
        for task in worker.tasks:
            task.cancel()
        await asyncio.gather(*worker.tasks, return_exceptions=True)
        for cm in worker.exits:
            await cm.__aexit__(None, None, None)

    async def crash_worker(self, name: str) -> None:
        """Kill a process: its tasks stop where they are, its group membership lapses
        without callbacks (memory bus only)."""
        worker = self.workers.pop(name)
        for task in worker.tasks:
            task.cancel()
        await asyncio.gather(*worker.tasks, return_exceptions=True)
        assert isinstance(self.bus, MemoryBus)
        for flow in self.flows:
            await self.bus.crash(flow, name)

    async def stop(self) -> None:
        """Stop every worker."""
        for name in list(self.workers):
            await self.stop_worker(name)

    # observing

    async def settled(self) -> bool:
        """Whether every flow committed every record of its change and retry topics."""
        for flow in self.flows:
            committed = await self.bus.committed(flow)
            for partition, end in (await self.bus.ends(flow)).items():
                if committed.get(partition, 0) < end:
                    return False
        return True

    async def drain(self, timeout: float = 20.0) -> None:
        """Run until :meth:`settled`; fail after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await self.settled():
            if loop.time() > deadline:
                raise AssertionError(f"not settled within {timeout} s: {await self.backlog()}")
            await asyncio.sleep(self.bus.poll_interval)

    async def backlog(self) -> dict[str, int]:
        """Records not yet committed, per flow."""
        result = {}
        for flow in self.flows:
            committed = await self.bus.committed(flow)
            ends = await self.bus.ends(flow)
            result[flow.name] = sum(end - committed.get(p, 0) for p, end in ends.items())
        return result

    async def dead_letters(self, flow: str) -> list[tuple[StreamRecord, dict[str, str]]]:
        """The flow's dead letters with their ``dlq.*`` context."""
        records = await self.bus.records(self.flow(flow).dead_letter_topic)
        return [(r, dead_letter_context(r.headers)) for r in records]


def expected_customers(source: SalesSource) -> dict[str, dict[str, Any]]:
    """What F&O must hold for the customers flow, written from the flow's definition in
    this module (account number → CustomerAccount, name → Name), not from the bridge."""
    return {
        r.image["accountnumber"]: {
            "CustomerAccount": r.image["accountnumber"],
            "Name": r.image.get("name"),
        }
        for r in source.records.values()
        if r.entity is ACCOUNT
    }


def expected_persons(source: SalesSource) -> dict[str, dict[str, Any]]:
    """What F&O must hold for the persons flow: every live contact whose parent customer
    is live too."""
    numbers = {r.image["accountnumber"] for r in source.records.values() if r.entity is ACCOUNT}
    return {
        r.image["contactnumber"]: {
            "ContactPersonId": r.image["contactnumber"],
            "Name": r.image.get("fullname"),
            "CustomerAccount": r.image.get("parentnumber"),
        }
        for r in source.records.values()
        if r.entity is CONTACT and r.image.get("parentnumber") in numbers
    }


def held(target: TargetStore, entity_set: str) -> dict[str, dict[str, Any]]:
    """What the target holds for one entity set, by the key's last part (the company is
    the one every model record belongs to, so it is left out)."""
    return {
        key[-1]: {k: v for k, v in body.items() if k != "dataAreaId"}
        for (es, key), body in target.records.items()
        if es == entity_set
    }


def headers_of(*pairs: tuple[str, str]) -> Headers:
    """Headers from text pairs."""
    return tuple((k, v.encode()) for k, v in pairs)


def records_by_offset(records: Sequence[StreamRecord]) -> dict[tuple[str, int, int], StreamRecord]:
    """Records by (topic, partition, offset)."""
    return {(r.topic, r.partition, r.offset): r for r in records}
