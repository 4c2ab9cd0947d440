"""The engine's delivery contract on the real broker: the scenarios of
tests/unit/engine/test_contract_in_memory.py, run through the Kafka adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.support.engine_scenarios import (
    SCENARIOS,
    a_cascaded_line_passes_the_line_flows_version_check,
    cascading_world,
)
from tests.support.engine_world import World
from tests.support.kafka_bus import kafka_bus, running

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario(broker: str, scenario: Callable[[World], Awaitable[None]]) -> None:
    async with kafka_bus(broker) as bus, running(World(bus)) as world:
        await scenario(world)


async def test_cascade(broker: str) -> None:
    async with kafka_bus(broker) as bus:
        world, reader = cascading_world(bus)
        async with running(world):
            await a_cascaded_line_passes_the_line_flows_version_check(world, reader)
