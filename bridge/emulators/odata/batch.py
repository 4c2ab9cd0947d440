"""OData ``$batch`` (multipart/mixed) for both systems: parse, execute, render.

Contract of :func:`run_batch`:

- Operations run in order through the system's ``execute`` callback (the same dispatcher as
  plain requests), with ``$<Content-ID>`` references resolved to earlier results' URLs.
- A change set is atomic: it runs inside the store's transaction and any failing operation
  rolls all of it back; its response is then that single error.
- ``stop_on_error`` (Dataverse default): processing stops at the first failure and the whole
  batch answers 400 with that one error part. Otherwise (``odata.continue-on-error``, F&O)
  every part gets its own status and the batch answers 200.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http import HTTPStatus

from multidict import CIMultiDict

from bridge.emulators.common.errors import EmulatorError, bad_request
from bridge.emulators.common.protocol import ApiResponse


@dataclass(frozen=True)
class BatchOperation:
    """One request inside a batch."""

    method: str
    url: str
    headers: CIMultiDict[str]
    body: bytes
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """Operations that succeed or fail together."""

    operations: tuple[BatchOperation, ...]


@dataclass
class PartResult:
    """The response of one operation, with its Content-ID."""

    response: ApiResponse
    content_id: str | None = None


BatchItem = BatchOperation | ChangeSet
Executor = Callable[[BatchOperation, Mapping[str, str]], ApiResponse]
Transaction = Callable[[], AbstractContextManager[None]]


@dataclass
class BatchOutcome:
    """The batch status and its parts (a list for a change set)."""

    status: int
    parts: list[PartResult | list[PartResult]] = field(default_factory=list)


def _boundary(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None or not content_type.lower().startswith("multipart/mixed"):
        raise bad_request(
            "The batch request must have a multipart/mixed Content-Type with a boundary."
        )
    return match.group(1)


def _split_parts(body: str, boundary: str) -> Iterator[str]:
    delimiter = f"--{boundary}"
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        raise bad_request("The batch request body does not contain the boundary delimiter.")
    for chunk in chunks[1:]:
        if chunk.startswith("--"):
            return
        yield chunk.lstrip("\r\n")


def _headers_and_rest(text: str) -> tuple[CIMultiDict[str], str]:
    """MIME/HTTP headers up to the first blank line, and what follows it."""
    headers: CIMultiDict[str] = CIMultiDict()
    blank = re.match(r"\r?\n", text) or re.search(r"\r?\n\r?\n", text)
    head, rest = (text[: blank.start()], text[blank.end() :]) if blank else (text, "")
    for line in head.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers.add(name.strip(), value.strip())
    return headers, rest


def _operation(mime: CIMultiDict[str], content: str) -> BatchOperation:
    request_line, _, rest = content.partition("\n")
    parts = request_line.strip().split(" ")
    if len(parts) < 2:
        raise bad_request(f"Invalid request line in batch part: '{request_line.strip()}'.")
    headers, body = _headers_and_rest(rest)
    body = body.rstrip("\r\n")
    return BatchOperation(
        parts[0].upper(), parts[1], headers, body.encode(), mime.get("Content-ID")
    )


def parse_batch(content_type: str, body: bytes) -> list[BatchItem]:
    """The operations and change sets of a ``$batch`` request body."""
    items: list[BatchItem] = []
    for part in _split_parts(body.decode(), _boundary(content_type)):
        mime, content = _headers_and_rest(part)
        part_type = mime.get("Content-Type", "")
        if part_type.lower().startswith("multipart/mixed"):
            inner = [
                _operation(*_headers_and_rest(p))
                for p in _split_parts(content, _boundary(part_type))
            ]
            items.append(ChangeSet(tuple(inner)))
        else:
            items.append(_operation(mime, content))
    return items


class _Rollback(EmulatorError):
    def __init__(self, result: PartResult) -> None:
        super().__init__("change set failed")
        self.result = result


def _location(response: ApiResponse) -> str | None:
    return response.headers.get("OData-EntityId") or response.headers.get("Location")


class _Runner:
    def __init__(self, execute: Executor, transaction: Transaction) -> None:
        self.execute = execute
        self.transaction = transaction
        self.content_ids: dict[str, str] = {}

    def run(self, operation: BatchOperation) -> PartResult:
        url = operation.url
        if url.startswith("$"):
            ref, _, rest = url[1:].partition("/")
            if ref not in self.content_ids:
                raise bad_request(
                    f"Content-ID Reference: '${ref}' does not exist in the batch context."
                )
            url = self.content_ids[ref] + (f"/{rest}" if rest else "")
        refs = {f"${k}": v for k, v in self.content_ids.items()}
        response = self.execute(
            BatchOperation(operation.method, url, operation.headers, operation.body), refs
        )
        location = _location(response)
        if operation.content_id and location:
            self.content_ids[operation.content_id] = location
        return PartResult(response, operation.content_id)

    def run_change_set(self, change_set: ChangeSet) -> list[PartResult] | PartResult:
        try:
            with self.transaction():
                results = []
                for operation in change_set.operations:
                    if operation.method == "GET":
                        raise bad_request("GET requests are not allowed inside a change set.")
                    result = self.run(operation)
                    if result.response.status >= 400:
                        raise _Rollback(result)
                    results.append(result)
                return results
        except _Rollback as failure:
            return failure.result


def run_batch(
    items: list[BatchItem],
    execute: Executor,
    transaction: Transaction,
    *,
    stop_on_error: bool,
    max_operations: int,
) -> BatchOutcome:
    """Execute a parsed batch (see the module docstring for the contract)."""
    count = sum(len(i.operations) if isinstance(i, ChangeSet) else 1 for i in items)
    if count > max_operations:
        raise bad_request(
            f"The number of requests in the batch exceeds the limit of {max_operations}."
        )
    runner = _Runner(execute, transaction)
    outcome = BatchOutcome(200)
    for item in items:
        result = runner.run_change_set(item) if isinstance(item, ChangeSet) else runner.run(item)
        failed = isinstance(result, PartResult) and result.response.status >= 400
        if failed and stop_on_error:
            return BatchOutcome(400, [result])
        outcome.parts.append(result)
    return outcome


def _http_part(result: PartResult) -> str:
    response = result.response
    payload, content_type = response.encoded()
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if result.content_id:
        lines.append(f"Content-ID: {result.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return "\r\n".join([*lines, "", payload.decode()])


def render_batch(outcome: BatchOutcome) -> tuple[bytes, str]:
    """The multipart response body and its Content-Type."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks = []
    for part in outcome.parts:
        if isinstance(part, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            nested = "".join(f"--{inner}\r\n{_http_part(p)}\r\n" for p in part) + f"--{inner}--"
            chunks.append(
                f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{nested}\r\n"
            )
        else:
            chunks.append(f"--{boundary}\r\n{_http_part(part)}\r\n")
    body = "".join(chunks) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/mixed; boundary={boundary}"
