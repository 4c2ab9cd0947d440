"""The snapshot reader of a flow's source entity (backfill, reconcile): each system's own
(:mod:`bridge.dataverse.snapshots`, :mod:`bridge.fno.snapshots`) behind
:class:`~bridge.sources.snapshots.SnapshotSource`."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config import CompanySettings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import System
from bridge.dataverse.snapshots import DataverseSnapshots
from bridge.fno.snapshots import FnoSnapshots
from bridge.http.client import ApiClient
from bridge.sources.snapshots import SnapshotSource


def snapshot_source(
    entity: SourceEntity, clients: Mapping[System, ApiClient], companies: CompanySettings
) -> SnapshotSource:
    """The snapshot reader of ``entity``'s system."""
    if entity.system is System.SALES:
        return DataverseSnapshots(clients[System.SALES], entity)
    return FnoSnapshots(clients[System.FNO], entity, companies)
