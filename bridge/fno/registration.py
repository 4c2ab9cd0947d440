"""Registration of the bridge's F&O business-event endpoint (``bridge setup``).

An HTTPS business-event endpoint and one activation of ``<EntitySet>Changed`` per captured
entity set, for all companies. The emulator exposes this configuration as OData (see
docs/emulators.md); in a real environment it is done in the Business events workspace (and
the data-change events come from a customisation), so the command prints what to set.

Idempotent: everything is found by name and reused, never duplicated.
"""

from __future__ import annotations

import structlog

from bridge.config import WebhookSettings
from bridge.contract.catalog import SourceEntity
from bridge.dataverse.registration import ENDPOINT_NAME
from bridge.errors import ConfigError, NotFound
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.sources.receiver import FNO_PATH

log = structlog.get_logger(__name__)


def business_event_id(entity: SourceEntity) -> str:
    """The data-change business event of an F&O entity set."""
    return f"{entity.entity_set}Changed"


async def register_fno_business_events(
    client: ApiClient, webhook: WebhookSettings, entities: list[SourceEntity]
) -> None:
    """Create the HTTPS endpoint (if absent) and activate each entity's data-change event."""
    url = f"{webhook.url}{FNO_PATH}?code={webhook.key.get_secret_value()}"
    try:
        await client.get_json(f"BusinessEventsEndpoints({odata_literal(ENDPOINT_NAME)})")
    except NotFound:
        try:
            await client.request(
                "POST",
                "BusinessEventsEndpoints",
                json={"EndpointName": ENDPOINT_NAME, "EndpointType": "Https", "Url": url},
            )
        except NotFound:
            events = ", ".join(business_event_id(e) for e in entities)
            raise ConfigError(
                "this F&O environment has no API to configure business events; in the "
                f"Business events workspace create an HTTPS endpoint to {webhook.url}{FNO_PATH} "
                f"(with ?code=<BRIDGE_WEBHOOK__KEY>) and activate {events}"
            ) from None
    active = (await client.get_json("BusinessEventsActivations")).get("value", [])
    have = {(a["BusinessEventId"], a["EndpointName"]) for a in active}
    for entity in entities:
        event_id = business_event_id(entity)
        if (event_id, ENDPOINT_NAME) not in have:
            await client.request(
                "POST",
                "BusinessEventsActivations",
                json={
                    "BusinessEventId": event_id,
                    "EndpointName": ENDPOINT_NAME,
                    "LegalEntity": "",
                },
            )
    log.info(
        "business_events_registered",
        url=f"{webhook.url}{FNO_PATH}",
        events=[business_event_id(e) for e in entities],
    )
