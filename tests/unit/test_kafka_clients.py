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
