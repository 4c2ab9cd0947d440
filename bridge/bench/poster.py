"""The ingest scenario's load generator, run in processes of its own so that what the
scenario measures is the ingest process's capacity, not the capacity of a client sharing the
bench's interpreter (on a 2-core machine the client costs about as much CPU per request as
the receiver does).

Protocol of one generator (``python -m bridge.bench.poster URL BODIES CONCURRENCY SECONDS``):
it reads its bodies (one JSON document per line of the file ``BODIES``), opens its
connections, prints ``ready`` and waits for a line on stdin; then it POSTs every body to
``URL``, ``CONCURRENCY`` at a time, until done or ``SECONDS`` passed, and prints one JSON
line: :class:`PostResult`. Times are ``time.monotonic()``, which on Linux is one clock for
every process of the machine, so the bench joins several generators' results.

Contract: :func:`post_from_processes` stops every generator it started (by its own pid),
however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bridge.bench.processes import BenchError

LATENCY_SAMPLE_EVERY = 50
READY = b"ready\n"
RESULT_LIMIT = 1 << 26  # the result line lists every accepted answer's time


@dataclass
class PostResult:
    """What generators did: when they started and finished, the monotonic time of every
    accepted (200) answer, a latency sample (time, ms) every ``LATENCY_SAMPLE_EVERY``
    answers, and how many answers of each status (or client error) came back."""

    started: float = 0.0
    finished: float = 0.0
    done: list[float] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    """CPU time the generators used (the machine's share that the ingest process lacked)."""

    @property
    def seconds(self) -> float:
        """From the first generator's start to the last one's end."""
        return self.finished - self.started

    def merged(self, other: PostResult) -> PostResult:
        """Both results as one (the earliest start, the latest end)."""
        statuses = dict(self.statuses)
        for status, count in other.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
        return PostResult(
            started=min(self.started, other.started) if self.started else other.started,
            finished=max(self.finished, other.finished),
            done=sorted(self.done + other.done),
            latencies=self.latencies + other.latencies,
            statuses=statuses,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
        )


async def post_bodies(
    url: str, bodies: Sequence[bytes], concurrency: int, seconds: float
) -> PostResult:
    """POST every body, ``concurrency`` at a time, within ``seconds`` (timed from the first
    request, after the connections' setup)."""
    queue = iter(bodies)
    result = PostResult()
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        for body in queue:
            if time.monotonic() >= deadline:
                return
            sent = time.monotonic()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except aiohttp.ClientError as exc:
                status = type(exc).__name__
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == "200":
                now = time.monotonic()
                result.done.append(now)
                if len(result.done) % LATENCY_SAMPLE_EVERY == 0:
                    result.latencies.append((now, (now - sent) * 1000))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        result.started = time.monotonic()
        deadline = result.started + seconds
        await asyncio.gather(*(worker(session, deadline) for _ in range(concurrency)))
        result.finished = time.monotonic()
    return result


async def post_from_processes(
    url: str,
    bodies: Sequence[bytes],
    *,
    processes: int,
    concurrency: int,
    seconds: float,
    work_dir: Path,
) -> PostResult:
    """Split ``bodies`` over ``processes`` generators (``concurrency`` requests in flight in
    all), start them together once all are ready, and join their results."""
    paths = await asyncio.to_thread(_write_shares, bodies, processes, work_dir)
    per_process = max(1, concurrency // processes)
    started: list[asyncio.subprocess.Process] = []
    try:
        for path in paths:
            started.append(await _spawn(url, path, per_process, seconds))
        for process in started:
            await _expect_ready(process)
        for process in started:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        results = [await _result(process, seconds) for process in started]
    finally:
        for process in started:
            await _stop(process)
    joined = PostResult()
    for result in results:
        joined = joined.merged(result)
    return joined


def _write_shares(bodies: Sequence[bytes], processes: int, work_dir: Path) -> list[Path]:
    """One file of bodies per generator, one body per line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(processes):
        path = work_dir / f"poster-{index}.jsonl"
        path.write_bytes(b"\n".join(bodies[index::processes]) + b"\n")
        paths.append(path)
    return paths


async def _spawn(
    url: str, path: Path, concurrency: int, seconds: float
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.bench.poster",
        url,
        str(path),
        str(concurrency),
        str(seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=RESULT_LIMIT,
    )


async def _expect_ready(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if line != READY:
        raise BenchError(f"load generator {process.pid} did not start: {line!r}")


async def _result(process: asyncio.subprocess.Process, seconds: float) -> PostResult:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), seconds + 60)
    try:
        raw: dict[str, Any] = json.loads(line)
    except ValueError:
        raise BenchError(f"load generator {process.pid} gave no result: {line[:200]!r}") from None
    raw["latencies"] = [tuple(sample) for sample in raw["latencies"]]
    return PostResult(**raw)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 10)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _main(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> None:
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    await asyncio.to_thread(sys.stdin.readline)
    cpu = time.process_time()
    result = await post_bodies(url, bodies, concurrency, seconds)
    result.cpu_seconds = time.process_time() - cpu
    sys.stdout.buffer.write(json.dumps(asdict(result)).encode() + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    lines = Path(sys.argv[2]).read_bytes().splitlines()
    asyncio.run(_main(sys.argv[1], lines, int(sys.argv[3]), float(sys.argv[4])))
