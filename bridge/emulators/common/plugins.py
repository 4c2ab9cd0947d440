"""The plug-in pipeline of an emulator: business logic that runs inside a write, the way
Dataverse plug-in steps and F&O table methods do.

Contract:

- A step is registered for one entity, one :class:`Stage` and some messages
  (:class:`~bridge.emulators.common.store.Op`); steps of one entity and stage run in registration
  order.
- ``PRE_OPERATION`` (Dataverse stage 20) steps run before the record is stored. They may
  change ``context.values`` (the whole record as it will be stored) or raise
  :class:`~bridge.emulators.common.errors.ApiError` to refuse the write; then nothing is stored.
- ``POST_OPERATION`` (stage 40) steps run after the record is stored, inside the same store
  transaction (:meth:`~bridge.emulators.common.store.RecordStore.transaction`): if a step raises, the
  write and every derived write roll back together. Derived writes go through the tables API
  again (so they run their own steps, enter the change log and fire their own webhooks or
  business events, after the event of the write that caused them), as the principal of the
  triggering write, with ``depth + 1`` and the same ``tags``.
- ``tags`` carry what a real plug-in passes in its SharedVariables, e.g. the F&O totals job
  tags its writes so that the steps marking totals stale leave them alone.
- A write deeper than :data:`MAX_DEPTH` is refused (Dataverse's loop protection).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.store import Op, RecordKey, RecordStore, StoredRecord
from bridge.emulators.odata.entities import EntityDef

MAX_DEPTH = 8


class Stage(IntEnum):
    """When a step runs, numbered as Dataverse numbers its pipeline stages."""

    PRE_OPERATION = 20
    POST_OPERATION = 40


@dataclass
class PluginContext:
    """What a step sees of one write.

    ``values`` is the complete record: as it will be stored (pre-operation, mutable), as
    stored (post-operation) or as it was (delete). ``existing`` is the record before the
    write (``None`` on create); ``record`` the stored result (post-operation, not delete).
    ``written`` names the attributes the caller wrote.
    """

    entity: EntityDef
    op: Op
    values: dict[str, Any]
    existing: StoredRecord | None
    written: frozenset[str]
    principal: str
    depth: int = 1
    tags: frozenset[str] = frozenset()
    record: StoredRecord | None = None

    @property
    def before(self) -> dict[str, Any]:
        """The values before the write (empty on create)."""
        return dict(self.existing.values) if self.existing else {}

    def changed(self, name: str) -> bool:
        """Whether attribute ``name`` differs from its value before the write."""
        return self.existing is None or self.existing.values.get(name) != self.values.get(name)

    def tagged(self, tag: str) -> bool:
        """Whether the write carries ``tag``."""
        return tag in self.tags


Step = Callable[[PluginContext], None]
_ALL_OPS = frozenset(Op)


@dataclass
class PluginPipeline:
    """The registered steps of one emulator."""

    _steps: dict[tuple[str, Stage], list[tuple[frozenset[Op], Step]]] = field(default_factory=dict)

    def register(
        self, entity: str, stage: Stage, step: Step, *, ops: Iterable[Op] = _ALL_OPS
    ) -> None:
        """Run ``step`` for writes of ``entity`` with one of ``ops`` at ``stage``."""
        self._steps.setdefault((entity, stage), []).append((frozenset(ops), step))

    def has_post_steps(self, entity: str) -> bool:
        """Whether ``entity`` has post-operation steps (its writes need a transaction)."""
        return bool(self._steps.get((entity, Stage.POST_OPERATION)))

    def run(self, stage: Stage, context: PluginContext) -> None:
        """Run the steps of ``stage`` for ``context``; 400 when the write is too deep."""
        if context.depth > MAX_DEPTH:
            raise ApiError(
                400,
                f"The plug-in execution failed because the operation exceeded the maximum depth of {MAX_DEPTH}.",
            )
        for ops, step in self._steps.get((context.entity.name, stage), []):
            if context.op in ops:
                step(context)

    def finish(self, context: PluginContext, record: StoredRecord) -> None:
        """Run the post-operation steps of a stored write, with the record as stored."""
        context.record = record
        context.values = dict(record.values)
        self.run(Stage.POST_OPERATION, context)

    def write(
        self,
        store: RecordStore,
        context: PluginContext,
        key: RecordKey,
        *,
        changed: frozenset[str],
        label: str,
    ) -> StoredRecord:
        """Store ``context.values`` at ``key`` as ``context.principal`` and run the
        post-operation steps on the stored record, in one scope (the pre-operation steps
        have run)."""
        with self.scope(store, context.entity.name):
            record = store.write(
                context.entity.name,
                key,
                context.values,
                principal=context.principal,
                changed=changed,
                label=label,
                depth=context.depth,
            )
            self.finish(context, record)
        return record

    def delete(
        self,
        store: RecordStore,
        context: PluginContext,
        *,
        label: str,
    ) -> StoredRecord:
        """Delete ``context.existing`` with its pre- and post-operation steps, in one scope."""
        record = context.existing
        assert record is not None
        self.run(Stage.PRE_OPERATION, context)
        with self.scope(store, context.entity.name):
            deleted = store.delete(
                context.entity.name,
                record.key,
                principal=context.principal,
                label=label,
                depth=context.depth,
            )
            self.run(Stage.POST_OPERATION, context)
        return deleted

    @contextmanager
    def scope(self, store: RecordStore, entity: str) -> Iterator[None]:
        """The transaction a write of ``entity`` and its post-operation steps share."""
        manager = store.transaction() if self.has_post_steps(entity) else nullcontext()
        with manager:
            yield
