"""The engine's delivery contract on the in-memory bus (the same scenarios run on Kafka in
tests/integration/test_engine_on_kafka.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.support.engine_scenarios import (
    SCENARIOS,
    a_cascaded_line_passes_the_line_flows_version_check,
    cascading_world,
)
from tests.support.engine_world import MemoryBus, World


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario(scenario: Callable[[World], Awaitable[None]]) -> None:
    world = World(MemoryBus())
    try:
        await scenario(world)
    finally:
        await world.stop()


async def test_cascade() -> None:
    world, reader = cascading_world(MemoryBus())
    try:
        await a_cascaded_line_passes_the_line_flows_version_check(world, reader)
    finally:
        await world.stop()
