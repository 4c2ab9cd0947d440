"""An authenticated, retrying OData client for one Dynamics API (Dataverse or F&O).

Every request goes through :func:`classify_response` and the one :class:`RetryPolicy`.
A 401 gets one fresh token before it counts as :class:`FlowBlocked`.

The bridge may hold several application registrations per API (Microsoft's advice for
multiplying the per-user service-protection limits): each has its own token and its own
adaptive window (:class:`AdaptiveLimiter`), and every attempt goes to the registration with
the most room in its window. Each request tells its limiter how many operations the service
counts for it (:attr:`ApiSettings.limits_count_operations`): F&O weighs a ``$batch`` by its
operations, Dataverse counts every HTTP request once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from bridge.config import ApiSettings
from bridge.errors import Throttled
from bridge.http.limiter import AdaptiveLimiter, LimiterSettings
from bridge.http.responses import classify_response, classify_transport_error
from bridge.http.retry import RetryPolicy
from bridge.http.tokens import TokenProvider
from bridge.metrics import http_answered, http_retried, target_name
from bridge.tls import client_context

ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


class AppRegistration:
    """One client id of the bridge on one API: its tokens and its window of requests."""

    def __init__(
        self, settings: ApiSettings, http: httpx.AsyncClient, limits: LimiterSettings
    ) -> None:
        self.client_id = settings.client_id
        self.tokens = TokenProvider(settings, http)
        self.limiter = AdaptiveLimiter(limits, name=settings.client_id)


class ApiClient:
    """Async context manager around ``httpx.AsyncClient`` for one API.

    ``path`` arguments are relative to the API root (``/api/data/v9.2`` or ``/data``);
    absolute URLs (an ``@odata.nextLink``) are used as they are.
    """

    def __init__(
        self,
        settings: ApiSettings,
        api_path: str,
        policy: RetryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.root = f"{settings.base_url}{api_path}"
        self._policy = policy
        limits = httpx.Limits(max_connections=settings.max_connections)
        self._http = httpx.AsyncClient(
            timeout=settings.timeout_seconds,
            limits=limits,
            transport=transport,
            verify=client_context(settings.ca_file) if settings.ca_file else True,
        )
        window = LimiterSettings(
            initial=min(settings.concurrency_initial, settings.concurrency_max),
            maximum=settings.concurrency_max,
        )
        self.registrations = [
            AppRegistration(each, self._http, window) for each in settings.registrations()
        ]
        self.tokens = self.registrations[0].tokens
        """The main registration's tokens (its ``oid`` names the bridge in F&O)."""
        self.target = target_name(settings)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.root}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        registration: int | None = None,
        operations: int = 1,
    ) -> httpx.Response:
        """Send one request with retries; return the response or raise a classified error.

        ``content`` is a raw body (a ``$batch``); ``registration`` pins the request to one
        registration (to ask ``WhoAmI`` as each of them), else each attempt takes the one
        with the most room. ``operations`` is how many operations the body carries (a
        ``$batch``'s), which the limiter paces by where the service counts them."""
        url = self.url(path)
        body = content if json is None else orjson.dumps(json)
        request_headers = dict(headers or {})
        if json is not None:
            request_headers.setdefault("Content-Type", "application/json")
        attempts = 0
        cost = operations if self.settings.limits_count_operations else 1

        async def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                http_retried(self.target)
            chosen = self._choose(registration)
            try:
                async with chosen.limiter.slot(cost) as report:
                    response = await self._send(chosen, method, url, body, params, request_headers)
                    report.headers = response.headers
                    return response
            except Throttled as exc:
                # the limits count per principal: another registration with room takes the
                # retry at once instead of waiting out this one's Retry-After
                if registration is None and self._choose(None).limiter.free > 0:
                    raise Throttled(str(exc), retry_after=0.0) from exc
                raise

        return await self._policy.call(attempt, what=f"{method} {httpx.URL(url).path}")

    async def get_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """GET and decode a JSON object."""
        response = await self.request("GET", path, **kwargs)
        return parse_json_object(response)

    def _choose(self, pinned: int | None) -> AppRegistration:
        if pinned is not None:
            return self.registrations[pinned]
        return max(self.registrations, key=lambda r: r.limiter.free)

    async def pages(
        self, path: str, *, params: Mapping[str, str] | None = None, page_size: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every page of a collection, following ``@odata.nextLink``."""
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        body = await self.get_json(path, params=params, headers=headers)
        yield body
        while next_link := body.get("@odata.nextLink"):
            body = await self.get_json(next_link, headers=headers)
            yield body

    async def _send(
        self,
        registration: AppRegistration,
        method: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        tokens = registration.tokens
        for fresh_token in (False, True):
            if fresh_token:
                tokens.invalidate()
            request_headers = {
                **ODATA_HEADERS,
                "Authorization": f"Bearer {await tokens.token()}",
                **headers,
            }
            try:
                response = await self._http.request(
                    method, url, content=content, params=params, headers=request_headers
                )
            except httpx.HTTPError as exc:
                raise classify_transport_error(exc, method, url) from None
            http_answered(self.target, response.status_code)
            if response.status_code != 401:
                break
        classify_response(response)
        return response


def parse_json_object(response: httpx.Response) -> dict[str, Any]:
    """A response body that must be a JSON object, parsed with orjson (the hot path).

    Raises ``ValueError`` for anything else, as ``response.json()`` would."""
    body = orjson.loads(response.content)
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body
