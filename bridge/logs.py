"""structlog set-up: JSON lines when not on a terminal, coloured key=value on one.

Log calls use snake_case event names and bound context (``flow``, ``event_id``, ``topic``,
``partition``, ``offset``, ``target_key``). A redaction processor drops any value whose key
looks like a secret, so a careless ``log.info(..., client_secret=...)`` cannot leak one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bridge.config import LogSettings

_SECRET_MARKERS = ("secret", "password", "token", "authorization", "authvalue", "webhook_key")


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret by ``"[redacted]"``."""
    for key in list(event_dict):
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Configure structlog and the standard library root logger once per process."""
    out = stream or sys.stderr
    as_json = settings.format == "json" or (settings.format == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelNamesMapping()[settings.level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=out, force=True)
