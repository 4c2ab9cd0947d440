"""Operator commands started from the status page: backfill, reconcile, replay and dead-letter
replay, each run as a background task of the bridge process, with its progress and output
kept for the page to follow.

They are the commands of :mod:`bridge.ops` (the same code as ``bridge backfill`` and the
others), so they keep their rules: ``replay`` refuses while the flow's consumer group has
members, which a bridge that runs the flow always is (stop the flow's apply processes, or
use ``dry_run``); ``reconcile`` with ``repair`` publishes corrective events.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from rich.console import Console

from bridge.config import Settings
from bridge.contract.codec import EventCodec
from bridge.engine.flow import resolve_flow
from bridge.errors import BridgeError
from bridge.kafka.publisher import EventPublisher
from bridge.kafka.state import StateStore
from bridge.kafka.topics import ensure_topics
from bridge.ops.backfill import Backfill, BackfillProgress, backfill
from bridge.ops.commands import api_clients, reconcile_flow, replay_dead_letters, replay_from
from bridge.ops.snapshots import snapshot_source

log = structlog.get_logger(__name__)

JobKind = Literal["backfill", "reconcile", "replay", "dlq-replay"]
KINDS: tuple[str, ...] = ("backfill", "reconcile", "replay", "dlq-replay")


@dataclass
class Job:
    """One operator command run by this process."""

    id: int
    kind: str
    flow: str
    options: dict[str, Any]
    state: Literal["running", "done", "failed"] = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The job as the admin API shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "flow": self.flow,
            "options": self.options,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": self.progress,
            "summary": self.summary,
            "output": self.output[-8000:],
        }


class JobRunner:
    """Starts jobs as tasks and keeps the last 50; :meth:`close` cancels the running ones."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ids = itertools.count(1)
        self.jobs: dict[int, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, kind: str, flow: str, options: dict[str, Any]) -> Job:
        """Start a job; raises :class:`~bridge.errors.ConfigError` for an unknown flow or
        kind, before anything runs."""
        resolve_flow(self._settings, flow)
        if kind not in KINDS:
            raise BridgeError(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}")
        job = Job(next(self._ids), kind, flow, options)
        self.jobs[job.id] = job
        for old in sorted(self.jobs)[:-50]:
            del self.jobs[old]
        task = asyncio.create_task(self._run(job), name=f"job:{job.id}:{kind}:{flow}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def close(self) -> None:
        """Cancel every running job and wait for it."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        out = io.StringIO()
        console = Console(file=out, width=120, force_terminal=False, color_system=None)
        log.info("job_started", job=job.id, kind=job.kind, flow=job.flow)
        try:
            job.summary = await self._command(job, console)()
            job.state = "done"
        except asyncio.CancelledError:
            job.state, job.summary = "failed", "cancelled: the bridge stopped"
            raise
        except BridgeError as exc:
            job.state, job.summary = "failed", str(exc)
        except Exception as exc:
            log.exception("job_crashed", job=job.id)
            job.state, job.summary = "failed", f"{exc.__class__.__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            job.output = out.getvalue()
            log.info("job_finished", job=job.id, state=job.state, summary=job.summary)

    def _command(self, job: Job, console: Console) -> Callable[[], Awaitable[str]]:
        settings, flow, options = self._settings, job.flow, job.options

        async def run_reconcile() -> str:
            repair = bool(options.get("repair"))
            report = await reconcile_flow(settings, flow, repair_drift=repair, console=console)
            job.progress = {"checked": report.checked, "drifted": report.drifted}
            return report.summary()

        async def run_replay() -> str:
            dry_run = bool(options.get("dry_run"))
            moment = str(options.get("from") or "")
            result = await replay_from(settings, flow, moment, dry_run=dry_run, console=console)
            moved = sum(r.moves for r in result.resets)
            return f"{'dry run: ' if dry_run else ''}{moved} partition(s) reset"

        async def run_dlq_replay() -> str:
            letters = await replay_dead_letters(settings, flow, all_pending=True, console=console)
            return f"replayed {len(letters)} dead letter(s)"

        commands = {
            "backfill": lambda: self._backfill(job),
            "reconcile": run_reconcile,
            "replay": run_replay,
            "dlq-replay": run_dlq_replay,
        }
        return commands[job.kind]

    async def _backfill(self, job: Job) -> str:
        """``bridge backfill`` with its progress reported to the job after every page."""
        settings = self._settings
        flow = resolve_flow(settings, job.flow)
        await ensure_topics(settings.kafka, [flow])
        codec = EventCodec.from_directory(settings.schemas_dir)
        page_size = int(job.options.get("page_size") or settings.poller.page_size)

        def show(progress: BackfillProgress) -> None:
            job.progress = {
                "pages": progress.pages,
                "published": progress.published,
                "total": progress.total,
            }

        async with (
            api_clients(settings) as clients,
            StateStore(settings.kafka) as state,
            EventPublisher(settings.kafka, codec) as publisher,
        ):
            source = snapshot_source(flow.entity, clients, flow.companies)
            runner = Backfill(flow, source, publisher, state, page_size=page_size)
            result = await backfill(
                runner, restart=bool(job.options.get("restart")), on_start=show, on_page=show
            )
        done = "complete" if result.complete else "interrupted"
        return f"{result.published_now} published now, {result.progress.published} in total; {done}"
