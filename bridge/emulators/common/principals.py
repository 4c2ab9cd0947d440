"""The identities the emulators know: the bridge's app, the demo "user" app and SYSTEM.

Each principal has stable ids derived from its client id (``uuid5``), so tests and the bridge
can predict them: ``object_id`` is the Entra object id (``oid`` claim, F&O
``InitiatingUserAADObjectId``), ``systemuser_id`` is the Dataverse ``systemuserid``
(``WhoAmI().UserId``, ``_createdby_value``, webhook ``UserId``).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from bridge.emulators.common.settings import EmulatorSettings

NAMESPACE = uuid.UUID("6f1c7f0e-2b0a-4c38-9a52-6c1f0f3d2a10")
SYSTEM_CLIENT_ID = "system"


def stable_id(*parts: str) -> str:
    """A deterministic lower-case GUID for ``parts``."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class Principal:
    """One caller: an app registration acting as an application user."""

    client_id: str
    display_name: str
    object_id: str
    systemuser_id: str

    @classmethod
    def for_client(cls, client_id: str, display_name: str) -> Principal:
        """The principal of ``client_id`` with its derived ids."""
        return cls(
            client_id=client_id,
            display_name=display_name,
            object_id=stable_id("oid", client_id),
            systemuser_id=stable_id("systemuser", client_id),
        )


SYSTEM = Principal.for_client(SYSTEM_CLIENT_ID, "SYSTEM")


class PrincipalDirectory:
    """Known principals and their secrets; authenticates client credentials."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self._secrets = {
            settings.client_id: settings.client_secret.get_secret_value(),
            settings.user_client_id: settings.user_client_secret.get_secret_value(),
        }
        self._principals = {
            settings.client_id: Principal.for_client(settings.client_id, "Bridge integration"),
            settings.user_client_id: Principal.for_client(settings.user_client_id, "P2C User"),
            SYSTEM_CLIENT_ID: SYSTEM,
        }

    def authenticate(self, client_id: str, secret: str) -> Principal | None:
        """The principal when ``secret`` matches; ``None`` for unknown clients or bad secrets."""
        expected = self._secrets.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        return self._principals[client_id]

    def get(self, client_id: str) -> Principal | None:
        """The principal of ``client_id`` (including SYSTEM), if known."""
        return self._principals.get(client_id)

    def all(self) -> tuple[Principal, ...]:
        """Every principal, SYSTEM last."""
        return tuple(self._principals.values())

    def by_systemuser(self, systemuser_id: str) -> Principal | None:
        """The principal whose ``systemuserid`` is ``systemuser_id``."""
        wanted = systemuser_id.lower()
        return next((p for p in self._principals.values() if p.systemuser_id == wanted), None)
