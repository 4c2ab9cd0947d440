"""A leader-election candidate as its own OS process, for tests that kill it.

``python -m tests.support.leader_candidate BOOTSTRAP PREFIX GROUP MARKER`` joins the
election; while it leads, MARKER holds its pid (removed when it stops leading gracefully;
left behind when the process is killed). Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from bridge.config import KafkaSettings, LogSettings
from bridge.kafka.leadership import LeaderElection
from bridge.logs import configure_logging


async def hold_marker(marker: Path) -> None:
    """The leader's work: announce leadership in ``marker`` until cancelled."""
    # written aside and renamed: a reader polling for the marker must never see it
    # created but still empty (``write_text`` creates the file before it writes)
    staged = marker.with_name(marker.name + ".tmp")
    await asyncio.to_thread(staged.write_text, str(os.getpid()))
    await asyncio.to_thread(staged.replace, marker)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(marker.unlink, missing_ok=True)


async def run(bootstrap: str, prefix: str, group: str, marker: Path) -> None:
    """Lead (or wait to lead) until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    async with LeaderElection(settings, group) as election:
        leading = asyncio.create_task(election.lead(lambda: hold_marker(marker)))
        await stop.wait()
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading


def main() -> None:
    """Entry point: ``BOOTSTRAP PREFIX GROUP MARKER``."""
    bootstrap, prefix, group, marker = sys.argv[1:5]
    configure_logging(LogSettings(format="json"), stream=sys.stdout)
    asyncio.run(run(bootstrap, prefix, group, Path(marker)))


if __name__ == "__main__":
    main()
