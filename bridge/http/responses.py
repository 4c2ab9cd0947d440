"""The one place that turns a Dynamics HTTP response into success or an error of the tree.

=========================  ==========================================================
Answer                      Error (what the caller does)
=========================  ==========================================================
2xx, 304                    none
401, 403                    :class:`FlowBlocked` — pause the flow, keep its offsets
404                         :class:`NotFound` — the sink decides (create, or no-op)
412                         :class:`PreconditionFailed` — re-read and retry the write
429                         :class:`Throttled` — back off, honouring Retry-After
500 "record already exists" :class:`AlreadyExists` — F&O's answer to a duplicate create
5xx                         :class:`TargetUnavailable` — back off and retry
other 4xx                   :class:`TargetRejected` — this event goes to the dead letters
=========================  ==========================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bridge.errors import (
    AlreadyExists,
    FlowBlocked,
    NotFound,
    PreconditionFailed,
    TargetRejected,
    TargetUnavailable,
    Throttled,
)

_MAX_MESSAGE = 300
_DUPLICATE_MARKERS = ("record already exists", "matching key values already exists")


def error_detail(response: httpx.Response) -> tuple[str, str]:
    """The ``(code, message)`` of an OData error body, shortened; empty strings if absent."""
    try:
        body: Any = response.json()
    except ValueError:
        return "", response.text[:_MAX_MESSAGE]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", str(body)[:_MAX_MESSAGE]
    inner = error.get("innererror")
    message = str(error.get("message") or "")
    if isinstance(inner, dict) and inner.get("message"):
        message = f"{message} {inner['message']}".strip()
    return str(error.get("code") or ""), message[:_MAX_MESSAGE]


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse ``Retry-After`` (delta seconds or an HTTP date); ``None`` if absent or invalid."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_response(response: httpx.Response) -> None:
    """Return if the response is a success; otherwise raise the matching error."""
    status = response.status_code
    if status < 300 or status == 304:
        return
    code, message = error_detail(response)
    where = f"{response.request.method} {response.request.url.path}"
    text = f"{where} -> {status} {code} {message}".strip()
    if status in (401, 403):
        raise FlowBlocked(text, status=status)
    if status == 404:
        raise NotFound(text)
    if status == 412:
        if any(marker in message.lower() for marker in _DUPLICATE_MARKERS):
            raise AlreadyExists(text)
        raise PreconditionFailed(text)
    if status == 429:
        raise Throttled(text, retry_after=retry_after_seconds(response))
    if status >= 500:
        if any(marker in message.lower() for marker in _DUPLICATE_MARKERS):
            raise AlreadyExists(text)
        raise TargetUnavailable(text, retry_after=retry_after_seconds(response))
    raise TargetRejected(text, status=status, code=code)


def classify_transport_error(exc: httpx.HTTPError, method: str, url: str) -> TargetUnavailable:
    """A timeout or connection failure, as a retriable error (no secrets in the text)."""
    return TargetUnavailable(f"{method} {httpx.URL(url).path} -> {exc.__class__.__name__}")
