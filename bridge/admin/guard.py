"""The admin API's exposure rule: bound beyond loopback, it needs a bearer token."""

from __future__ import annotations

import ipaddress

from bridge.config import AdminSettings
from bridge.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_unprotected_admin(settings: AdminSettings) -> None:
    """Raise :class:`ConfigError` (``bridge run`` exits 2) when the admin API would listen
    beyond loopback without a token: anyone reaching the port could pause flows or start a
    repair."""
    if not settings.enabled or is_loopback(settings.host):
        return
    if settings.token is None or not settings.token.get_secret_value().strip():
        raise ConfigError(
            f"the admin API would listen on {settings.host}:{settings.port} without a token; "
            "set BRIDGE_ADMIN__TOKEN or bind it to 127.0.0.1 (BRIDGE_ADMIN__HOST)"
        )
