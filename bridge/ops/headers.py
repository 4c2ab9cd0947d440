"""Headers the operator commands put on the events they publish.

``bridge.force=1`` asks the flow consumer to apply an event even when its record version
equals the one already applied (a version *older* than the applied one is still skipped),
so a corrective event re-applies a version the target has drifted from. ``replay.of``
names the dead letter an event was re-published from: ``<topic>:<partition>:<offset>``.

``FORCE_HEADER`` is defined once, by :mod:`bridge.kafka.consumer`, which honours it.
"""

from __future__ import annotations

from bridge.engine.dead_letters import HEADER_PREFIX
from bridge.engine.retries import PREFIX as RETRY_PREFIX
from bridge.engine.runner import FORCE_HEADER
from bridge.engine.stream import Headers
from bridge.ops.ports import RawRecord

REPLAY_OF_HEADER = "replay.of"
FORCE: tuple[str, bytes] = (FORCE_HEADER, b"1")


def replay_headers(dead_letter: RawRecord) -> list[tuple[str, bytes]]:
    """The headers of a dead letter's replay: its original headers without the ``dlq.*``
    context, the ``retry.*`` state (a replay gets a fresh retry budget) and any earlier
    replay marker; then ``replay.of`` and ``bridge.force``."""
    dropped = (REPLAY_OF_HEADER, FORCE_HEADER)
    kept = [
        (name, value)
        for name, value in dead_letter.headers
        if not name.startswith((HEADER_PREFIX, RETRY_PREFIX)) and name not in dropped
    ]
    origin = f"{dead_letter.topic}:{dead_letter.ref}".encode()
    return [*kept, (REPLAY_OF_HEADER, origin), FORCE]


def header_value(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` as text, or ``None``."""
    found = [value for key, value in headers if key == name]
    return found[-1].decode(errors="replace") if found else None
