"""An authenticated, retrying OData client for one Dynamics API (Dataverse or F&O).

Every request goes through :func:`classify_response` and the one :class:`RetryPolicy`.
A 401 gets one fresh token before it counts as :class:`FlowBlocked`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from bridge.config import ApiSettings
from bridge.http.responses import classify_response, classify_transport_error
from bridge.http.retry import RetryPolicy
from bridge.http.tokens import TokenProvider
from bridge.tls import client_context

ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


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
        self.tokens = TokenProvider(settings, self._http)

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
    ) -> httpx.Response:
        """Send one request with retries; return the response or raise a classified error."""
        url = self.url(path)

        async def attempt() -> httpx.Response:
            return await self._send(method, url, json=json, params=params, headers=headers)

        return await self._policy.call(attempt, what=f"{method} {httpx.URL(url).path}")

    async def get_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """GET and decode a JSON object."""
        response = await self.request("GET", path, **kwargs)
        body: dict[str, Any] = response.json()
        return body

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
        method: str,
        url: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        for fresh_token in (False, True):
            if fresh_token:
                self.tokens.invalidate()
            request_headers = {
                **ODATA_HEADERS,
                "Authorization": f"Bearer {await self.tokens.token()}",
                **(headers or {}),
            }
            try:
                response = await self._http.request(
                    method, url, json=json, params=params, headers=request_headers
                )
            except httpx.HTTPError as exc:
                raise classify_transport_error(exc, method, url) from None
            if response.status_code != 401:
                break
        classify_response(response)
        return response
