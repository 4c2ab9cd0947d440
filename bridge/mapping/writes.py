"""The output of mapping: target writes, as plain data for the sinks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridge.mapping.template import BindCandidate, Guard


def blank(value: Any) -> bool:
    """``None`` or a string of blanks."""
    return value is None or (isinstance(value, str) and not value.strip())


class WriteKind(StrEnum):
    """What a sink must do with a mapped record.

    ``UPSERT`` creates or changes it; ``UPDATE`` changes it, and a missing record is a
    missing prerequisite; ``UPDATE_IF_EXISTS`` changes it only if it exists, and a missing
    record is left missing (nothing to do); ``DELETE`` removes it.
    """

    UPSERT = "upsert"
    UPDATE = "update"
    UPDATE_IF_EXISTS = "update_if_exists"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class BindRef:
    """A Dataverse lookup value: the business key ``value`` of one of ``candidates``."""

    value: Any
    candidates: tuple[BindCandidate, ...]

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class TargetWrite:
    """One idempotent write: the target record identified by ``key``, with ``body``.

    Key values may be :class:`BindRef` (a Dataverse key part that is a lookup). ``binds``
    are lookups to set; ``create_only`` names body fields written only on create;
    ``requires`` lists target records that must exist first; ``guard`` must hold for an
    existing target record.
    """

    kind: WriteKind
    entity_set: str
    key: Mapping[str, Any]
    body: Mapping[str, Any] = field(default_factory=dict)
    binds: Mapping[str, BindRef] = field(default_factory=dict)
    create_only: frozenset[str] = frozenset()
    requires: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    guard: Guard | None = None

    @property
    def key_text(self) -> str:
        """The key as one readable string, for logs and counters."""
        return ",".join(f"{name}={value}" for name, value in self.key.items())


@dataclass(frozen=True, slots=True)
class MappingContext:
    """What a mapping needs besides the event: the target company (F&O ``dataAreaId``)."""

    company: str | None = None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The writes for one event, or why there are none."""

    writes: tuple[TargetWrite, ...] = ()
    skipped: str | None = None


def build_write(
    kind: WriteKind,
    entity_set: str,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    **options: Any,
) -> TargetWrite:
    """Split mapped values into plain body fields and lookups to bind."""
    binds = {k: v for k, v in values.items() if isinstance(v, BindRef) and k not in key}
    body = {k: v for k, v in values.items() if not isinstance(v, BindRef)}
    return TargetWrite(kind, entity_set, dict(key), body, binds, **options)
