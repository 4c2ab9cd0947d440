"""The table layer both emulators share: one write path through the plug-in pipeline.

:class:`TableLayer` is the base of ``DataverseTables`` and ``FnoTables``. It owns the store,
the entity registry and the :class:`~bridge.emulators.common.plugins.PluginPipeline`, and
runs every write the same way; each system supplies its own rules through the hooks below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from bridge.emulators.common.plugins import PluginContext, PluginPipeline, Stage
from bridge.emulators.common.store import Op, RecordKey, RecordStore, StoredRecord
from bridge.emulators.odata.entities import EntityDef, EntityRegistry


def is_empty(value: Any) -> bool:
    """Whether a value counts as not filled in (``None`` or ``""``), as both systems judge
    required columns, keys and numbering."""
    return value is None or value == ""


class TableLayer(ABC):
    """Records of every entity of one emulator, written through one pipeline.

    Every write runs one template; a failing step or check raises
    :class:`~bridge.emulators.common.errors.ApiError` and nothing is stored:

    - The subclass builds the whole record first: for a create its defaults, ids and
      numbering; for an update :meth:`_merge` (which also refuses columns a write may not
      change).
    - :meth:`_save` then prepares it (:meth:`_before_steps`, the pre-operation steps,
      :meth:`_validate`), picks the key (the existing record's, or :meth:`_new_key`, which
      refuses a duplicate), and stores it through
      :meth:`~bridge.emulators.common.plugins.PluginPipeline.write`: post-operation steps in
      the same transaction; the store's listeners get the write events, derived writes after
      the write that caused them.
    - :meth:`delete`: pre-operation steps, store delete, post-operation steps.
    - :meth:`derived_update` is a plug-in's write: merged like an update, as the triggering
      write's principal, one level deeper, with the same tags.

    Reading goes through :meth:`view` (every column of a record as read now) and
    :meth:`value_of` (one column). Both are per system because the systems read differently:
    Dataverse shows every column of the table and derives the platform columns
    (``createdon``, ``versionnumber``, ...) from the record's metadata, never storing them;
    F&O shows the stored row (every field is stored, strings never null) with computed
    fields recomputed.

    Kept in the subclasses on purpose, because the systems genuinely differ:

    - Addressing (``get``): Dataverse by one GUID (or an alternate key), F&O by the full
      entity key including ``dataAreaId``.
    - The public entry points and what a create starts from: Dataverse takes a parsed
      ``WriteSet`` (binds resolved, ``written`` may name more than the values) and refuses a
      taken id with 412 *before* any default or step runs, because the id is the caller's;
      F&O takes a request body (``create``/``update``, coerced by ``FnoTables``) or validated
      values (``insert``/``modify``, with the caller's company and PUT's replace), and
      refuses a duplicate with a 500 *after* the steps, because number sequences and steps
      fill the key.
    - The order around the pre-operation steps: Dataverse derives columns, normalises
      state/status and runs its write hooks before the steps, then checks required columns
      and alternate keys; F&O runs the steps first, then stores computed fields, checks
      filled fields and references and stamps read-only dates.
    - Which attributes a write reports as changed (:meth:`_changed`): Dataverse adds the
      primary id, F&O reports what was given.
    """

    def __init__(self, registry: EntityRegistry, store: RecordStore) -> None:
        self.registry = registry
        self.store = store
        self.plugins = PluginPipeline()

    def entity(self, name: str) -> EntityDef:
        """The entity called ``name``."""
        return self.registry.require(name)

    @abstractmethod
    def view(self, entity: EntityDef, record: StoredRecord) -> dict[str, Any]:
        """Every column of a record as read now."""

    @abstractmethod
    def value_of(self, entity: EntityDef, record: StoredRecord, name: str) -> Any:
        """One column (logical name) of a record as read now."""

    def delete(
        self,
        entity: EntityDef,
        record: StoredRecord,
        principal: str,
        *,
        depth: int = 1,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        """Delete a record, with its pre- and post-operation steps."""
        context = PluginContext(
            entity, Op.DELETE, dict(record.values), record, frozenset(), principal, depth, tags
        )
        label = self._label(entity, record.key, record.values)
        return self.plugins.delete(self.store, context, label=label)

    def derived_update(
        self,
        context: PluginContext,
        entity: EntityDef,
        record: StoredRecord,
        changes: Mapping[str, Any],
    ) -> StoredRecord:
        """A plug-in's write to a record: ``changes`` (stored values, read-only columns
        allowed) as the triggering write's principal, one level deeper, same tags."""
        return self._save(
            entity,
            self._merge(entity, record, changes),
            frozenset(changes),
            context.principal,
            existing=record,
            depth=context.depth + 1,
            tags=context.tags,
        )

    def _save(
        self,
        entity: EntityDef,
        values: dict[str, Any],
        written: frozenset[str],
        principal: str,
        *,
        existing: StoredRecord | None,
        depth: int,
        tags: frozenset[str],
    ) -> StoredRecord:
        """Store the whole record ``values`` (a create when ``existing`` is ``None``, else
        an update of it) through the pipeline; ``written`` names what the caller wrote.
        Returns the record as stored now (post-operation steps may have changed it)."""
        op = Op.CREATE if existing is None else Op.UPDATE
        context = PluginContext(entity, op, values, existing, written, principal, depth, tags)
        self._before_steps(context)
        self.plugins.run(Stage.PRE_OPERATION, context)
        self._validate(context)
        if existing is None:
            key = self._new_key(context)
            label = self._label(entity, key, context.values)
        else:
            key, label = existing.key, self._label(entity, existing.key, existing.values)
        record = self.plugins.write(
            self.store, context, key, changed=self._changed(context), label=label
        )
        return self.store.get(entity.name, key) or record

    def _changed(self, context: PluginContext) -> frozenset[str]:
        """The attributes the store reports as changed by this write."""
        return context.written

    @abstractmethod
    def _before_steps(self, context: PluginContext) -> None:
        """Adjust ``context.values`` before the pre-operation steps see them."""

    @abstractmethod
    def _validate(self, context: PluginContext) -> None:
        """Complete and check ``context.values`` after the pre-operation steps; raise
        :class:`~bridge.emulators.common.errors.ApiError` to refuse the write."""

    @abstractmethod
    def _new_key(self, context: PluginContext) -> RecordKey:
        """The store key of a prepared new record; raise if it is taken."""

    @abstractmethod
    def _merge(
        self, entity: EntityDef, record: StoredRecord, given: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The whole record after writing ``given`` over ``record``."""

    @abstractmethod
    def _label(self, entity: EntityDef, key: RecordKey, values: Mapping[str, Any]) -> str:
        """How the write log names the record at ``key``."""
