"""Registration of the bridge's webhooks on Dataverse (``bridge setup``).

A webhook service endpoint and, per entity, Create (post-image), Update (pre- and
post-image) and Delete (pre-image) steps, asynchronous and post-operation, so every
notification carries full images; registered through the Web API itself.

Idempotent: everything is found by name and reused, never duplicated.
"""

from __future__ import annotations

from typing import Any

import structlog

from bridge.config import WebhookSettings
from bridge.contract.catalog import SourceEntity
from bridge.errors import BridgeError
from bridge.http.client import ApiClient
from bridge.http.odata import entity_id_from_header, odata_literal
from bridge.sources.receiver import DATAVERSE_PATH

log = structlog.get_logger(__name__)

ENDPOINT_NAME = "p2c-bridge"
WEBHOOK_CONTRACT = 8
AUTH_WEBHOOK_KEY = 4
MESSAGE_FORMAT_JSON = 2
MODE_ASYNC = 1
STAGE_POST_OPERATION = 40
IMAGE_PRE, IMAGE_POST, IMAGE_BOTH = 0, 1, 2
"""``imagetype`` of a step image: before, after, or both."""
_IMAGES = {
    "Create": (IMAGE_POST, "Id"),
    "Update": (IMAGE_BOTH, "Target"),
    "Delete": (IMAGE_PRE, "Target"),
}


def _created_id(response_headers: Any) -> str:
    entity_id = entity_id_from_header(response_headers.get("OData-EntityId", ""))
    if entity_id is None:
        raise BridgeError("Dataverse did not return the created record's id")
    return entity_id


async def _find_one(client: ApiClient, entity_set: str, filter_: str, id_attr: str) -> str | None:
    body = await client.get_json(entity_set, params={"$filter": filter_, "$select": id_attr})
    rows = body.get("value", [])
    return str(rows[0][id_attr]).lower() if rows else None


async def upsert_endpoint(client: ApiClient, webhook: WebhookSettings, name: str) -> str:
    """Create or update the bridge's webhook service endpoint; return its id."""
    payload = {
        "name": name,
        "contract": WEBHOOK_CONTRACT,
        "url": f"{webhook.url}{DATAVERSE_PATH}",
        "authtype": AUTH_WEBHOOK_KEY,
        "authvalue": webhook.key.get_secret_value(),
        "messageformat": MESSAGE_FORMAT_JSON,
    }
    existing = await _find_one(
        client, "serviceendpoints", f"name eq {odata_literal(name)}", "serviceendpointid"
    )
    if existing:
        await client.request("PATCH", f"serviceendpoints({existing})", json=payload)
        return existing
    response = await client.request("POST", "serviceendpoints", json=payload)
    return _created_id(response.headers)


async def ensure_step(
    client: ApiClient,
    endpoint_id: str,
    table: str,
    message: str,
    endpoint_name: str,
    image: tuple[int, str],
) -> None:
    """Register an asynchronous post-operation step of ``message`` on ``table`` posting to
    the endpoint, with an image (type, message property), unless it exists."""
    name = f"{endpoint_name}: {message} of {table}"
    if await _find_one(
        client,
        "sdkmessageprocessingsteps",
        f"name eq {odata_literal(name)}",
        "sdkmessageprocessingstepid",
    ):
        return
    message_id = await _find_one(
        client, "sdkmessages", f"name eq {odata_literal(message)}", "sdkmessageid"
    )
    filter_id = await _find_one(
        client,
        "sdkmessagefilters",
        f"primaryobjecttypecode eq {odata_literal(table)} and _sdkmessageid_value eq {message_id}",
        "sdkmessagefilterid",
    )
    if message_id is None or filter_id is None:
        raise BridgeError(f"Dataverse has no {message} message for {table}")
    response = await client.request(
        "POST",
        "sdkmessageprocessingsteps",
        json={
            "name": name,
            "mode": MODE_ASYNC,
            "rank": 1,
            "stage": STAGE_POST_OPERATION,
            "supporteddeployment": 0,
            "asyncautodelete": False,
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
            "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
            "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
        },
    )
    image_type, property_name = image
    await client.request(
        "POST",
        "sdkmessageprocessingstepimages",
        json={
            "name": "image",
            "entityalias": "image",
            "imagetype": image_type,
            "messagepropertyname": property_name,
            "attributes": None,
            "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({_created_id(response.headers)})",
        },
    )


async def register_dataverse_webhooks(
    client: ApiClient,
    webhook: WebhookSettings,
    entities: list[SourceEntity],
    endpoint_name: str = ENDPOINT_NAME,
) -> str:
    """Register (or update) the webhook endpoint and its steps; return the endpoint id."""
    endpoint_id = await upsert_endpoint(client, webhook, endpoint_name)
    for entity in entities:
        for message, image in _IMAGES.items():
            await ensure_step(client, endpoint_id, entity.entity, message, endpoint_name, image)
    log.info(
        "webhooks_registered",
        endpoint=endpoint_id,
        url=f"{webhook.url}{DATAVERSE_PATH}",
        entities=[e.entity for e in entities],
    )
    return endpoint_id
