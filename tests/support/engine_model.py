"""The world of the engine's model test (tests/unit/engine/test_model.py): the engine world
of :mod:`tests.support.engine_world` plus an F&O side that sees the bridge's own writes, a
ledger of every change the test made in the source, and processes that own their tasks.

- **Echoes.** The fake F&O's change capture reports every write it accepted as a change
  event made by the bridge, with a version, alternately as a data event and as a row of the
  virtual table's change tracking; both name the writer's Dataverse user, which for the
  bridge is its own. (The OData snapshot diff names nobody, so no identity can recognise
  its echoes; the model leaves it out.) The catalog has no F&O customer or contact person
  entity, so the echoes travel as F&O released products (``fno.product``, keyed
  ``dataAreaId|ProductNumber``); the reverse flow :data:`ECHOES` maps them to a fake
  Sales. Every F&O change in the model is the bridge's own, so that flow must never write.
- **Versions in names.** The model writes every name with :func:`versioned`, at the version
  the fake Sales gives the change (it numbers changes 1, 2, 3, …), so the target's history
  says which version of the source each write carried.
- **Processes.** A task inherits the bridge process that created it (a context variable
  read by the loop's task factory), so the model can tell that a stopped or killed process
  left nothing running that could still write (the model's first finding, now a regression
  test in tests/unit/engine/test_model_findings.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import weakref
from collections.abc import Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.engine.stream import StreamRecord
from bridge.flows.processor import FlowContext, FlowProcessor, Identities
from bridge.fno.source import FnoSource
from bridge.mapping.template import Template
from bridge.mapping.writes import TargetWrite
from bridge.sinks.base import ApplyOutcome, Sink
from bridge.sources.base import Sources
from tests.support.engine_world import (
    ACCOUNT,
    BRIDGE_USER,
    COMPANY,
    CONTACT,
    TEMPLATES,
    MemoryBus,
    SalesSource,
    TargetStore,
    World,
    versioned,
)

BRIDGE_FNO = "f0000000-0000-0000-0000-00000000f0f0"
"""The bridge's principal in F&O (its token's ``oid``); with its Dataverse user, the F&O
identities the bridge recognises its echoes by (as ``bridge.app`` resolves them)."""
PRODUCT = source_entity(System.FNO, "product")
ECHOES = Template.model_validate(
    {
        "name": "echoes",
        "title": "model: F&O changes back to Sales (all of them the bridge's own writes)",
        "source": {"system": "FNO", "entity": "product"},
        "target": {"system": "SALES", "entity_set": "products", "key": ["productnumber"]},
        "fields": [
            {"target": "productnumber", "source": "ProductNumber", "required": True},
            {"target": "name", "source": "ProductName"},
        ],
        "apply_deletes": True,
    }
)
MODEL_TEMPLATES = {**TEMPLATES, ECHOES.name: ECHOES}

PROCESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("process", default=None)


# --- the F&O side ---------------------------------------------------------------------


@dataclass
class EchoingTarget(TargetStore):
    """The fake F&O, whose change capture reports each write it accepted (as a business
    event would) through ``capture``."""

    capture: Any = None

    async def apply(self, write: TargetWrite) -> ApplyOutcome:
        """Apply like :class:`TargetStore`, then report the change."""
        outcome = await super().apply(write)
        if outcome is not ApplyOutcome.UNCHANGED and self.capture is not None:
            await self.capture(write, outcome)
        return outcome


def as_product(entity_set: str, key: tuple[Any, ...], body: Mapping[str, Any]) -> dict[str, Any]:
    """An F&O record the bridge writes, as the F&O product that stands in for it."""
    return {
        "dataAreaId": COMPANY,
        "ProductNumber": f"{entity_set}:{key[-1]}",
        "ProductName": body.get("Name"),
    }


class EchoReader:
    """Reads the fake F&O through the products that stand in for its records (the reader
    behind :class:`~bridge.fno.source.FnoSource`, which confirms F&O changes)."""

    def __init__(self, target: TargetStore) -> None:
        self._target = target

    async def read(self, entity: SourceEntity, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The product with these key values, or ``None``."""
        entity_set, _, number = str(key.get("ProductNumber", "")).partition(":")
        body = self._target.records.get((entity_set, (COMPANY, number)))
        return None if body is None else as_product(entity_set, (COMPANY, number), body)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """No F&O record of the model has lines."""
        return []


def echo_event(write: TargetWrite, outcome: ApplyOutcome, version: int) -> ChangeEvent:
    """The F&O change event of one write the bridge made, naming the bridge's Dataverse
    user: an odd version comes as a data event, an even one from the virtual table's
    change tracking."""
    image = as_product(write.entity_set, tuple(write.key.values()), write.body)
    operation = {
        ApplyOutcome.CREATED: Operation.CREATE,
        ApplyOutcome.UPDATED: Operation.UPDATE,
        ApplyOutcome.DELETED: Operation.DELETE,
    }[outcome]
    source = Source(
        system=System.FNO,
        entity=PRODUCT.entity,
        record_id=PRODUCT.record_id(image),
        business_key=PRODUCT.business_key_of(image),
        company=COMPANY,
        record_version=version,
        change_time=datetime.now(UTC),
        changed_by=BRIDGE_USER,
        capture=Capture.WEBHOOK if version % 2 else Capture.POLL,
    )
    if operation is Operation.DELETE:
        return ChangeEvent.create(source, operation, before=image)
    return ChangeEvent.create(source, operation, after=image)


# --- processes ------------------------------------------------------------------------


class ProcessTasks:
    """Which bridge process created each task of one event loop (installed as the loop's
    task factory; a task belongs to the process its creator belonged to)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._owners: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = (
            weakref.WeakKeyDictionary()
        )
        loop.set_task_factory(self._create)

    def _create(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        context = context if context is not None else contextvars.copy_context()
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
        owner = context.get(PROCESS)
        if owner is not None:
            self._owners[task] = owner
        return task

    def running(self, process: str) -> list[asyncio.Task[Any]]:
        """The unfinished tasks of ``process``."""
        return [t for t, owner in list(self._owners.items()) if owner == process and not t.done()]


class ModelWorld(World):
    """The engine world with the reverse flow :data:`ECHOES`, an F&O that echoes (and is a
    source the engine can confirm F&O changes against), a Sales side that must stay
    untouched, and processes that own the tasks they start."""

    def __init__(self, bus: MemoryBus, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(bus, templates=MODEL_TEMPLATES)
        self.memory = bus
        self.target: EchoingTarget = EchoingTarget(capture=self._capture)
        self.sales_target = TargetStore()
        self.processes = ProcessTasks(loop)
        self._fno_versions = itertools.count(1)
        self.sources = Sources(
            {System.SALES: self.source, System.FNO: FnoSource(EchoReader(self.target))}  # type: ignore[arg-type]
        )
        sinks: dict[System, Sink] = {System.FNO: self.target, System.SALES: self.sales_target}
        context = FlowContext(
            identities=Identities(
                {
                    System.SALES: frozenset({BRIDGE_USER}),
                    System.FNO: frozenset({BRIDGE_FNO, BRIDGE_USER}),
                }
            ),
            companies=self.settings.companies,
            sources=self.sources,
        )
        self.processors = {
            t.name: FlowProcessor(
                t, sinks[t.target.system], source_entity(t.source.system, t.source.entity), context
            )
            for t in self.templates.values()
        }

    async def _capture(self, write: TargetWrite, outcome: ApplyOutcome) -> None:
        await self.publish(PRODUCT, echo_event(write, outcome, next(self._fno_versions)))

    async def start_process(self, name: str) -> None:
        """Start a bridge process whose tasks (and theirs) are known as ``name``'s."""
        token = PROCESS.set(name)
        try:
            await self.start_worker(name)
        finally:
            PROCESS.reset(token)

    async def stop_process(self, name: str) -> list[str]:
        """Stop a process cleanly (``World.stop_worker``); return the names of its tasks
        still running, which could go on writing after its partitions moved."""
        await self.stop_worker(name)
        return [t.get_name() for t in self.processes.running(name)]

    async def kill_process(self, name: str) -> list[str]:
        """Kill a process (``World.crash_worker``); return its tasks still running."""
        await self.crash_worker(name)
        return [t.get_name() for t in self.processes.running(name)]

    def batch_in_flight(self, name: str) -> bool:
        """Whether the process is applying a batch (it runs more tasks than its engines)."""
        return len(self.processes.running(name)) > len(self.workers[name].tasks)


# --- what the test did in the source --------------------------------------------------


@dataclass
class Life:
    """One life of a source record: the versions from its creation to its delete."""

    versions: list[int]
    delete: ChangeEvent | None = None

    @property
    def last(self) -> int:
        """The version the record had when it was deleted (or has now)."""
        return self.versions[-1]


@dataclass
class ChangeLedger:
    """Every change the test made in the fake Sales, per record, in the order made; the
    lives of each record; and the target record each source record maps to."""

    events: dict[str, list[ChangeEvent]] = field(default_factory=dict)
    lives: dict[str, list[Life]] = field(default_factory=dict)
    targets: dict[tuple[str, tuple[Any, ...]], str] = field(default_factory=dict)
    changes: int = 0

    def change(
        self, source: SalesSource, entity: SourceEntity, record_id: str, **fields: Any
    ) -> ChangeEvent:
        """Create or update a record, its name carrying the version of this change."""
        version = self.changes + 1  # SalesSource numbers its changes 1, 2, 3, …
        name = "name" if entity is ACCOUNT else "fullname"
        event = source.change(entity, record_id, **fields, **{name: versioned(record_id, version)})
        assert event.source.record_version == version, "the ledger lost count of versions"
        self.changes = version
        if event.operation is Operation.CREATE:
            self.lives.setdefault(record_id, []).append(Life([version]))
        else:
            self.lives[record_id][-1].versions.append(version)
        self._note(record_id, event)
        return event

    def delete(self, source: SalesSource, record_id: str, *, versioned_delete: bool) -> ChangeEvent:
        """Delete a record, with the version it had or none."""
        event = source.delete(record_id, versioned_delete=versioned_delete)
        self.lives[record_id][-1].delete = event
        self._note(record_id, event)
        return event

    def _note(self, record_id: str, event: ChangeEvent) -> None:
        self.events.setdefault(record_id, []).append(event)
        self.targets[target_key(event)] = record_id

    def newest(self, record_id: str) -> ChangeEvent:
        """The last change made to a record."""
        return self.events[record_id][-1]

    def life_of(self, event: ChangeEvent) -> Life:
        """The life an event belongs to (a delete ends its life; versions are global, so
        a version names one life)."""
        lives = self.lives[event.source.record_id]
        if event.operation is Operation.DELETE:
            return next(
                life
                for life in lives
                if life.delete is not None and life.delete.correlation_id == event.correlation_id
            )
        version = event.source.record_version
        return next(life for life in lives if version in life.versions)

    def recreated_after(self, life: Life, record_id: str) -> bool:
        """Whether the record was created again after ``life`` ended."""
        lives = self.lives[record_id]
        return lives.index(life) < len(lives) - 1

    def live(self, entity: SourceEntity, source: SalesSource) -> list[str]:
        """The record ids of ``entity`` that exist in the source now."""
        return sorted(r.record_id for r in source.records.values() if r.entity is entity)


def target_key(event: ChangeEvent) -> tuple[str, tuple[Any, ...]]:
    """The F&O record a model change maps to (customers and persons flows)."""
    image = event.image
    if event.source.entity == ACCOUNT.entity:
        return ("Customers", (COMPANY, image["accountnumber"]))
    if event.source.entity == CONTACT.entity:
        return ("ContactPersons", (COMPANY, image["contactnumber"]))
    raise AssertionError(f"not a model record: {event.source.entity}")


def coordinates(record: StreamRecord) -> tuple[str, int, int]:
    """Where a record sits: (topic, partition, offset)."""
    return (record.topic, record.partition, record.offset)
