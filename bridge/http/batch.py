"""OData ``$batch`` on the client side: many change sets in one multipart request, and each
change set's own answer back (spec A.7, B.1).

A change set succeeds or fails as a whole; with ``Prefer: odata.continue-on-error``
(Dataverse) and always on F&O, one failing change set does not stop the others, so each
caller gets its own answer. A request names an earlier request of its own change set as
``$<n>`` (its 1-based position there) in its URL or in a top-level body value (an
``@odata.bind``); :func:`encode_batch` numbers the Content-IDs of the whole batch uniquely and
rewrites those references to match, so a reference can never reach into another change set. Answers are plain ``httpx.Response`` objects, so the one
classifier (:func:`bridge.http.responses.classify_response`) judges them like any other.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bridge.errors import TargetUnavailable


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One operation of a change set; ``url`` is absolute."""

    method: str
    url: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


ChangeSet = Sequence[BatchRequest]


def encode_batch(change_sets: Sequence[ChangeSet]) -> tuple[bytes, str]:
    """The multipart body of ``change_sets`` (one change set each) and its Content-Type."""
    boundary = f"batch_{uuid.uuid4()}"
    chunks = []
    offset = 0
    for change_set in change_sets:
        inner = f"changeset_{uuid.uuid4()}"
        parts = [
            _encode_operation(_renumbered(op, offset, len(change_set)), offset + index)
            for index, op in enumerate(change_set, start=1)
        ]
        offset += len(change_set)
        nested = "".join(f"--{inner}\r\n{part}\r\n" for part in parts) + f"--{inner}--"
        chunks.append(
            f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{nested}\r\n"
        )
    body = "".join(chunks) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/mixed; boundary={boundary}"


def batch_operations(change_sets: Sequence[ChangeSet]) -> int:
    """How many operations a batch of ``change_sets`` carries: what F&O's throttling counts
    it as (spec B.3), and so what the limiter paces it by (``ApiClient.request``)."""
    return sum(len(change_set) for change_set in change_sets)


def _renumbered(operation: BatchRequest, offset: int, size: int) -> BatchRequest:
    """``operation`` with its change-set-local ``$n`` references moved by ``offset``."""
    if offset == 0:
        return operation

    def moved(value: Any) -> Any:
        if isinstance(value, str) and _REFERENCE.fullmatch(value) and int(value[1:]) <= size:
            return f"${int(value[1:]) + offset}"
        return value

    url = operation.url
    head, slash, rest = url.partition("/")
    if _REFERENCE.fullmatch(head):
        url = moved(head) + slash + rest
    body = operation.json
    if isinstance(body, dict):
        body = {name: moved(value) for name, value in body.items()}
    return BatchRequest(operation.method, url, body, operation.headers)


_REFERENCE = re.compile(r"\$[1-9][0-9]*")


def _encode_operation(operation: BatchRequest, content_id: int) -> str:
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        f"Content-ID: {content_id}",
        "",
        f"{operation.method} {operation.url} HTTP/1.1",
        *(f"{name}: {value}" for name, value in operation.headers.items()),
    ]
    payload = ""
    if operation.json is not None:
        lines.append("Content-Type: application/json; type=entry")
        payload = orjson.dumps(operation.json).decode()
    return "\r\n".join([*lines, "", payload])


def decode_batch(
    response: httpx.Response, change_sets: Sequence[ChangeSet]
) -> list[list[httpx.Response]]:
    """Each change set's answers, in request order: one response per operation when it
    succeeded, a single error response when it failed (and was rolled back).

    Raises :class:`TargetUnavailable` when the body does not answer every change set (a
    server that stopped at an error without ``continue-on-error`` answers fewer)."""
    boundary = _boundary(response.headers.get("Content-Type", ""))
    answers = []
    for part in _parts(response.text, boundary):
        mime, content = _split_head(part)
        part_type = mime.get("content-type", "")
        if part_type.lower().startswith("multipart/mixed"):
            inner = _boundary(part_type)
            answers.append([_http_response(_split_head(p)[1]) for p in _parts(content, inner)])
        else:
            answers.append([_http_response(content)])
    if len(answers) != len(change_sets):
        raise TargetUnavailable(f"$batch answered {len(answers)} of {len(change_sets)} change sets")
    for answer, change_set in zip(answers, change_sets, strict=True):
        for index, each in enumerate(answer):
            operation = change_set[min(index, len(change_set) - 1)]
            each.request = httpx.Request(operation.method, operation.url)
    return answers


def _boundary(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise TargetUnavailable(f"$batch answer without a multipart boundary: {content_type!r}")
    return match.group(1)


def _parts(body: str, boundary: str) -> list[str]:
    chunks = body.split(f"--{boundary}")
    return [c.lstrip("\r\n") for c in chunks[1:] if not c.startswith("--")]


def _split_head(text: str) -> tuple[dict[str, str], str]:
    """Header lines up to the first blank line (lower-case names), and the rest."""
    blank = re.match(r"\r?\n", text) or re.search(r"\r?\n\r?\n", text)
    head, rest = (text[: blank.start()], text[blank.end() :]) if blank else (text, "")
    headers = {}
    for line in head.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _http_response(content: str) -> httpx.Response:
    status_line, _, rest = content.partition("\n")
    status = int(status_line.split(" ")[1])
    headers, body = _split_head(rest)
    return httpx.Response(status, headers=headers, content=body.rstrip("\r\n").encode())
