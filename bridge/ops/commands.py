"""The async entry points of ``bridge dlq|replay|backfill|reconcile``: open what a command
needs, run it, print its tables. Each ``*_command`` returns ``None`` for the CLI; the
function it wraps returns the structured result (what the tests assert on).

Errors follow the CLI's exit codes: :class:`~bridge.errors.ConfigError` (unknown flow, bad
reference or time, flow running during a replay) exits 2; drift and runtime failures exit 1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bridge.config import Settings
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import System
from bridge.dataverse.metadata import DataverseMetadata
from bridge.engine.flow import Flow, enabled_flows, resolve_flow
from bridge.errors import ConfigError, UndecodableMessage
from bridge.flows.lookups import LookupResolver
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.ops import open_kafka
from bridge.kafka.publisher import EventPublisher
from bridge.kafka.state import StateStore
from bridge.kafka.stream import KafkaVersionLog
from bridge.kafka.topics import ensure_topics
from bridge.ops.backfill import Backfill, BackfillProgress, BackfillResult, backfill
from bridge.ops.dead_letters import (
    DeadLetter,
    dead_letters_table,
    event_summary,
    locate,
    parse_ref,
    read_dead_letters,
    replay,
    select,
)
from bridge.ops.drift import DriftReport
from bridge.ops.reconcile import DriftFound, drift_table, reconcile, repair
from bridge.ops.render import headers_table, mapping_table
from bridge.ops.replay import (
    ReplayResult,
    apply_replay,
    parse_moment,
    plan_replay,
    refuse_if_running,
    resets_table,
)
from bridge.ops.snapshots import snapshot_source
from bridge.ops.targets import target_records


@asynccontextmanager
async def api_clients(settings: Settings) -> AsyncIterator[dict[System, ApiClient]]:
    """The bridge's clients of both Dynamics APIs, closed on exit."""
    policy = RetryPolicy.from_settings(settings.retry)
    async with (
        ApiClient(settings.sales, settings.sales.api_path, policy) as sales,
        ApiClient(settings.fno, settings.fno.api_path, policy) as fno,
    ):
        yield {System.SALES: sales, System.FNO: fno}


def _console(console: Console | None) -> Console:
    return console or Console()


# --- dead letters -------------------------------------------------------------------------


async def list_dead_letters(settings: Settings, flow_name: str) -> list[DeadLetter]:
    """Every dead letter of one flow, oldest first."""
    flow = resolve_flow(settings, flow_name)
    async with open_kafka(settings) as (topics, groups):
        return await read_dead_letters(topics, groups, flow)


async def dlq_list_command(
    settings: Settings, flow_name: str | None = None, *, console: Console | None = None
) -> None:
    """Print the dead letters of one flow, or of every enabled flow."""
    out = _console(console)
    names = [flow_name] if flow_name else [f.name for f in enabled_flows(settings)]
    for name in names:
        flow = resolve_flow(settings, name)
        out.print(dead_letters_table(flow, await list_dead_letters(settings, name)))


async def dlq_show_command(
    settings: Settings, flow_name: str, ref: str, *, console: Console | None = None
) -> None:
    """Print one dead letter (any copy of it may be named): its headers, its copies and, when
    decodable, its change event."""
    out = _console(console)
    parse_ref(ref)  # a malformed reference fails before Kafka is opened
    found = locate(await list_dead_letters(settings, flow_name), ref)
    if found is None:
        raise ConfigError(f"no dead letter {ref} in flow {flow_name}'s dead-letter topic")
    letter, copy = found
    out.print(headers_table(copy.record.headers))
    if letter.duplicates:
        refs = ", ".join(c.ref for c in letter.copies)
        out.print(f"{len(letter.copies)} copies of one original ({refs}); listed as {letter.ref}")
    value = copy.record.value or b""
    try:
        event = EventCodec.from_directory(settings.schemas_dir).decode(value)
    except UndecodableMessage as exc:
        out.print(f"value: {len(value)} bytes, not a change event ({exc})")
        return
    out.print(mapping_table("event", event_summary(event)))
    out.print(mapping_table("after" if event.after is not None else "before", event.image))


async def replay_dead_letters(
    settings: Settings,
    flow_name: str,
    refs: Sequence[str] = (),
    *,
    all_pending: bool = False,
    console: Console | None = None,
) -> list[DeadLetter]:
    """Re-publish the named (or every pending) dead letter of a flow; return them."""
    out = _console(console)
    flow = resolve_flow(settings, flow_name)
    await ensure_topics(settings.kafka, [flow])
    codec = EventCodec.from_directory(settings.schemas_dir)
    async with (
        open_kafka(settings) as (topics, groups),
        EventPublisher(settings.kafka, codec) as publisher,
    ):
        letters = await read_dead_letters(topics, groups, flow)
        chosen = select(letters, refs, pending=all_pending)
        await replay(flow, letters, chosen, publisher.send, groups)
    out.print(f"replayed {len(chosen)} dead letter(s) of {flow.name} to {flow.topic}")
    return chosen


async def dlq_replay_command(
    settings: Settings,
    flow_name: str,
    refs: Sequence[str] = (),
    *,
    all_pending: bool = False,
    console: Console | None = None,
) -> None:
    """CLI shell of :func:`replay_dead_letters`."""
    await replay_dead_letters(settings, flow_name, refs, all_pending=all_pending, console=console)


# --- replay from a time -------------------------------------------------------------------


async def replay_from(
    settings: Settings,
    flow_name: str,
    from_time: str,
    *,
    dry_run: bool = False,
    console: Console | None = None,
) -> ReplayResult:
    """Reset a stopped flow to a moment (see :mod:`bridge.ops.replay`); print the resets."""
    out = _console(console)
    moment = parse_moment(from_time)
    flow = resolve_flow(settings, flow_name)
    async with open_kafka(settings) as (topics, groups):
        if not dry_run:
            await refuse_if_running(flow, groups)
        resets = await plan_replay(flow, moment, topics=topics, groups=groups)
        result = ReplayResult(resets, dry_run=True)
        if not dry_run:
            async with KafkaVersionLog(settings.kafka, flow.versions_topic) as versions:
                forgotten = await apply_replay(
                    flow, resets, topics=topics, groups=groups, versions=versions
                )
            result = ReplayResult(resets, forgotten)
    out.print(resets_table(flow, result))
    out.print(_replay_summary(flow, result))
    return result


def _replay_summary(flow: Flow, result: ReplayResult) -> str:
    moved = sum(r.moves for r in result.resets)
    if result.dry_run:
        return f"dry run: {moved} partition(s) of {flow.group} would move; nothing changed"
    return (
        f"reset {moved} partition(s) of {flow.group}; forgot {result.forgotten} applied "
        "version(s); start the bridge to re-apply"
    )


async def replay_command(
    settings: Settings, flow_name: str, from_time: str, *, dry_run: bool = False
) -> None:
    """CLI shell of :func:`replay_from`."""
    await replay_from(settings, flow_name, from_time, dry_run=dry_run)


# --- backfill -----------------------------------------------------------------------------


async def backfill_flow(
    settings: Settings,
    flow_name: str,
    *,
    restart: bool = False,
    page_size: int | None = None,
    max_pages: int | None = None,
    console: Console | None = None,
) -> BackfillResult:
    """Publish (or resume publishing) every source record of a flow, with a progress bar."""
    out = _console(console)
    flow = resolve_flow(settings, flow_name)
    await ensure_topics(settings.kafka, [flow])
    codec = EventCodec.from_directory(settings.schemas_dir)
    async with (
        api_clients(settings) as clients,
        StateStore(settings.kafka) as state,
        EventPublisher(settings.kafka, codec) as publisher,
    ):
        source = snapshot_source(flow.entity, clients, flow.companies)
        size = page_size or settings.poller.page_size
        runner = Backfill(flow, source, publisher, state, page_size=size)
        with _progress_bar(out) as bar:
            task = bar.add_task(f"backfill {flow.name}", total=None)

            def show(progress: BackfillProgress) -> None:
                bar.update(task, completed=progress.published, total=progress.total)

            result = await backfill(
                runner, restart=restart, max_pages=max_pages, on_start=show, on_page=show
            )
    out.print(_backfill_summary(flow, result))
    return result


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _backfill_summary(flow: Flow, result: BackfillResult) -> str:
    done = result.progress
    state = "complete" if result.complete else "interrupted; run again to resume"
    resumed = "resumed, " if result.resumed else ""
    return (
        f"backfill of {flow.name}: {resumed}{result.published_now} published now, "
        f"{done.published} in total over {done.pages} page(s); {state}"
    )


async def backfill_command(
    settings: Settings,
    flow_name: str,
    *,
    restart: bool = False,
    page_size: int | None = None,
    max_pages: int | None = None,
) -> None:
    """CLI shell of :func:`backfill_flow`."""
    await backfill_flow(
        settings, flow_name, restart=restart, page_size=page_size, max_pages=max_pages
    )


# --- reconcile ----------------------------------------------------------------------------


async def reconcile_flow(
    settings: Settings,
    flow_name: str,
    *,
    repair_drift: bool = False,
    console: Console | None = None,
) -> DriftReport:
    """Compare a flow's systems, print the drift, and with ``repair_drift`` publish the
    corrections."""
    out = _console(console)
    flow = resolve_flow(settings, flow_name)
    codec = EventCodec.from_directory(settings.schemas_dir)
    async with api_clients(settings) as clients:
        sales = clients[System.SALES]
        report = await reconcile(
            flow,
            snapshot_source(flow.entity, clients, flow.companies),
            target_records(flow.template, clients),
            page_size=settings.poller.page_size,
            enricher=LookupResolver(sales, DataverseMetadata(sales)),
        )
    if report.missing or report.different or report.extra or report.unmappable:
        out.print(drift_table(report))
    out.print(report.summary())
    if repair_drift and report.corrections:
        await ensure_topics(settings.kafka, [flow])
        async with EventPublisher(settings.kafka, codec) as publisher:
            published = await repair(flow, report, publisher.send, codec)
        out.print(f"published {published} corrective event(s) to {flow.topic}")
    return report


async def reconcile_command(
    settings: Settings, flow_name: str, *, repair_drift: bool = False
) -> None:
    """CLI shell of :func:`reconcile_flow`; raises :class:`DriftFound` (exit 1) on drift."""
    report = await reconcile_flow(settings, flow_name, repair_drift=repair_drift)
    if report.drifted:
        raise DriftFound(f"drift found: {report.summary()}")
