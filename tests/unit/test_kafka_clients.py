"""Starting several Kafka clients together: a failure leaves none of them open."""

from __future__ import annotations

import pytest

from bridge.kafka.clients import start_clients


class Client:
    """A client that records its lifecycle; ``fails`` makes its start raise."""

    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name, self.log, self.fails = name, log, fails

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fails:
            raise ConnectionError(f"{self.name} cannot connect")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_clients_start_in_order() -> None:
    log: list[str] = []
    await start_clients(Client("a", log), Client("b", log))
    assert log == ["start a", "start b"]


async def test_a_failed_start_stops_every_client_started_or_not() -> None:
    log: list[str] = []
    clients = Client("a", log), Client("b", log, fails=True), Client("c", log)
    with pytest.raises(ConnectionError, match="b cannot connect"):
        await start_clients(*clients)
    assert log[:2] == ["start a", "start b"]
    assert sorted(log[2:]) == ["stop a", "stop b", "stop c"]


async def test_a_start_cancelled_midway_finishes_then_closes() -> None:
    """A shutdown cancelling a start (e.g. the admin page's lag watcher still connecting):
    the start runs to its end (aiokafka holds its bootstrap socket meanwhile), then the
    clients close, then the cancellation goes on."""
    import asyncio

    from bridge.kafka.clients import start_or_close

    log: list[str] = []
    connecting = asyncio.Event()

    async def start() -> None:
        log.append("start")
        connecting.set()
        await asyncio.sleep(0.05)
        log.append("started")

    async def close() -> None:
        log.append("closed")

    task = asyncio.create_task(start_or_close(start, close))
    await connecting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["start", "started", "closed"]
