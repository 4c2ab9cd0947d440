"""Transport-neutral request/response objects, so one handler serves a plain HTTP request
and a ``$batch`` part alike, plus ``Prefer`` header parsing.

I/O stays at the edge: :func:`to_web_response` is the only place an
:class:`ApiResponse` becomes an aiohttp response.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from bridge.emulators.common.errors import bad_request
from bridge.emulators.common.principals import Principal

JSON_MINIMAL = "application/json; odata.metadata=minimal"
ODATA_HEADERS = {"OData-Version": "4.0"}


@dataclass(frozen=True)
class Preferences:
    """The ``Prefer`` header values the emulators understand."""

    return_representation: bool = False
    max_page_size: int | None = None
    include_annotations: tuple[str, ...] = ()
    track_changes: bool = False
    continue_on_error: bool = False

    def wants_annotation(self, name: str) -> bool:
        """Whether ``odata.include-annotations`` asks for annotation ``name``."""
        included = [p for p in self.include_annotations if not p.startswith("-")]
        excluded = [p[1:] for p in self.include_annotations if p.startswith("-")]
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in excluded):
            return False
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in included)


def parse_prefer(values: list[str]) -> Preferences:
    """Parse every ``Prefer`` header value of a request."""
    options: dict[str, str] = {}
    for value in values:
        for item in _split_prefer(value):
            name, _, setting = item.partition("=")
            options[name.strip().lower()] = setting.strip().strip('"')
    size = options.get("odata.maxpagesize")
    annotations = options.get("odata.include-annotations")
    return Preferences(
        return_representation=options.get("return") == "representation",
        max_page_size=int(size) if size and size.isdigit() and int(size) > 0 else None,
        include_annotations=tuple(a.strip() for a in annotations.split(",")) if annotations else (),
        track_changes="odata.track-changes" in options,
        continue_on_error="odata.continue-on-error" in options,
    )


def _split_prefer(value: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


@dataclass(frozen=True)
class ApiRequest:
    """One API call: method, path relative to the service root, decoded query, headers,
    body and the authenticated principal. ``service_root`` ends with ``/``."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDict[str]
    body: bytes
    principal: Principal
    service_root: str
    content_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def prefer(self) -> Preferences:
        """The request's preferences."""
        return parse_prefer(self.headers.getall("Prefer", []))

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 when it is not one."""
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise bad_request(
                "Invalid JSON. A token was not recognized in the JSON content."
            ) from None
        if not isinstance(data, dict):
            raise bad_request("The request body must be a JSON object.")
        return data


@dataclass
class ApiResponse:
    """What a handler answers: status, JSON body or text, headers."""

    status: int
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str | None = None
    cost: int = 1
    """Operations the request carried (a ``$batch`` holds many), for resource throttling."""

    def encoded(self) -> tuple[bytes, str | None]:
        """The body bytes and content type."""
        if self.raw is not None:
            return self.raw, self.content_type
        if self.body is not None:
            # orjson: every answer of both emulators is encoded here (compact, like json's
            # with these separators; text keys only, as OData's are)
            return orjson.dumps(self.body), JSON_MINIMAL
        if self.text is not None:
            return self.text.encode(), "text/plain"
        return b"", None


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> ApiResponse:
    """A JSON response with OData headers."""
    return ApiResponse(status, body=body, headers={**ODATA_HEADERS, **(headers or {})})


def empty_response(status: int = 204, headers: Mapping[str, str] | None = None) -> ApiResponse:
    """A body-less response with OData headers."""
    return ApiResponse(status, headers={**ODATA_HEADERS, **(headers or {})})


def to_web_response(response: ApiResponse) -> web.Response:
    """The aiohttp response of an :class:`ApiResponse`."""
    payload, content_type = response.encoded()
    headers = dict(response.headers)
    if content_type:
        headers["Content-Type"] = content_type
    return web.Response(status=response.status, body=payload if payload else None, headers=headers)
