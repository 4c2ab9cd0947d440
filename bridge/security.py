"""Secure by default: the checks ``bridge run`` makes before anything starts.

The defaults (webhook key, client credentials, plain HTTP) exist so that the local stack runs
with no settings. They are well known, so a bridge that others can reach, or that talks to
systems beyond this machine, must not use them: :func:`enforce` refuses to start, naming the
first problem in one line (``bridge run`` exits 2).

Each check is a :class:`SecurityCheck` in :data:`CHECKS`; another component adds its own
(an admin API's token rule, say) by appending one. A check gets the settings and the role
and returns a problem, or ``None``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from bridge.config import AdminSettings, ApiSettings, Settings, WebhookSettings
from bridge.errors import ConfigError

log = structlog.get_logger(__name__)

DEFAULT_WEBHOOK_KEY = WebhookSettings.model_fields["key"].get_default().get_secret_value()
DEFAULT_CLIENT_ID = ApiSettings.model_fields["client_id"].get_default()
DEFAULT_CLIENT_SECRET = ApiSettings.model_fields["client_secret"].get_default().get_secret_value()
INGEST_ROLES = frozenset({"ingest", "all"})


@dataclass(frozen=True)
class SecurityCheck:
    """One named rule: ``check(settings, role)`` returns what is wrong, or ``None``."""

    name: str
    check: Callable[[Settings, str], str | None]


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, brackets allowed) is this machine only.

    Names other than ``localhost`` are not resolved: they count as beyond loopback."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _kafka_hosts(settings: Settings) -> list[str]:
    servers = settings.kafka.bootstrap_servers.split(",")
    return [server.strip().rpartition(":")[0] or server.strip() for server in servers]


def listens_beyond_loopback(settings: Settings, role: str) -> bool:
    """Whether this process would accept connections from other machines."""
    receiver = settings.webhook
    return role in INGEST_ROLES and receiver.enabled and not is_loopback_host(receiver.host)


def remote_targets(settings: Settings) -> list[str]:
    """The systems beyond this machine the bridge would talk to, by name."""
    remote = []
    for name, api in (("Dataverse", settings.sales), ("F&O", settings.fno)):
        urls = [api.base_url, api.authority or api.base_url]
        if not all(is_loopback_host(_url_host(url)) for url in urls):
            remote.append(name)
    if not all(is_loopback_host(host) for host in _kafka_hosts(settings)):
        remote.append("Kafka")
    return remote


def _exposed(settings: Settings, role: str) -> str | None:
    """Why this process counts as deployed, not local; ``None`` when it is local."""
    if listens_beyond_loopback(settings, role):
        return f"the webhook receiver listens on {settings.webhook.host}"
    remote = remote_targets(settings)
    if remote:
        return f"it talks to {', '.join(remote)} beyond this machine"
    return None


def _default_webhook_key(settings: Settings, role: str) -> str | None:
    webhook = settings.webhook
    if role not in INGEST_ROLES or not webhook.enabled:
        return None
    if webhook.key.get_secret_value() != DEFAULT_WEBHOOK_KEY:
        return None
    reason = _exposed(settings, role)
    if reason is None:
        return None
    return f"the webhook key is the well-known default while {reason}; set BRIDGE_WEBHOOK__KEY"


def _default_credentials(settings: Settings, role: str) -> str | None:
    reason = _exposed(settings, role)
    if reason is None:
        return None
    for section, api in (("SALES", settings.sales), ("FNO", settings.fno)):
        uses_secret = api.client_certificate_file is None
        if uses_secret and api.client_secret.get_secret_value() == DEFAULT_CLIENT_SECRET:
            return (
                f"BRIDGE_{section}__CLIENT_SECRET is the well-known default while {reason}; "
                "set the app registration's secret or certificate"
            )
        if api.client_id == DEFAULT_CLIENT_ID:
            return (
                f"BRIDGE_{section}__CLIENT_ID is the well-known default while {reason}; "
                "set the app registration's client id"
            )
    return None


def _plain_http_to_remote(settings: Settings, _role: str) -> str | None:
    for section, api in (("SALES", settings.sales), ("FNO", settings.fno)):
        for setting, url in (("BASE_URL", api.base_url), ("AUTHORITY", api.authority)):
            if url and urlsplit(url).scheme != "https" and not is_loopback_host(_url_host(url)):
                return f"BRIDGE_{section}__{setting} {url} is not https; credentials would travel in clear"
    return None


def unprotected_admin(admin: AdminSettings) -> str | None:
    """What is wrong when the admin API would listen beyond loopback without a token
    (anyone reaching the port could pause flows or start a repair); ``None`` otherwise."""
    if not admin.enabled or is_loopback_host(admin.host):
        return None
    if admin.token is None or not admin.token.get_secret_value().strip():
        return (
            f"the admin API would listen on {admin.host}:{admin.port} without a token; "
            "set BRIDGE_ADMIN__TOKEN or bind it to 127.0.0.1 (BRIDGE_ADMIN__HOST)"
        )
    return None


def _admin_without_token(settings: Settings, _role: str) -> str | None:
    return unprotected_admin(settings.admin)


CHECKS: list[SecurityCheck] = [
    SecurityCheck("webhook-default-key", _default_webhook_key),
    SecurityCheck("default-client-credentials", _default_credentials),
    SecurityCheck("plain-http-to-remote", _plain_http_to_remote),
    SecurityCheck("admin-without-token", _admin_without_token),
]


def problems(
    settings: Settings, role: str, checks: Iterable[SecurityCheck] | None = None
) -> list[tuple[str, str]]:
    """Every failed check as (name, problem), in the order of ``checks`` (default
    :data:`CHECKS`)."""
    found = []
    for check in CHECKS if checks is None else checks:
        problem = check.check(settings, role)
        if problem is not None:
            found.append((check.name, problem))
    return found


def enforce(settings: Settings, role: str, checks: Iterable[SecurityCheck] | None = None) -> None:
    """Raise :class:`ConfigError` with one line naming the first failed check that
    ``settings.security.waive`` does not waive (a waived one is logged as a warning); an
    unknown name in the waivers is refused too, so a typo never leaves a check on silently
    or hides that it does nothing."""
    checks = list(CHECKS if checks is None else checks)
    waived = set(settings.security.waive)
    unknown = sorted(waived - {check.name for check in checks})
    if unknown:
        known = ", ".join(check.name for check in checks)
        raise ConfigError(f"BRIDGE_SECURITY__WAIVE names unknown checks {unknown}; known: {known}")
    found = []
    for name, problem in problems(settings, role, checks):
        if name in waived:
            log.warning("security_check_waived", check=name, problem=problem)
        else:
            found.append((name, problem))
    if found:
        name, problem = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"refusing to start [{name}]: {problem}{more}")
