"""Gathering the requests in flight at the same moment into one call.

The engine settles per-key chains concurrently, and each chain awaits its write before its
next record; so the requests one :class:`Coalescer` gathers in one window come from
different records, and two versions of one record are never in one call — per-record
order holds by construction.

Contract of :meth:`Coalescer.submit`: each caller gets its own result or its own error. A
call refused as a whole with an error of one item (``splits``, by default
:class:`~bridge.errors.EventRejected`: one bad record fails an all-or-nothing request) is
split in halves until the bad item stands alone and alone gets the error; any other failure
of the call (throttled, target down) is every caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

import structlog

from bridge.errors import EventRejected

T = TypeVar("T")
R = TypeVar("R")
log = structlog.get_logger(__name__)

Send = Callable[[Hashable, list[T]], Awaitable[Sequence["R | BaseException"]]]


class Coalescer(Generic[T, R]):
    """Collects items per group for ``window`` seconds or until ``max_items``, then
    hands them to ``send`` in one call. ``send`` returns one result or exception per item,
    in order, or raises for the call as a whole."""

    def __init__(
        self,
        send: Send[T, R],
        *,
        window: float,
        max_items: int,
        name: str,
        splits: tuple[type[BaseException], ...] = (EventRejected,),
    ) -> None:
        self._send = send
        self._splits = splits
        self._window = window
        self._max_items = max_items
        self._name = name
        self._open: dict[Hashable, list[tuple[T, asyncio.Future[R]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, group: Hashable, item: T) -> R:
        """Send ``item`` with whatever else arrives for ``group`` now; its own outcome."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        batch = self._open.get(group)
        if batch is None:
            batch = self._open[group] = []
            self._start(self._flush_later(group, batch))
        batch.append((item, future))
        if len(batch) >= self._max_items:
            self._close(group, batch)
            self._start(self._settle(group, batch))
        return await future

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self, group: Hashable, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if self._open.get(group) is batch:
            del self._open[group]

    async def _flush_later(self, group: Hashable, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        await asyncio.sleep(self._window)
        if self._open.get(group) is batch:
            self._close(group, batch)
            await self._settle(group, batch)

    async def _settle(self, group: Hashable, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        live = [(item, future) for item, future in batch if not future.done()]
        if not live:
            return
        try:
            outcomes = await self._send(group, [item for item, _ in live])
        except self._splits as exc:
            if len(live) == 1:
                _resolve(live[0][1], exc)
                return
            middle = len(live) // 2
            log.info("bulk_call_split", coalescer=self._name, items=len(live), error=str(exc))
            await self._settle(group, live[:middle])
            await self._settle(group, live[middle:])
            return
        except Exception as exc:
            for _, future in live:
                _resolve(future, exc)
            return
        for (_, future), outcome in zip(live, outcomes, strict=True):
            _resolve(future, outcome)


def _resolve(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():
        return  # its caller was cancelled (the batch budget ran out)
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
