"""Starting and stopping aiokafka clients so that none is left open when a shutdown
cancels them halfway."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start_client(client: _Startable) -> None:
    """Start a producer or consumer; if the start fails or is cancelled (a shutdown while
    the broker is slow to answer), stop it before re-raising, since the owner's
    ``__aexit__`` will not run and aiokafka warns about a client never closed.

    A cancelled start is first let finish: aiokafka keeps the connection of its bootstrap
    request in a local variable, so interrupting it there leaves that socket open."""
    starting = asyncio.ensure_future(client.start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await starting
        await stop_client(client)
        raise
    except BaseException:
        await stop_client(client)
        raise


async def stop_client(client: _Startable) -> None:
    """Stop a producer or consumer to the end even if the caller is cancelled meanwhile (a
    shutdown cancels a component's task while it is already closing): aiokafka closes its
    connections last, so an interrupted stop would leave them open. The stop is finished,
    then the cancellation goes on."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        await client.stop()
        raise
