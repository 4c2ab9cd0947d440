"""Starting aiokafka clients so that none is left open when a start is cancelled."""

from __future__ import annotations

from typing import Protocol


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start_client(client: _Startable) -> None:
    """Start a producer or consumer; if the start fails or is cancelled (a shutdown while
    the broker is slow to answer), stop it before re-raising, since the owner's
    ``__aexit__`` will not run and aiokafka warns about a client never closed."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
