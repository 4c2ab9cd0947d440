"""The ``bridge`` command line. Each command is a thin shell around one async entry point.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration (with a one-line
message on stderr, never a traceback for an expected error).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError
from bridge.logs import configure_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"BRIDGE_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; SIGINT/SIGTERM cancel it so every component shuts down cleanly."""

    async def runner() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel if task else lambda: None)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    try:
        asyncio.run(runner())
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except BridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def run() -> None:
    """Run the bridge: webhook receiver, change-tracking pollers and one consumer per flow."""
    from bridge.app import run_bridge

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(run_bridge(settings))


@app.command()
def emulate(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    sales_port: Annotated[int, typer.Option(help="Dataverse (Sales) emulator port")] = 8081,
    fno_port: Annotated[int, typer.Option(help="Finance and Operations emulator port")] = 8082,
) -> None:
    """Serve the Dataverse and F&O emulators until interrupted."""
    from bridge.emulators.server import run_emulators

    configure_logging(_settings().log)
    run_until_signalled(run_emulators(host, sales_port, fno_port))


@app.command()
def setup() -> None:
    """Create the topics and register the bridge's webhooks on Dataverse."""
    from bridge.setup import run_setup

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(run_setup(settings))


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="How many accounts the demo user creates")] = 20,
    seconds: Annotated[float, typer.Option(help="Stop after this long (0 = until Ctrl-C)")] = 0,
) -> None:
    """Start the emulators and the bridge, generate Sales activity, show it reaching F&O."""
    from bridge.demo import LOG_FILE, run_demo

    settings = _settings()
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOG_FILE.open("a") as log_stream:
        run_until_signalled(
            run_demo(settings, accounts=accounts, seconds=seconds, log_stream=log_stream)
        )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
