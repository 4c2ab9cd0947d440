"""OAuth2 client-credentials tokens for one API, cached until shortly before they expire."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx

from bridge.config import ApiSettings
from bridge.errors import FlowBlocked, TargetUnavailable
from bridge.metrics import target_name, token_refreshed

_EARLY_REFRESH_SECONDS = 120


class TokenProvider:
    """Fetches and caches a bearer token; one request at a time, refreshed before expiry.

    The client secret is sent only in the token request body; it is never logged or put in
    an error message.
    """

    def __init__(self, settings: ApiSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    async def token(self) -> str:
        """A valid access token, fetched if none is cached or it is about to expire."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (after a 401) so the next call fetches a new one."""
        self._token = None

    async def claims(self) -> dict[str, Any]:
        """The unverified claims of the current token (used to learn the bridge's ``oid``)."""
        token = await self.token()
        try:
            payload = token.split(".")[1]
            decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            claims = json.loads(decoded)
        except (IndexError, ValueError):
            return {}
        return claims if isinstance(claims, dict) else {}

    async def _fetch(self) -> None:
        settings = self._settings
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
            "scope": settings.token_scope,
        }
        try:
            response = await self._http.post(settings.token_url, data=form)
        except httpx.HTTPError as exc:
            raise TargetUnavailable(
                f"token endpoint unreachable: {exc.__class__.__name__}"
            ) from None
        if response.status_code >= 500:
            raise TargetUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            error = _oauth_error(response)
            raise FlowBlocked(f"token request refused: {error}", status=response.status_code)
        body = response.json()
        self._token = str(body["access_token"])
        token_refreshed(target_name(settings))
        lifetime = float(body.get("expires_in", 3599))
        self._expires_at = time.monotonic() + max(lifetime - _EARLY_REFRESH_SECONDS, lifetime / 2)


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return f"{body.get('error', 'error')} (HTTP {response.status_code})"
