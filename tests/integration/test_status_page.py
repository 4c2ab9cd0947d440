"""The status page in a real headless Chromium (Debian's ``chromium``, driven by Playwright
through its executable path) against ``bridge run`` as a child process, the real broker and
the emulators: what the page shows is judged against what this test did through the
systems' APIs, and pausing through the page is proved by F&O not receiving a change.

Screenshots: ``.local/artefacts/status-page.png`` (after the resume) and
``.local/artefacts/status-page-paused.png``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright
from pydantic import SecretStr

from bridge.config import AdminSettings, FlowSettings
from bridge.setup import run_setup
from tests.integration.conftest import Stack, eventually, free_port
from tests.integration.test_accounts_flow import create_account, customer
from tests.support.bridge_process import BridgeProcess

ARTEFACTS = Path(".local/artefacts")
INSTALL = "apt-get install -y chromium"


def chromium_path() -> str:
    """Debian's chromium; the test fails (it does not skip) when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(f"the status page test needs Debian's chromium: run `{INSTALL}` (as root)")
    return found


@pytest.fixture
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def cell(page: Page, flow: str, name: str) -> str:
    return (await page.locator(f'tr[data-flow="{flow}"] td.{name}').text_content() or "").strip()


async def shows(page: Page, flow: str, name: str, wanted: Any) -> bool:
    return bool(wanted(await cell(page, flow, name)))


async def test_the_status_page_shows_the_flows_and_pauses_one(
    stack: Stack, browser: Browser, artefacts: Path, tmp_path: Path
) -> None:
    token = f"page-{uuid.uuid4().hex[:8]}"
    settings = stack.with_settings(
        flows=stack.settings.flows.model_copy(update={"enabled": ["accounts"]}),
        admin=AdminSettings(port=free_port(), token=SecretStr(token)),
    )
    assert isinstance(settings.flows, FlowSettings)
    await run_setup(settings)
    bridge = BridgeProcess(settings, tmp_path / "bridge.log")
    bridge.start()
    try:
        await bridge.ready()
        page = await browser.new_page(viewport={"width": 1400, "height": 1100})
        await page.goto(f"http://127.0.0.1:{settings.admin.port}/#token={token}")
        await page.wait_for_selector('tr[data-flow="accounts"]', timeout=30_000)
        assert "token" not in page.url  # taken out of the address once stored

        # what the page shows follows what this test did in Sales and F&O
        created = [await create_account(stack, name=f"Page {n}") for n in range(3)]
        numbers = {a["accountnumber"] for a in created}
        for number in numbers:
            await eventually(lambda n=number: customer(stack, n), timeout=60)
        await eventually(lambda: shows(page, "accounts", "applied", lambda t: int(t) >= 3))
        assert await cell(page, "accounts", "state") == "running"
        last = await cell(page, "accounts", "last-applied")
        assert any(number in last for number in numbers), last
        await eventually(lambda: shows(page, "accounts", "lag", lambda t: t == "0"), timeout=30)
        assert await page.locator("#chart rect").count() > 0

        # paused through the page: a change made meanwhile reaches Kafka but not F&O
        await page.locator('tr[data-flow="accounts"] button[data-action="pause"]').click()
        await eventually(lambda: shows(page, "accounts", "state", lambda t: t == "paused"))
        held_back = await create_account(stack, name="Made while paused")
        await eventually(lambda: shows(page, "accounts", "lag", lambda t: int(t) >= 1), timeout=30)
        await asyncio.sleep(3)  # six poll intervals, many fetch turns of the paused engine
        assert await customer(stack, held_back["accountnumber"]) is None
        await page.screenshot(path=str(artefacts / "status-page-paused.png"), full_page=True)

        # resumed through the page: it arrives
        await page.locator('tr[data-flow="accounts"] button[data-action="resume"]').click()
        arrived = await eventually(lambda: customer(stack, held_back["accountnumber"]), timeout=60)
        assert arrived["OrganizationName"] == "Made while paused"
        await eventually(lambda: shows(page, "accounts", "state", lambda t: t == "running"))
        await eventually(lambda: shows(page, "accounts", "lag", lambda t: t == "0"), timeout=30)
        await eventually(lambda: shows(page, "accounts", "applied", lambda t: int(t) >= 4))
        await page.screenshot(path=str(artefacts / "status-page.png"), full_page=True)
    except BaseException:
        print(bridge.log_tail(60))
        raise
    finally:
        bridge.stop()
