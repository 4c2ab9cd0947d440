"""What a test wrote to a source system, key by key: every incarnation of a record (a key
deleted and created again has two) and every state the test saw it in.

The expected target state is computed from this ledger alone (see
:mod:`tests.support.expectations`), never from bridge code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]

CREATE, UPDATE, DELETE = "create", "update", "delete"
RECREATE, RESTORE = "re-create", "restore"
"""Operations: a re-create is a new record with the business key of a deleted one; a restore
brings a deleted record back with its old id (Dataverse's recycle bin does that)."""


@dataclass
class Incarnation:
    """One life of a record in the source: from its create to its delete, if any."""

    record_id: str
    states: list[Record]
    deleted: bool = False

    @property
    def final(self) -> Record:
        """The last state the test knows of."""
        return self.states[-1]


@dataclass
class KeyHistory:
    """Everything the test did to one business key (account number, product number)."""

    key: str
    kind: str
    incarnations: list[Incarnation] = field(default_factory=list)

    @property
    def live(self) -> Incarnation | None:
        """The incarnation that exists in the source now, if any."""
        last = self.incarnations[-1] if self.incarnations else None
        return last if last is not None and not last.deleted else None


@dataclass
class Ledger:
    """The test's own record of its writes, shared by concurrent writers (one event loop)."""

    keys: dict[str, KeyHistory] = field(default_factory=dict)
    changes: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """How many writes the test made so far."""
        return sum(self.changes.values())

    def created(
        self, key: str, kind: str, record_id: str, state: Record, operation: str = CREATE
    ) -> None:
        history = self.keys.setdefault(key, KeyHistory(key, kind))
        history.incarnations.append(Incarnation(record_id, [state]))
        self.changes[operation] += 1

    def updated(self, key: str, state: Record) -> None:
        self._live(key).states.append(state)
        self.changes[UPDATE] += 1

    def deleted(self, key: str) -> None:
        self._live(key).deleted = True
        self.changes[DELETE] += 1

    def refreshed(self, key: str, state: Record) -> None:
        """The live record as the source holds it after the workload (concurrent updates
        finish in an order only the source knows); not a write."""
        self._live(key).states.append(state)

    def kinds(self) -> Counter[str]:
        """How many keys of each workload kind."""
        return Counter(h.kind for h in self.keys.values())

    def _live(self, key: str) -> Incarnation:
        live = self.keys[key].live
        assert live is not None, f"{key} has no live record in the ledger"
        return live
