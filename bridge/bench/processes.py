"""The processes a benchmark starts: ``bridge emulate`` and ``bridge run --role …``, each in a
process group of its own, its pid in a pid file, its output in a log file.

Contract: :class:`ProcessSet` stops every process it started when its ``async with`` block
ends, however it ends (SIGTERM to the group, SIGKILL after a grace period), and removes its
pid files. A pid file left by a bench that was itself killed is cleaned up by the next run
(:func:`stop_leftovers`), which signals only process groups whose leader is still the
command the file names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from bridge.errors import BridgeError

STOP_GRACE_SECONDS = 20.0


class BenchError(BridgeError):
    """A benchmark could not run (a process did not start, a scenario produced nothing)."""


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set size of a live process (Linux ``VmHWM``), in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Started:
    """One started process: its name, the Popen handle and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    pid_file: Path
    admin_port: int | None = None
    peak_mb: float = 0.0

    def sample_rss(self) -> float:
        """Update and return the peak RSS seen so far (MiB)."""
        now = peak_rss_mb(self.process.pid)
        if now is not None:
            self.peak_mb = max(self.peak_mb, now)
        return self.peak_mb


@dataclass
class ProcessSet:
    """Async context manager owning the processes of one scenario (see the module docstring)."""

    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    profile: frozenset[str] = frozenset()
    """Names of processes to run under cProfile (``<run dir>/<name>.prof``)."""
    started: dict[str, Started] = field(default_factory=dict)

    async def __aenter__(self) -> Self:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop_all))

    def start(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str] | None = None,
        admin_port: int | None = None,
    ) -> Started:
        """Start ``python -m bridge <args>`` as ``name`` in a new process group (a bridge
        process serving its admin API on ``admin_port``)."""
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("wb")
        full_env = {**os.environ, **self.env, **(env or {})}
        profiler: list[str] = []
        if name in self.profile:
            # cProfile writes its file when the process exits on SIGTERM (a clean shutdown)
            profiler = ["-m", "cProfile", "-o", str(self.run_dir / f"{name}.prof")]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *profiler, "-m", "bridge", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        pid_file = self.run_dir / f"{name}.pid"
        pid_file.write_text(f"{process.pid}\n{' '.join(args)}\n")
        started = Started(name, process, log_path, log, pid_file, admin_port)
        self.started[name] = started
        return started

    def stop(self, name: str) -> Started:
        """Stop one process (SIGTERM to its group, SIGKILL after the grace period)."""
        started = self.started.pop(name)
        started.sample_rss()
        _stop_group(started.process)
        started.log.close()
        started.pid_file.unlink(missing_ok=True)
        return started

    def stop_all(self) -> None:
        """Stop every process still running, newest first."""
        for name in reversed(list(self.started)):
            with contextlib.suppress(Exception):
                self.stop(name)

    def check_alive(self) -> None:
        """Raise :class:`BenchError` naming a process that exited, with its log's tail."""
        for started in self.started.values():
            if started.process.poll() is not None:
                tail = started.log_path.read_text(errors="replace")[-2000:]
                raise BenchError(
                    f"{started.name} exited with {started.process.returncode}:\n{tail}"
                )


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_GRACE_SECONDS)


def stop_leftovers(root: Path) -> list[int]:
    """Stop process groups that a killed earlier bench left (from its pid files)."""
    stopped = []
    for pid_file in root.glob("**/*.pid"):
        lines = pid_file.read_text().splitlines()
        pid_file.unlink(missing_ok=True)
        if not lines or not lines[0].isdigit():
            continue
        pid = int(lines[0])
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "bridge" in command and len(lines) > 1 and lines[1] in command:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
                stopped.append(pid)
    return stopped


async def wait_http(url: str, wait_seconds: float, processes: ProcessSet) -> None:
    """Wait until ``url`` answers 200; fail early if a started process died."""
    deadline = time.monotonic() + wait_seconds
    async with httpx.AsyncClient(timeout=2.0) as probe:
        while time.monotonic() < deadline:
            processes.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await probe.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise BenchError(f"{url} did not answer within {wait_seconds:g} s")
