"""Webhook registration rules: what Dataverse accepts in ``serviceendpoints`` and
``sdkmessageprocessingsteps`` (dynamics-apis.md A.9, B.4).

- A webhook endpoint (``contract`` 8) needs an absolute http(s) ``url``, ``authtype`` 4
  WebhookKey, 5 HttpHeader or 6 HttpQueryString and an ``authvalue`` (for 5/6 the settings
  XML ``<settings><setting name="k" value="v" /></settings>``); ``authvalue`` is kept when an
  update leaves it out.
- A step needs an event handler; an asynchronous step only runs PostOperation (stage 40).
- Steps on the data-event messages of virtual tables (``OnExternalCreated/Updated/Deleted``)
  must be asynchronous PostOperation; anything else is refused as Dataverse refuses steps on
  messages that do not allow them: 400 ``0x80044187`` "Custom SdkMessageProcessingStep is not
  allowed on the specified message.". Their ``configuration`` may restrict them to legal
  entities: ``<settings><setting name="LegalEntity" value="usmf,usrt" /></settings>``.
- Steps on the bulk messages (``CreateMultiple`` …) are not emulated and refused with a 400
  that says so (a bulk call fires the Create/Update steps once per record instead, A.11).
- Defaults: ``stage`` 40, ``mode`` 0 (synchronous), as the platform's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.dataverse.webhook_entities import (
    SDK_MESSAGE,
    SDK_MESSAGE_FILTER,
    SERVICE_ENDPOINT,
    STEP,
)
from bridge.emulators.fno.virtual_entities import DATA_EVENT_MESSAGES
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.values import LookupRef

NOT_ALLOWED_CODE = "0x80044187"
BULK_STEP_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple", "DeleteMultiple")
BULK_STEPS_NOT_EMULATED = (
    "The emulator does not run steps registered on bulk messages; register them on Create or "
    "Update, which fire once per record of a bulk call."
)
NOT_ALLOWED_MESSAGE = "Custom SdkMessageProcessingStep is not allowed on the specified message."
WEBHOOK_CONTRACT = 8
WEBHOOK_KEY, HTTP_HEADER, HTTP_QUERY_STRING = 4, 5, 6
_SETTING = re.compile(r'<setting\s+name="([^"]*)"\s+value="([^"]*)"\s*/>')


def parse_settings(xml: str, column: str = "authvalue") -> dict[str, str]:
    """``<settings><setting name="k" value="v" /></settings>`` as a dict (400 naming
    ``column`` if malformed)."""
    text = xml.strip()
    pairs = _SETTING.findall(text)
    if not text.startswith("<settings>") or not text.endswith("</settings>") or not pairs:
        raise ApiError(
            400,
            f'The {column} must be <settings><setting name="..." value="..." /></settings>.',
            code="0x80040203",
        )
    return {html.unescape(name): html.unescape(value) for name, value in pairs}


def _check_endpoint(
    entity: EntityDef, values: dict[str, Any], existing: StoredRecord | None
) -> None:
    if existing is not None and "authvalue" not in values:
        values["authvalue"] = existing.values.get("authvalue")
    if values.get("contract") != WEBHOOK_CONTRACT:
        return
    url = values.get("url") or ""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ApiError(
            400, "A webhook service endpoint needs an absolute http(s) url.", code="0x80040203"
        )
    if values.get("authtype") not in (WEBHOOK_KEY, HTTP_HEADER, HTTP_QUERY_STRING):
        raise ApiError(
            400,
            "A webhook needs authtype 4 (WebhookKey), 5 (HttpHeader) or 6 (HttpQueryString).",
            code="0x80040203",
        )
    if not values.get("authvalue"):
        raise ApiError(400, "A webhook needs an authvalue.", code="0x80040203")
    if values["authtype"] != WEBHOOK_KEY:
        parse_settings(values["authvalue"])


def install_registration_rules(tables: DataverseTables) -> None:
    """Validate webhook registrations as Dataverse does."""
    tables.add_hook(SERVICE_ENDPOINT, _check_endpoint)

    def check_step(
        entity: EntityDef, values: dict[str, Any], existing: StoredRecord | None
    ) -> None:
        handler = values.get("eventhandler")
        if not isinstance(handler, LookupRef):
            raise ApiError(
                400,
                "The step needs an event handler (eventhandler_serviceendpoint@odata.bind).",
                code="0x80040203",
            )
        message, message_filter = values.get("sdkmessageid"), values.get("sdkmessagefilterid")
        filter_record = (
            tables.get(tables.entity(SDK_MESSAGE_FILTER), message_filter.id)
            if isinstance(message_filter, LookupRef)
            else None
        )
        if filter_record is not None and isinstance(message, LookupRef):
            filter_message = filter_record.values.get("sdkmessageid")
            if not isinstance(filter_message, LookupRef) or filter_message.id != message.id:
                raise ApiError(
                    400,
                    "The message filter does not belong to the step's message.",
                    code="0x80040203",
                )
        message_record = (
            tables.get(tables.entity(SDK_MESSAGE), message.id)
            if isinstance(message, LookupRef)
            else None
        )
        message_name = message_record.values.get("name") if message_record else None
        if message_name in DATA_EVENT_MESSAGES:
            _check_data_event_step(values)
        if message_name in BULK_STEP_MESSAGES:
            raise ApiError(400, BULK_STEPS_NOT_EMULATED, code="0x80040203")
        if values.get("mode") == 1 and values.get("stage") not in (None, 40):
            raise ApiError(
                400,
                "Asynchronous steps are supported only in the PostOperation stage (40).",
                code="0x80040203",
            )
        values.setdefault("stage", 40)
        values.setdefault("mode", 0)

    tables.add_hook(STEP, check_step)


def _check_data_event_step(values: Mapping[str, Any]) -> None:
    """Virtual tables take only asynchronous PostOperation steps on OnExternal* messages."""
    if values.get("mode", 0) != 1 or values.get("stage", 40) != 40:
        raise ApiError(400, NOT_ALLOWED_MESSAGE, code=NOT_ALLOWED_CODE)
    if values.get("configuration"):
        parse_settings(str(values["configuration"]), "configuration")
