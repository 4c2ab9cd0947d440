"""OAuth2 client-credentials token endpoint and bearer-token checking, as Entra ID does it.

``POST /{tenant}/oauth2/v2.0/token`` (and the v1 ``/{tenant}/oauth2/token`` with
``resource``) issues JWT-shaped tokens signed with HMAC-SHA256 and a random per-issuer key:
claims ``aud`` (scope without ``/.default``), ``iss``, ``tid``, ``appid``, ``oid``, ``sub``,
``iat``, ``nbf``, ``exp``. Errors follow the AADSTS shape (dynamics-apis.md A.10). Every API
request must carry ``Authorization: Bearer <valid, unexpired token from this issuer>``;
otherwise the middleware answers 401 with ``WWW-Authenticate``. Tokens and secrets are never
logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.emulators.common.errors import ApiError, EmulatorError
from bridge.emulators.common.principals import Principal, PrincipalDirectory

log = structlog.get_logger(__name__)

PRINCIPAL_KEY = web.RequestKey("principal", Principal)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[ApiError], dict[str, object]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidToken(EmulatorError):
    """A bearer token that is malformed, forged, expired or of an unknown client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenIssuer:
    """Issues and verifies access tokens for the principals of a directory."""

    def __init__(self, directory: PrincipalDirectory, tenant: str, lifetime_seconds: int) -> None:
        self._directory = directory
        self._tenant = tenant
        self._lifetime = lifetime_seconds
        self._key = secrets.token_bytes(32)

    @property
    def tenant(self) -> str:
        """The tenant id tokens are issued for."""
        return self._tenant

    @property
    def lifetime(self) -> int:
        """Token lifetime in seconds (``expires_in``)."""
        return self._lifetime

    def issue(self, principal: Principal, audience: str) -> str:
        """A signed token for ``principal`` with ``aud`` = ``audience``."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self._tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "appid": principal.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": self._tenant,
            "uti": _b64(secrets.token_bytes(12)),
            "ver": "1.0",
        }
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "emulator"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(header, payload)}"

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`InvalidToken` otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("InvalidAuthTicket: the access token is malformed.")
        if not hmac.compare_digest(parts[2], self._sign(parts[0], parts[1])):
            raise InvalidToken("InvalidAuthTicket: the access token signature is invalid.")
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise InvalidToken("InvalidAuthTicket: the access token is malformed.") from None
        if int(claims.get("exp", 0)) <= time.time():
            raise InvalidToken("ExpiredAuthTicket: the access token has expired.")
        principal = self._directory.get(str(claims.get("appid", "")))
        if principal is None:
            raise InvalidToken("InvalidAuthTicket: the application is not registered.")
        return principal

    def _sign(self, header: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return _b64(digest)


def _aad_error(error: str, code: int, description: str, status: int = 400) -> web.Response:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return web.json_response(body, status=status)


def _client_credentials(form: Mapping[str, str], headers: Mapping[str, str]) -> tuple[str, str]:
    authorization = headers.get("Authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:]).decode()
        except (ValueError, binascii.Error):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _audience(form: Mapping[str, str], v1: bool) -> str | None:
    if v1:
        resource = form.get("resource", "")
        return resource.rstrip("/") or None
    scope = form.get("scope", "").strip()
    if not scope.endswith("/.default"):
        return None
    return scope.removesuffix("/.default")


class TokenEndpoint:
    """The aiohttp handlers of the token endpoint."""

    def __init__(self, issuer: TokenIssuer, directory: PrincipalDirectory) -> None:
        self._issuer = issuer
        self._directory = directory

    def routes(self) -> list[web.RouteDef]:
        """Routes for the v2.0 and v1 endpoints."""
        return [
            web.post("/{tenant}/oauth2/v2.0/token", self.token_v2),
            web.post("/{tenant}/oauth2/token", self.token_v1),
        ]

    async def token_v2(self, request: web.Request) -> web.Response:
        """OAuth2 v2.0 client-credentials grant."""
        return await self._token(request, v1=False)

    async def token_v1(self, request: web.Request) -> web.Response:
        """Legacy v1 grant with ``resource`` instead of ``scope``."""
        return await self._token(request, v1=True)

    async def _token(self, request: web.Request, *, v1: bool) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        tenant = request.match_info["tenant"]
        if tenant != self._issuer.tenant:
            return _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            grant = form.get("grant_type", "")
            return _aad_error(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id, secret = _client_credentials(form, request.headers)
        if not client_id:
            return _aad_error(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        principal = self._directory.authenticate(client_id, secret)
        if principal is None:
            return self._bad_client(client_id, tenant)
        audience = _audience(form, v1)
        if audience is None:
            scope = form.get("resource" if v1 else "scope", "")
            return _aad_error(
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
            )
        log.info("token_issued", client_id=client_id, audience=audience)
        token = self._issuer.issue(principal, audience)
        expires = self._issuer.lifetime
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": expires,
            "ext_expires_in": expires,
            "access_token": token,
        }
        return web.json_response(body)

    def _bad_client(self, client_id: str, tenant: str) -> web.Response:
        log.info("token_refused", client_id=client_id)
        if self._directory.get(client_id) is None:
            return _aad_error(
                "invalid_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        return _aad_error(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
            f"not the client secret ID, for a secret added to app '{client_id}'.",
        )


def bearer_middleware(issuer: TokenIssuer, api_prefix: str, render: ErrorRenderer) -> Middleware:
    """Middleware: requests under ``api_prefix`` need a valid bearer token (401 otherwise).

    The authenticated principal is stored in ``request[PRINCIPAL_KEY]``.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(api_prefix):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("RequestIsNotAuthenticated: the request has no bearer token.")
            principal = issuer.verify(token.strip())
        except InvalidToken as exc:
            return _unauthorized(request, issuer.tenant, exc.reason, render)
        request[PRINCIPAL_KEY] = principal
        return await handler(request)

    return middleware


def _unauthorized(
    request: web.Request, tenant: str, reason: str, render: ErrorRenderer
) -> web.Response:
    origin = f"{request.scheme}://{request.host}"
    challenge = (
        f"Bearer authorization_uri={origin}/{tenant}/oauth2/authorize, resource_id={origin}/"
    )
    body = render(ApiError(401, reason, wrap=True))
    return web.json_response(body, status=401, headers={"WWW-Authenticate": challenge})
