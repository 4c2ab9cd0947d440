"""Faithful local emulators of the Dataverse Web API (Dynamics 365 Sales) and the Finance and
Operations OData service, served over loopback HTTP. See docs/emulators.md.

Public API: :class:`Emulators` (both servers as an async context manager),
:func:`run_emulators` (the ``bridge emulate`` command), :class:`EmulatorSettings`, the
per-system apps :class:`DataverseEmulator` / :class:`FnoEmulator`, and the entity registries.
"""

from bridge.emulators.common.principals import Principal, PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.dataverse.entities import DATAVERSE_ENTITIES
from bridge.emulators.fno.app import FnoEmulator
from bridge.emulators.fno.entities import FNO_ENTITIES
from bridge.emulators.server import Emulators, run_emulators, serve_forever

__all__ = [
    "DATAVERSE_ENTITIES",
    "FNO_ENTITIES",
    "DataverseEmulator",
    "EmulatorSettings",
    "Emulators",
    "FnoEmulator",
    "Principal",
    "PrincipalDirectory",
    "run_emulators",
    "serve_forever",
]
