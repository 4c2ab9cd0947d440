"""Run both emulators on loopback HTTP (HTTPS with ``BRIDGE_EMULATOR__TLS_CERTFILE`` and
``__TLS_KEYFILE``): :class:`Emulators` for tests and the demo,
:func:`run_emulators` for ``bridge emulate``.

The two are one Power Platform-integrated pair: the F&O entities are virtual tables
``mserp_*`` of the Dataverse emulator and F&O writes raise data events there.

``async with Emulators(settings, sales_port=0, fno_port=0) as emulators`` binds both apps
(port 0 = any free port, read back into ``sales_url``/``fno_url``; ``ready`` is set once
both listen), and on exit stops the delivery workers and the servers, leaving no task
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from types import TracebackType
from typing import Self

import structlog
from aiohttp import web

from bridge.emulators.common.principals import PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.fno.app import FnoEmulator
from bridge.tls import server_context

log = structlog.get_logger(__name__)


async def _serve(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    scheme = "https" if tls else "http"
    return (
        runner,
        f"{scheme}://{host if host not in ('0.0.0.0', '::') else bound_host}:{bound_port}",
    )


class Emulators:
    """Both emulators on loopback HTTP, as an async context manager."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        host: str = "127.0.0.1",
        sales_port: int = 8081,
        fno_port: int = 8082,
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self.host = host
        self.sales_port = sales_port
        self.fno_port = fno_port
        directory = PrincipalDirectory(self.settings)
        self.sales = DataverseEmulator(self.settings, directory)
        self.fno = FnoEmulator(self.settings, directory)
        self.sales.connect_fno(self.fno.tables)
        self.sales_url = ""
        self.fno_url = ""
        self._runners: list[web.AppRunner] = []
        self.ready = asyncio.Event()

    async def __aenter__(self) -> Self:
        settings = self.settings
        tls = (
            server_context(settings.tls_certfile, settings.tls_keyfile)
            if settings.tls_certfile
            else None
        )
        try:
            sales_runner, self.sales_url = await _serve(
                self.sales.app, self.host, self.sales_port, tls
            )
            self._runners.append(sales_runner)
            fno_runner, self.fno_url = await _serve(self.fno.app, self.host, self.fno_port, tls)
            self._runners.append(fno_runner)
        except BaseException:
            await self.aclose()
            raise
        self.sales.webhooks.organization_host = self.sales_url.split("://", 1)[1]
        log.info("emulators_started", sales_url=self.sales_url, fno_url=self.fno_url)
        self.ready.set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the servers (their cleanup stops delivery workers)."""
        self.ready.clear()
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        await self.sales.dispatcher.stop()
        await self.fno.dispatcher.stop()
        if runners:
            log.info("emulators_stopped")

    async def wait_for_deliveries(self) -> None:
        """Wait until every queued webhook and business event has been delivered or failed
        (wrap in ``asyncio.timeout``)."""
        await self.sales.dispatcher.wait_idle()
        await self.fno.dispatcher.wait_idle()

    def reset(self) -> None:
        """Reset both emulators (same as ``POST /_emulator/reset`` on each)."""
        self.sales.reset()
        self.fno.reset()


async def serve_forever(emulators: Emulators) -> None:
    """Serve until cancelled or SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with emulators:
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_emulators(
    settings: EmulatorSettings, host: str, sales_port: int, fno_port: int
) -> None:
    """Run both emulators until cancelled or SIGTERM."""
    await serve_forever(Emulators(settings, host=host, sales_port=sales_port, fno_port=fno_port))
