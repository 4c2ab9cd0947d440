"""Stable paging positions for Dataverse-style server paging (pure, no I/O).

A next page starts *after a position*, never at an offset into a list re-sorted on every
request, so a write between two page requests cannot shift a row out of the result or
into it twice (dynamics-apis.md A.5: Dataverse's paging cookie carries the last row's
values and id):

- Queries: the position is the last row's sort keys (``$orderby`` values, then its
  ``row_id``, which is unique and in creation order). The next page is every row that
  sorts after it *now*. A row written meanwhile shows up where its current values sort: a
  row moving behind the position is read (once), one moving in front of it is not.
- Change tracking: a sync covers the changes up to ``upto`` (the version when its first
  page was served). The initial sync lists rows by version; a delta lists the latest
  change per record in ``(after, upto]``: upserts by version, then deletes by version. That
  list is fixed by the append-only change log, so the position is ``(phase, version)`` of
  the last item. A record changed again after ``upto`` is still listed (as it is now, or as
  deleted) and comes again in the next delta.

:class:`PageCursor` is the opaque ``$skiptoken``: a Dataverse-shaped paging cookie whose
inner cookie carries the position as URL-safe base64 JSON.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from bridge.emulators.common.errors import bad_request
from bridge.emulators.common.store import ChangeEntry, Op, StoredRecord
from bridge.emulators.odata.query import sort_key

QUERY, INITIAL, DELTA = "query", "initial", "delta"
UPSERTS, DELETES = 0, 1
_COOKIE = re.compile(r'mode="(\w+)" position="([A-Za-z0-9_=-]*)"')


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts.

    ``mode`` is ``query``, ``initial`` or ``delta``. Queries use ``keys`` (sort keys of the
    last row, ``row_id`` last) and ``remaining`` (what is left of a client ``$top``);
    tracking uses ``after``/``upto`` (the sync's version range) and ``phase``/``last``.
    """

    mode: str
    keys: tuple[Any, ...] = ()
    remaining: int | None = None
    after: int = 0
    upto: int = 0
    phase: int = UPSERTS
    last: int = 0
    page: int = 2

    def encode(self) -> str:
        """The ``$skiptoken`` value: a Dataverse-style paging cookie."""
        position = {
            "k": [list(k) if isinstance(k, tuple) else k for k in self.keys],
            "r": self.remaining,
            "a": self.after,
            "u": self.upto,
            "p": self.phase,
            "l": self.last,
        }
        packed = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        inner = f'<cookie page="{self.page - 1}" mode="{self.mode}" position="{packed}" />'
        tracking = "False" if self.mode == QUERY else "True"
        return (
            f'<cookie pagenumber="{self.page}" pagingcookie="{quote(inner, safe="")}" '
            f'istracking="{tracking}" />'
        )

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Parse a ``$skiptoken``; 400 if this emulator did not issue it."""
        text = unquote(unquote(token))
        match = _COOKIE.search(text)
        page = re.search(r'pagenumber="(\d+)"', text)
        if match is None or match.group(1) not in (QUERY, INITIAL, DELTA):
            raise bad_request("The $skiptoken value is not valid.")
        try:
            data = json.loads(base64.urlsafe_b64decode(match.group(2)))
            return cls(
                mode=match.group(1),
                keys=tuple(tuple(k) if isinstance(k, list) else k for k in data["k"]),
                remaining=data["r"],
                after=int(data["a"]),
                upto=int(data["u"]),
                phase=int(data["p"]),
                last=int(data["l"]),
                page=int(page.group(1)) if page else 2,
            )
        except (ValueError, KeyError, TypeError):
            raise bad_request("The $skiptoken value is not valid.") from None


Resolve = Callable[[StoredRecord, str], Any]


def ordered(
    rows: Iterable[StoredRecord], orderby: Sequence[tuple[str, bool]], resolve: Resolve
) -> list[StoredRecord]:
    """Rows in ``$orderby`` order (nulls first ascending), ties in ``row_id`` order."""
    result = sorted(rows, key=lambda row: row.row_id)
    for name, descending in reversed(orderby):
        result.sort(key=lambda row: sort_key(resolve(row, name)), reverse=descending)
    return result


def position_of(
    row: StoredRecord, orderby: Sequence[tuple[str, bool]], resolve: Resolve
) -> tuple[Any, ...]:
    """The sort keys of ``row``: its ``$orderby`` values, then its ``row_id``."""
    return (*(sort_key(resolve(row, name)) for name, _ in orderby), row.row_id)


def rows_after(
    rows: Sequence[StoredRecord],
    orderby: Sequence[tuple[str, bool]],
    resolve: Resolve,
    position: tuple[Any, ...],
) -> list[StoredRecord]:
    """The rows (in order) that sort after ``position``."""
    descending = [desc for _, desc in orderby] + [False]
    if len(position) != len(descending):
        raise bad_request("The $skiptoken value is not valid.")
    try:
        return [
            row
            for row in rows
            if _is_after(position_of(row, orderby, resolve), position, descending)
        ]
    except TypeError:
        raise bad_request("The $skiptoken value is not valid.") from None


def _is_after(keys: Sequence[Any], position: Sequence[Any], descending: Sequence[bool]) -> bool:
    for key, mark, desc in zip(keys, position, descending, strict=True):
        if key != mark:
            return bool(key < mark) if desc else bool(key > mark)
    return False


@dataclass(frozen=True)
class Change:
    """The latest change of one record within a sync's version range."""

    identity: Hashable
    entry: ChangeEntry

    @property
    def phase(self) -> int:
        """Upserts come before deletes."""
        return DELETES if self.entry.op is Op.DELETE else UPSERTS

    @property
    def position(self) -> tuple[int, int]:
        """Where the change sits in the sync: ``(phase, version)``."""
        return (self.phase, self.entry.version)


def latest_changes(
    entries: Iterable[ChangeEntry], identity: Callable[[ChangeEntry], Hashable]
) -> list[Change]:
    """The last change per record identity, upserts by version then deletes by version."""
    last: dict[Hashable, ChangeEntry] = {}
    for entry in entries:
        last[identity(entry)] = entry
    changes = [Change(key, entry) for key, entry in last.items()]
    return sorted(changes, key=lambda change: change.position)
