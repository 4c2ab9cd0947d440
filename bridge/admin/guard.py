"""The admin API's exposure rule: bound beyond loopback, it needs a bearer token.

The rule is one of :data:`bridge.security.CHECKS` (``bridge run`` refuses to start on it,
exit 2); :func:`refuse_unprotected_admin` applies it on its own where the bridge is started
in-process."""

from __future__ import annotations

from bridge.config import AdminSettings, Settings
from bridge.errors import ConfigError
from bridge.security import is_loopback_host


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, 127.0.0.0/8, ``::1``)."""
    return is_loopback_host(host)


def unprotected_admin(settings: AdminSettings) -> str | None:
    """What is wrong when the admin API would listen beyond loopback without a token
    (anyone reaching the port could pause flows or start a repair); ``None`` otherwise."""
    if not settings.enabled or is_loopback_host(settings.host):
        return None
    if settings.token is None or not settings.token.get_secret_value().strip():
        return (
            f"the admin API would listen on {settings.host}:{settings.port} without a token; "
            "set BRIDGE_ADMIN__TOKEN or bind it to 127.0.0.1 (BRIDGE_ADMIN__HOST)"
        )
    return None


def admin_check(settings: Settings, _role: str) -> str | None:
    """:func:`unprotected_admin` as a :class:`bridge.security.SecurityCheck`."""
    return unprotected_admin(settings.admin)


def refuse_unprotected_admin(settings: AdminSettings) -> None:
    """Raise :class:`ConfigError` when :func:`unprotected_admin` finds a problem."""
    problem = unprotected_admin(settings)
    if problem is not None:
        raise ConfigError(problem)
