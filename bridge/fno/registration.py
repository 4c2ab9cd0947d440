"""Registration of the bridge's F&O capture (``bridge setup``).

Data events (the documented path, spec B.4): on Dataverse, the bridge's webhook endpoint
gets asynchronous post-operation steps for ``OnExternalCreated`` (post image),
``OnExternalUpdated`` (both images) and ``OnExternalDeleted`` (pre image) on each captured
entity's virtual table. Registering the step is what activates the data event in F&O (for
every legal entity); what the APIs cannot do is printed as manual steps.

Idempotent: everything is found by name and reused, never duplicated.
"""

from __future__ import annotations

import structlog

from bridge.config import WebhookSettings
from bridge.contract.catalog import SourceEntity
from bridge.dataverse.registration import (
    ENDPOINT_NAME,
    IMAGE_BOTH,
    IMAGE_POST,
    IMAGE_PRE,
    ensure_step,
    upsert_endpoint,
)
from bridge.errors import BridgeError, ConfigError
from bridge.fno.data_events import virtual_table
from bridge.http.client import ApiClient

log = structlog.get_logger(__name__)


DATA_EVENT_IMAGES = {
    "OnExternalCreated": (IMAGE_POST, "Target"),
    "OnExternalUpdated": (IMAGE_BOTH, "Target"),
    "OnExternalDeleted": (IMAGE_PRE, "Target"),
}


def data_event_manual_steps(entities: list[SourceEntity]) -> list[str]:
    """What an administrator does by hand for data events (no API exists for it)."""
    tables = ", ".join(sorted(t for e in entities if (t := virtual_table(e))))
    return [
        "In Power Platform admin, the environment is linked to Finance and Operations "
        "(Power Platform integration), which data events need.",
        f"The virtual tables {tables} are visible in Dataverse (Advanced settings > "
        "Available Finance and Operations entities, Visible = Yes).",
        "In F&O, System administration > Setup > Business events > Data event catalog lists "
        "the registered OnExternal* events as active; limit them to legal entities there if "
        "needed. Deactivate them during bulk loads (spec B.4).",
    ]


async def register_data_events(
    sales: ApiClient,
    webhook: WebhookSettings,
    entities: list[SourceEntity],
    endpoint_name: str = ENDPOINT_NAME,
) -> None:
    """Register the data-event steps of every captured F&O entity on Dataverse; raises
    :class:`ConfigError` naming what is missing when the environment has no virtual
    table or data-event message for one."""
    endpoint_id = await upsert_endpoint(sales, webhook, endpoint_name)
    for entity in entities:
        table = virtual_table(entity)
        if table is None:
            continue
        for message, image in DATA_EVENT_IMAGES.items():
            try:
                await ensure_step(sales, endpoint_id, table, message, endpoint_name, image)
            except BridgeError as exc:
                steps = " ".join(data_event_manual_steps(entities))
                raise ConfigError(f"cannot register F&O data events: {exc}. {steps}") from None
    log.info(
        "data_events_registered",
        endpoint=endpoint_id,
        tables=[virtual_table(e) for e in entities if virtual_table(e)],
    )
