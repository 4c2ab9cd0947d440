"""The ``bridge`` command line. Each command is a thin shell around one async entry point.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration (with a one-line
message on stderr, never a traceback for an expected error).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import signal
import sys
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError
from bridge.logs import configure_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"bridge {importlib.metadata.version('bridge')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    pass


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"BRIDGE_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None
    except ConfigError as exc:  # a secret file that cannot be read
        typer.echo(f"error: {exc}", err=True)
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


class Role(StrEnum):
    """What one ``bridge run`` process does."""

    INGEST = "ingest"
    APPLY = "apply"
    ALL = "all"


@app.command()
def run(
    role: Annotated[
        Role,
        typer.Option(
            help="ingest: answer webhooks and, on the elected leader, poll change tracking; "
            "apply: run the flows' engines; all: both. Any number of processes of each role "
            "share the work through Kafka."
        ),
    ] = Role.ALL,
) -> None:
    """Run the bridge: webhook receiver, change-tracking pollers and one engine per flow."""
    from bridge.app import run_bridge
    from bridge.security import enforce

    settings = _settings()
    try:
        enforce(settings, role.value)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log)
    # what the imports built lives as long as the process: out of the cyclic collector's
    # way, the collections that each event's garbage triggers stay short (measured: a
    # sixth of the ingest process's CPU per notification went to walking it)
    gc.freeze()
    run_until_signalled(run_bridge(settings, role=role.value))


@app.command()
def emulate(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    sales_port: Annotated[int, typer.Option(help="Dataverse (Sales) emulator port")] = 8081,
    fno_port: Annotated[int, typer.Option(help="Finance and Operations emulator port")] = 8082,
) -> None:
    """Serve the Dataverse and F&O emulators until interrupted (over HTTPS with
    BRIDGE_EMULATOR__TLS_CERTFILE and BRIDGE_EMULATOR__TLS_KEYFILE)."""
    from bridge.emulators.common.settings import EmulatorSettings
    from bridge.emulators.server import run_emulators

    configure_logging(_settings().log)
    try:
        emulator_settings = EmulatorSettings()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        typer.echo(f"error: invalid emulator settings: {problems}", err=True)
        raise typer.Exit(2) from None
    run_until_signalled(run_emulators(emulator_settings, host, sales_port, fno_port))


@app.command()
def setup() -> None:
    """Create the topics, register the bridge's webhooks and F&O data-event steps on
    Dataverse, and print what an administrator must check by hand (exit 2 naming what is
    missing when a registration is refused)."""
    from bridge.setup import run_setup

    settings = _settings()
    configure_logging(settings.log)
    manual: list[str] = []
    done: list[bool] = []

    async def setup_and_collect() -> None:
        manual.extend(await run_setup(settings))
        done.append(True)

    run_until_signalled(setup_and_collect())
    if not done:  # interrupted
        raise typer.Exit(1)
    typer.echo("setup complete: topics created, webhooks and data-event steps registered")
    for step in manual:
        typer.echo(f"  check by hand: {step}")


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


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole status as JSON")] = False,
) -> None:
    """Show each flow of a running bridge: state, lag, rates, latency, dead letters (from its
    admin API; exit 1 when it does not answer)."""
    from bridge.admin.status_cli import show_status

    settings = _settings()
    try:
        show_status(settings.admin, as_json=as_json)
    except BridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


# --- operations: dead letters, replay, backfill, reconcile (docs/operations.md) -------------

FlowOption = Annotated[str, typer.Option("--flow", help="The flow (template name)")]

dlq_app = typer.Typer(no_args_is_help=True, help="Inspect a flow's dead letters; re-inject them.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    flow: Annotated[
        str | None, typer.Option(help="Only this flow (default: every enabled flow)")
    ] = None,
) -> None:
    """List dead letters: time, stage, error, original offset, pending or replayed."""
    from bridge.ops.commands import dlq_list_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(dlq_list_command(settings, flow))


@dlq_app.command("show")
def dlq_show(
    flow: FlowOption,
    ref: Annotated[str, typer.Argument(help="PARTITION:OFFSET in the dead-letter topic")],
) -> None:
    """Show one dead letter: every header and its decoded change event."""
    from bridge.ops.commands import dlq_show_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(dlq_show_command(settings, flow, ref))


@dlq_app.command("replay")
def dlq_replay(
    flow: FlowOption,
    refs: Annotated[
        list[str] | None, typer.Argument(help="PARTITION:OFFSET of each dead letter to replay")
    ] = None,
    all_pending: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter not replayed yet")
    ] = False,
) -> None:
    """Re-publish dead letters to the flow's source topic, after the cause was fixed."""
    from bridge.ops.commands import dlq_replay_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(dlq_replay_command(settings, flow, refs or [], all_pending=all_pending))


@app.command()
def replay(
    flow: FlowOption,
    from_time: Annotated[
        str, typer.Option("--from", help="ISO-8601 time, e.g. 2026-03-01T10:00:00Z (UTC if bare)")
    ],
    dry_run: Annotated[bool, typer.Option(help="Show the resets; change nothing")] = False,
) -> None:
    """Re-apply a flow's events since a time. Stop the bridge first (refused while it runs)."""
    from bridge.ops.commands import replay_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(replay_command(settings, flow, from_time, dry_run=dry_run))


@app.command()
def backfill(
    flow: FlowOption,
    restart: Annotated[bool, typer.Option(help="Ignore a stored position; start over")] = False,
    page_size: Annotated[
        int | None, typer.Option(min=1, max=5000, help="Records per page (default: poller's)")
    ] = None,
    max_pages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many pages (resume later)")
    ] = None,
) -> None:
    """Publish every source record of a flow as a snapshot event; resumable."""
    from bridge.ops.commands import backfill_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(
        backfill_command(settings, flow, restart=restart, page_size=page_size, max_pages=max_pages)
    )


@app.command()
def reconcile(
    flow: FlowOption,
    repair: Annotated[
        bool, typer.Option(help="Publish corrective events for missing and different records")
    ] = False,
) -> None:
    """Compare a flow's source and target; exit 1 when they drifted apart."""
    from bridge.ops.commands import reconcile_command

    settings = _settings()
    configure_logging(settings.log)
    run_until_signalled(reconcile_command(settings, flow, repair_drift=repair))


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option(help="Smoke-test sizes: every scenario, a minute or two")
    ] = False,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these (ingest, apply, replay, backfill, end_to_end, "
            "throttled, rss); repeatable"
        ),
    ] = None,
    publish: Annotated[
        Path | None,
        typer.Option(help="Also write latest.json/.png/.md here and update README's table"),
    ] = None,
) -> None:
    """Benchmark the bridge on the local stack (Kafka from BRIDGE_KAFKA__BOOTSTRAP_SERVERS):
    every figure beside its reference from the same run; sizes from BRIDGE_BENCH__*."""
    from rich.console import Console

    from bridge.bench.runner import run_bench
    from bridge.bench.settings import BenchSettings

    configure_logging(_settings().log.model_copy(update={"level": "ERROR"}))
    settings = BenchSettings()
    settings = settings.quick() if quick else settings
    update: dict[str, Any] = {"publish_dir": publish}
    if scenario:
        update["scenarios"] = tuple(scenario)
    settings = settings.model_copy(update=update)

    async def bench_and_check() -> None:
        document = await run_bench(settings, Console())
        if document["errors"]:
            raise BridgeError(f"scenarios failed: {', '.join(document['errors'])}")

    run_until_signalled(bench_and_check())


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
