"""OAuth2 client-credentials token endpoint and bearer-token checking, as Entra ID does it.

``POST /{tenant}/oauth2/v2.0/token`` (and the v1 ``/{tenant}/oauth2/token`` with
``resource``) issues JWT-shaped tokens signed with HMAC-SHA256 and a random per-issuer key:
claims ``aud`` (scope without ``/.default``), ``iss``, ``tid``, ``appid``, ``oid``, ``sub``,
``iat``, ``nbf``, ``exp``. Errors follow the AADSTS shape (dynamics-apis.md A.10). Every API
request must carry ``Authorization: Bearer <valid, unexpired token from this issuer>``;
otherwise the middleware answers 401 with ``WWW-Authenticate``. Tokens and secrets are never
logged.

What MSAL (``ConfidentialClientApplication``) requests, served as Entra ID serves it:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 path without
  ``/v2.0``): the OpenID metadata MSAL reads its token endpoint from, built from the request's
  own scheme and host; an unknown tenant gets 400 ``invalid_tenant`` (AADSTS90002).
- ``GET /common/discovery/instance?authorization_endpoint=...``: instance discovery, which
  MSAL makes for an authority host it does not know (unless told ``instance_discovery=False``);
  it names this emulator's metadata document, or ``invalid_instance`` for a foreign host.
- A client assertion instead of a secret (``client_assertion_type`` =
  ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``): a JWT signed (RS256 or PS256)
  with the key of a certificate trusted for that client (:meth:`TokenIssuer.trust_certificate`),
  named by its ``x5t`` (SHA-1) or ``x5t#S256`` thumbprint, with ``aud`` = the token endpoint
  URL, ``iss`` = ``sub`` = the client id, and unexpired.

MSAL accepts only ``https`` authorities: serve the app over TLS to use MSAL against it.
UNCONFIRMED in the spec, chosen here from Entra ID's public behaviour: the metadata fields
kept (those MSAL reads plus the common ones), the instance-discovery answer's shape, and the
assertion error codes AADSTS700027 (signature or key) and AADSTS700024 (time range).
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
from urllib.parse import urlsplit

import jwt
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography import x509
from cryptography.hazmat.primitives import hashes

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
        self._certificates: dict[str, list[x509.Certificate]] = {}

    def trust_certificate(self, client_id: str, certificate_pem: bytes) -> None:
        """Accept client assertions of ``client_id`` signed with this certificate's key (as
        uploading a certificate to the app registration does). Several may be trusted."""
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        self._certificates.setdefault(client_id, []).append(certificate)

    def certificates(self, client_id: str) -> list[x509.Certificate]:
        """The certificates trusted for ``client_id``."""
        return list(self._certificates.get(client_id, ()))

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
        """Routes for the v2.0 and v1 endpoints and the discovery documents."""
        return [
            web.get("/common/discovery/instance", self.instance_discovery),
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_v2),
            web.get("/{tenant}/.well-known/openid-configuration", self.openid_v1),
            web.post("/{tenant}/oauth2/v2.0/token", self.token_v2),
            web.post("/{tenant}/oauth2/token", self.token_v1),
        ]

    async def openid_v2(self, request: web.Request) -> web.Response:
        """The v2.0 OpenID Connect metadata of the tenant."""
        return self._openid(request, v2=True)

    async def openid_v1(self, request: web.Request) -> web.Response:
        """The v1 OpenID Connect metadata of the tenant."""
        return self._openid(request, v2=False)

    def _openid(self, request: web.Request, *, v2: bool) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant not in (self._issuer.tenant, "common", "organizations"):
            return _aad_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        return web.json_response(openid_configuration(_origin(request), self._issuer.tenant, v2))

    async def instance_discovery(self, request: web.Request) -> web.Response:
        """Instance discovery: where the metadata of an authority on this host is."""
        endpoint = request.query.get("authorization_endpoint", "")
        parts = urlsplit(endpoint)
        # MSAL names the authority by host name only (no port)
        if parts.hostname != request.url.host or "/oauth2/" not in parts.path:
            return _aad_error(
                "invalid_instance",
                50049,
                "Unknown or invalid instance.",
            )
        tenant = parts.path.strip("/").split("/")[0]
        origin = _origin(request)
        return web.json_response(
            {
                "tenant_discovery_endpoint": (
                    f"{origin}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": request.host,
                        "preferred_cache": request.host,
                        "aliases": [request.host],
                    }
                ],
            }
        )

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
        if form.get("client_assertion_type"):
            checked = self._assertion_principal(form, request)
            if isinstance(checked, web.Response):
                return checked
            principal, client_id = checked
        else:
            client_id, secret = _client_credentials(form, request.headers)
            if not client_id:
                return _aad_error(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            found = self._directory.authenticate(client_id, secret)
            if found is None:
                return self._bad_client(client_id, tenant)
            principal = found
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

    def _assertion_principal(
        self, form: Mapping[str, str], request: web.Request
    ) -> tuple[Principal, str] | web.Response:
        """The principal a client assertion proves, or the AADSTS error answer."""
        if form.get("client_assertion_type") != JWT_BEARER:
            return _aad_error(
                "invalid_request",
                50027,
                f"Invalid client_assertion_type; expected '{JWT_BEARER}'.",
            )
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _aad_error("invalid_client", 50027, "Invalid JWT token: not a JWT.")
        client_id = form.get("client_id") or str(unverified.get("sub", ""))
        principal = self._directory.get(client_id)
        if principal is None:
            return self._bad_client(client_id, self._issuer.tenant)
        certificate = _matching_certificate(header, self._issuer.certificates(client_id))
        if certificate is None:
            log.info("token_refused", client_id=client_id, reason="assertion key not found")
            return _aad_error(
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not "
                f"found., Thumbprint of key used by client: '{_thumbprint_of(header)}']",
                status=401,
            )
        problem = _verify_assertion(assertion, header, certificate, client_id, request)
        if problem is not None:
            log.info("token_refused", client_id=client_id, reason=problem[1])
            return _aad_error("invalid_client", problem[0], problem[1], status=401)
        return principal, client_id

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


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGORITHMS = ("RS256", "PS256")


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def openid_configuration(origin: str, tenant: str, v2: bool) -> dict[str, Any]:
    """The OpenID Connect metadata document Entra ID publishes for a tenant."""
    version = "/v2.0" if v2 else ""
    oauth = f"{origin}/{tenant}/oauth2{version}"
    return {
        "token_endpoint": f"{oauth}/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{origin}/{tenant}/discovery{version}/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": (
            f"https://login.microsoftonline.com/{tenant}/v2.0"
            if v2
            else f"https://sts.windows.net/{tenant}/"
        ),
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{oauth}/authorize",
        "device_authorization_endpoint": f"{oauth}/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{oauth}/logout",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }


def _b64_thumbprint(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    return _b64(certificate.fingerprint(algorithm))


def _thumbprint_of(header: Mapping[str, Any]) -> str:
    value = str(header.get("x5t#S256") or header.get("x5t") or "")
    try:
        return _unb64(value).hex().upper()
    except (ValueError, binascii.Error):
        return value


def _matching_certificate(
    header: Mapping[str, Any], certificates: list[x509.Certificate]
) -> x509.Certificate | None:
    """The trusted certificate the assertion's header names by thumbprint (base64url, with
    or without padding: MSAL sends it padded)."""
    sha256 = str(header.get("x5t#S256", "")).rstrip("=")
    sha1_named = str(header.get("x5t", "")).rstrip("=")
    for certificate in certificates:
        if sha256 == _b64_thumbprint(certificate, hashes.SHA256()):
            return certificate
        # x5t is the SHA-1 thumbprint by definition (RFC 7515); it names, it does not secure
        sha1 = hashes.SHA1()  # noqa: S303
        if sha1_named == _b64_thumbprint(certificate, sha1):
            return certificate
    return None


def _verify_assertion(
    assertion: str,
    header: Mapping[str, Any],
    certificate: x509.Certificate,
    client_id: str,
    request: web.Request,
) -> tuple[int, str] | None:
    """(AADSTS code, description) of what is wrong with a signed assertion, or ``None``."""
    algorithm = str(header.get("alg", ""))
    if algorithm not in _ASSERTION_ALGORITHMS:
        return 700027, f"Client assertion contains an invalid signature. [Reason - alg {algorithm}]"
    try:
        claims = jwt.decode(
            assertion,
            certificate.public_key(),  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=f"{_origin(request)}{request.path}",
            issuer=client_id,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return 700024, "Client assertion is not within its valid time range."
    except jwt.InvalidSignatureError:
        return 700027, "Client assertion contains an invalid signature."
    except jwt.PyJWTError as exc:
        return 700027, f"Client assertion failed validation: {exc}"
    if claims.get("sub") != client_id:
        return 700027, "Client assertion subject does not match the client id."
    return None


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
