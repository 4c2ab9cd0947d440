"""The admin API's exposure rule, applied on its own where the bridge is started in-process
(``bridge run`` applies it among all of :data:`bridge.security.CHECKS`)."""

from __future__ import annotations

from bridge.config import AdminSettings
from bridge.errors import ConfigError
from bridge.security import unprotected_admin


def refuse_unprotected_admin(settings: AdminSettings) -> None:
    """Raise :class:`ConfigError` when the admin API would listen beyond loopback without
    a token (:func:`bridge.security.unprotected_admin`)."""
    problem = unprotected_admin(settings)
    if problem is not None:
        raise ConfigError(problem)
