"""OAuth2 client-credentials tokens for one Dynamics API, from Microsoft Entra ID through
MSAL, cached and refreshed before they expire.

Credentials: the app registration's client secret, or its certificate — a PEM private key
with its certificate (or with ``client_certificate_thumbprint``), or a PFX file — which MSAL
turns into a signed client assertion. MSAL keeps the tokens in its token cache and fetches
a new one when the cached one has less than five minutes left; MSAL is synchronous, so each
call runs in a worker thread, never on the event loop.

MSAL accepts only an ``https://`` authority (it parses the authority and rejects any other
scheme). A token URL over plain ``http://`` is therefore served by a minimal form post of
the same grant (dynamics-apis.md A.10); :mod:`bridge.security` allows plain HTTP only on
loopback, which is the local emulators' default. Against the emulators over TLS, or Entra
ID, MSAL is used. For a private authority's CA set ``ca_file``.

Secrets and tokens are never logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import Any, Protocol

import httpx
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge.config import ApiSettings
from bridge.errors import ConfigError, FlowBlocked, TargetUnavailable
from bridge.metrics import target_name, token_refreshed
from bridge.security import is_loopback_host

# MSAL treats a cached token with less than this left as expired; the provider asks MSAL
# again at the same point, so the token in use is always one MSAL would still hand out.
_EARLY_REFRESH_SECONDS = 300
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


class _TokenSource(Protocol):
    async def acquire(self) -> tuple[str, float]:
        """A token and its remaining lifetime in seconds."""
        ...

    def forget(self) -> None:
        """Drop cached tokens so the next ``acquire`` asks the authority."""
        ...


class TokenProvider:
    """Fetches and caches a bearer token; one request at a time, refreshed before expiry.

    ``token()`` raises :class:`TargetUnavailable` when the authority cannot be reached or
    answers 5xx, and :class:`FlowBlocked` when it refuses the credentials or the scope.
    """

    def __init__(self, settings: ApiSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._source: _TokenSource
        if settings.token_url.startswith("https://"):
            self._source = _MsalSource(settings)
        else:
            self._source = _FormPostSource(settings, http)

    async def token(self) -> str:
        """A valid access token, fetched if none is cached or it is about to expire."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                token, lifetime = await self._source.acquire()
                token_refreshed(target_name(self._settings))
                self._token = token
                self._refresh_at = time.monotonic() + max(
                    lifetime - _EARLY_REFRESH_SECONDS, lifetime / 2
                )
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (after a 401) so the next call fetches a new one."""
        self._token = None
        self._source.forget()

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


class _MsalSource:
    """Tokens from MSAL's ``ConfidentialClientApplication`` and its in-memory token cache."""

    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings
        self._credential = client_credential(settings)  # a bad file fails now, at build
        self._app: Any = None

    async def acquire(self) -> tuple[str, float]:
        try:
            result = await asyncio.to_thread(self._acquire)
        except requests.RequestException as exc:
            raise TargetUnavailable(
                f"token authority unreachable: {exc.__class__.__name__}"
            ) from None
        except ValueError as exc:  # MSAL: the authority's discovery documents refused
            raise FlowBlocked(f"token authority refused: {_first_line(exc)}", status=400) from None
        if "access_token" in result:
            return str(result["access_token"]), float(result.get("expires_in", 3599))
        raise _refusal(result)

    def forget(self) -> None:
        if self._app is None:
            return
        cache = self._app.token_cache
        for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(entry)

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:  # its constructor already calls the authority
            self._app = self._application()
        result = self._app.acquire_token_for_client(scopes=[self._settings.token_scope])
        return result if isinstance(result, dict) else {}

    def _application(self) -> Any:
        settings = self._settings
        authority = settings.authority or settings.base_url
        host = httpx.URL(authority).host
        return msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=self._credential,
            authority=f"{authority}/{settings.tenant}",
            http_client=_AuthorityHttp(settings.ca_file, settings.timeout_seconds),
            # Instance discovery asks login.microsoftonline.com whether the authority is a
            # Microsoft cloud; MSAL skips it for Microsoft's hosts and a local emulator is
            # none, so it is off there (MSAL's documented switch for private authorities).
            instance_discovery=False if is_loopback_host(host) else None,
            token_cache=msal.TokenCache(),
        )


class _AuthorityHttp:
    """The HTTP client MSAL talks to the authority with (MSAL's ``HttpClient`` shape).

    Two differences from the ``requests`` session MSAL would make: a configured CA file is
    passed with every request, because requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` override a session's ``verify``; and each call uses its own session,
    closed at once (a token is fetched about once an hour, so a pooled connection would only
    linger)."""

    def __init__(self, ca_file: Path | None, timeout: float) -> None:
        self._options: dict[str, Any] = {"timeout": timeout}
        if ca_file is not None:
            self._options["verify"] = str(ca_file)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._call("GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._call("POST", url, kwargs)

    def close(self) -> None:
        pass  # no session outlives a call

    def _call(self, method: str, url: str, kwargs: dict[str, Any]) -> Any:
        with requests.Session() as session:
            session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
            return session.request(method, url, **{**kwargs, **self._options})


def client_credential(settings: ApiSettings) -> str | dict[str, Any]:
    """MSAL's ``client_credential``: the secret, or the certificate's key and thumbprint.

    A PEM file must hold the private key and either the certificate (MSAL then signs with
    PS256 and its SHA-256 thumbprint) or be paired with ``client_certificate_thumbprint``
    (SHA-1, RS256). A ``.pfx``/``.p12`` file is handed to MSAL as it is."""
    path = settings.client_certificate_file
    password = settings.client_certificate_password
    passphrase = password.get_secret_value() if password else None
    if path is None:
        return settings.client_secret.get_secret_value()
    if path.suffix.lower() in (".pfx", ".p12"):
        _readable(path)
        return {"private_key_pfx_path": str(path), "passphrase": passphrase}
    data = _readable(path)
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode() if passphrase else None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"client certificate {path}: no usable private key ({exc})") from None
    credential: dict[str, Any] = {"private_key": key}
    if settings.client_certificate_thumbprint:
        credential["thumbprint"] = settings.client_certificate_thumbprint.replace(":", "")
        return credential
    certificates = _PEM_CERTIFICATE.findall(data)
    if not certificates:
        raise ConfigError(
            f"client certificate {path} holds no certificate: add it to the file or set "
            "client_certificate_thumbprint"
        )
    x509.load_pem_x509_certificate(certificates[0])  # fails early on a damaged one
    credential["public_certificate"] = b"\n".join(certificates).decode()
    return credential


def _readable(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"client certificate {path}: {exc.strerror}") from None


def _refusal(result: dict[str, Any]) -> Exception:
    error = str(result.get("error", "error"))
    codes = result.get("error_codes") or []
    code = f" (AADSTS{codes[0]})" if codes else ""
    if error in _TRANSIENT_OAUTH_ERRORS:
        return TargetUnavailable(f"token authority answered {error}{code}")
    status = 401 if error in ("invalid_client", "unauthorized_client") else 400
    return FlowBlocked(f"token request refused: {error}{code}", status=status)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class _FormPostSource:
    """The client-credentials grant as one form post, for a plain-HTTP token URL (the local
    emulators on loopback), where MSAL cannot be used."""

    def __init__(self, settings: ApiSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    async def acquire(self) -> tuple[str, float]:
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
        return str(body["access_token"]), float(body.get("expires_in", 3599))

    def forget(self) -> None:
        pass  # nothing cached here; TokenProvider drops its copy


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return f"{body.get('error', 'error')} (HTTP {response.status_code})"
