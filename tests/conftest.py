"""Suite-wide rules: every async test must leave no asyncio task running behind it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

# the shared scenarios and worlds assert too: show their values when they fail
pytest.register_assert_rewrite("tests.support")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail the test if it leaves tasks running (a component it started did not stop)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [
        task
        for task in asyncio.all_tasks() - before
        if not task.done() and task is not asyncio.current_task()
    ]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test left tasks running: {[t.get_name() for t in leaked]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the leak check to every coroutine test."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.usefixtures("no_leaked_tasks"))
