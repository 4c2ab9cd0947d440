"""Dataverse webhooks: asynchronous delivery of notifications (dynamics-apis.md A.9).

Registration is plain Web API writes to ``serviceendpoints``, ``sdkmessageprocessingsteps``
and ``sdkmessageprocessingstepimages`` (rules in :mod:`bridge.emulators.dataverse.webhook_registration`).
:class:`WebhookNotifier` listens to committed writes and data events (:meth:`WebhookNotifier.
notify`): for every enabled step whose message and filter match (Update: only if a
``filteringattributes`` column was written; a data event: only for the step's legal
entities) it builds
the RemoteExecutionContext immediately (images as of the write) and queues a POST to the
endpoint's URL. Like Dataverse's asynchronous service, ``webhook_workers`` deliveries run
concurrently, in no guaranteed order (one worker = submission order; a reorder window shuffles
close deliveries). Auth per ``authtype``:
4 WebhookKey ``?code=``, 5 HttpHeader headers, 6 HttpQueryString query parameters, from
``<settings><setting name="k" value="v" /></settings>``. 2xx = delivered; 502/503/504 get
one more attempt; anything else or a timeout is recorded as a failed ``asyncoperation``
(statuscode 31, ``_owningextensionid_value`` = step id).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from bridge.emulators.common.delivery import (
    Delivery,
    DeliveryDispatcher,
    DeliveryResult,
    RetryPolicy,
)
from bridge.emulators.common.principals import SYSTEM, PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import Op, StoredRecord, WriteEvent
from bridge.emulators.dataverse.execution_context import (
    ContextInput,
    Image,
    Organization,
    build_context,
    image_attributes,
)
from bridge.emulators.dataverse.tables import DataverseTables, WriteSet
from bridge.emulators.dataverse.webhook_entities import (
    ASYNC_OPERATION,
    PLATFORM_TABLES,
    SDK_MESSAGE,
    SDK_MESSAGE_FILTER,
    SERVICE_ENDPOINT,
    STEP,
    STEP_IMAGE,
)
from bridge.emulators.dataverse.webhook_registration import (
    HTTP_HEADER,
    WEBHOOK_CONTRACT,
    WEBHOOK_KEY,
    parse_settings,
)
from bridge.emulators.odata.entities import EntityDef
from bridge.emulators.odata.values import LookupRef

MAX_BODY = 256 * 1024
_MESSAGES = {Op.CREATE: "Create", Op.UPDATE: "Update", Op.DELETE: "Delete"}
_REGISTRATION = (SERVICE_ENDPOINT, SDK_MESSAGE, SDK_MESSAGE_FILTER, STEP, STEP_IMAGE)
"""The tables whose rows decide which steps fire with which images."""


@dataclass(frozen=True)
class Notification:
    """One event registered steps may be told about: a Dataverse write, or a data event
    raised on a virtual table. ``target`` ``None`` sends an ``EntityReference`` (Delete);
    ``before``/``after`` feed the pre/post images; ``changed`` the filtering attributes;
    ``company`` is the F&O legal entity of a data event; ``row_version`` its Target's
    ``RowVersion``."""

    entity: EntityDef
    message: str
    record_id: str
    target: Mapping[str, Any] | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changed: frozenset[str]
    principal: str
    depth: int
    created_on: datetime
    company: str | None = None
    row_version: int | None = None


class WebhookNotifier:
    """Turns committed writes into webhook deliveries (see the module docstring)."""

    def __init__(
        self,
        tables: DataverseTables,
        dispatcher: DeliveryDispatcher,
        directory: PrincipalDirectory,
        settings: EmulatorSettings,
        organization: Organization,
    ) -> None:
        self.tables = tables
        self.dispatcher = dispatcher
        self.directory = directory
        self.settings = settings
        self.organization = organization
        self.organization_host = ""
        self._generation: tuple[int, ...] = ()
        self._steps: dict[tuple[str, str], list[StoredRecord]] = {}
        self._image_lists: dict[str, list[tuple[int, Image]]] = {}

    def on_write(self, event: WriteEvent) -> None:
        """Store listener: queue a notification per matching step."""
        if event.entity in PLATFORM_TABLES or self.tables.registry.get(event.entity) is None:
            return
        entity = self.tables.entity(event.entity)
        message = _MESSAGES[event.op]
        if not self._registered(message, entity.name):
            return  # nobody listens: build no images
        after = self.tables.view(entity, event.after) if event.after else None
        self.notify(
            Notification(
                entity=entity,
                message=message,
                record_id=str(event.key[0]),
                target=_target(entity, message, event, after),
                before=self.tables.view(entity, event.before) if event.before else None,
                after=after,
                changed=event.changed,
                principal=event.principal,
                depth=event.depth,
                created_on=event.after.modified_at if event.after else self.tables.store.now(),
            )
        )

    def listens(self, message: str, entity: str) -> bool:
        """Whether an enabled step is registered for ``message`` (on ``entity`` or on every
        table), so callers can skip building notifications nobody receives."""
        return bool(self._registered(message, entity))

    def _registered(self, message: str, entity: str) -> list[StoredRecord]:
        """The enabled steps of ``message`` on ``entity`` (or every table), remembered until
        a registration table changes (their change logs' last versions are the cache key;
        versions only grow, also across a reset)."""
        generation = tuple(self.tables.store.last_change(name) for name in _REGISTRATION)
        if generation != self._generation:
            self._generation, self._steps, self._image_lists = generation, {}, {}
        found = self._steps.get((message, entity))
        if found is None:
            found = self._steps[(message, entity)] = [
                step
                for step in self.tables.store.records(STEP)
                if self._registered_for(step.values, message, entity)
            ]
        return found

    def notify(self, notification: Notification) -> None:
        """Queue ``notification`` to every enabled step that matches it."""
        correlation = str(uuid.uuid4())
        for step in self._matching_steps(notification):
            endpoint = self._endpoint(step)
            if endpoint is not None:
                self._queue(notification, step, endpoint, correlation)

    def _name(self, entity_name: str, ref: Any, attribute: str) -> Any:
        if not isinstance(ref, LookupRef):
            return None
        record = self.tables.get(self.tables.entity(entity_name), ref.id)
        return record.values.get(attribute) if record else None

    def _registered_for(self, step: Mapping[str, Any], message: str, entity: str) -> bool:
        if step.get("statecode") != 0:
            return False
        if self._name(SDK_MESSAGE, step.get("sdkmessageid"), "name") != message:
            return False
        message_filter = step.get("sdkmessagefilterid")
        return message_filter is None or (
            self._name(SDK_MESSAGE_FILTER, message_filter, "primaryobjecttypecode") == entity
        )

    def _matching_steps(self, notification: Notification) -> list[StoredRecord]:
        steps = []
        for step in self._registered(notification.message, notification.entity.name):
            values = step.values
            wanted = {
                a.strip().lower()
                for a in (values.get("filteringattributes") or "").split(",")
                if a.strip()
            }
            if notification.message == "Update" and wanted and not wanted & notification.changed:
                continue
            if notification.company is not None and not _activated_in(values, notification.company):
                continue
            steps.append(step)
        return sorted(steps, key=lambda s: s.values.get("rank") or 0)

    def _endpoint(self, step: StoredRecord) -> StoredRecord | None:
        handler = step.values.get("eventhandler")
        if not isinstance(handler, LookupRef) or handler.entity != SERVICE_ENDPOINT:
            return None
        endpoint = self.tables.get(self.tables.entity(SERVICE_ENDPOINT), handler.id)
        if endpoint is None or endpoint.values.get("contract") != WEBHOOK_CONTRACT:
            return None
        return endpoint

    def _images(self, step_id: str) -> list[tuple[int, Image]]:
        cached = self._image_lists.get(step_id)
        if cached is None:
            cached = self._image_lists[step_id] = self._find_images(step_id)
        return cached

    def _find_images(self, step_id: str) -> list[tuple[int, Image]]:
        images = []
        for record in self.tables.store.records(STEP_IMAGE):
            owner = record.values.get("sdkmessageprocessingstepid")
            if isinstance(owner, LookupRef) and owner.id == step_id:
                names = record.values.get("attributes") or ""
                attributes = (
                    frozenset(a.strip().lower() for a in names.split(",") if a.strip()) or None
                )
                alias = record.values.get("entityalias") or "image"
                images.append((record.values.get("imagetype") or 0, Image(alias, attributes)))
        return images

    def _context_input(
        self, notification: Notification, step: StoredRecord, correlation: str
    ) -> ContextInput:
        before, after = notification.before, notification.after
        pre, post = [], []
        for image_type, image in self._images(self.tables.record_id(step)):
            if image_type in (0, 2) and before is not None:
                pre.append((image, image_attributes(before, image)))
            if image_type in (1, 2) and after is not None:
                post.append((image, image_attributes(after, image)))
        return ContextInput(
            message=notification.message,
            entity=notification.entity,
            record_id=notification.record_id,
            target=notification.target,
            pre_images=pre,
            post_images=post,
            principal=self.directory.get(notification.principal) or SYSTEM,
            step_id=self.tables.record_id(step),
            step_name=str(step.values.get("name") or ""),
            mode=int(step.values.get("mode") or 0),
            correlation_id=correlation,
            created_on=notification.created_on,
            depth=notification.depth,
            row_version=notification.row_version,
        )

    def _queue(
        self,
        notification: Notification,
        step: StoredRecord,
        endpoint: StoredRecord,
        correlation: str,
    ) -> None:
        context = build_context(
            self._context_input(notification, step, correlation), self.organization
        )
        entity, message = notification.entity, notification.message
        headers = {
            "Content-Type": "application/json",
            "x-ms-dynamics-organization": self.organization_host or self.organization.name,
            "x-ms-dynamics-entity-name": entity.name,
            "x-ms-dynamics-request-name": message,
            "x-ms-correlation-request-id": correlation,
        }
        body = orjson.dumps(context)
        if len(body) > MAX_BODY:
            for key in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
                context[key] = None if key == "ParentContext" else []
            body = orjson.dumps(context)
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
        url, display_url = _authenticated_url(endpoint.values, headers)
        self.dispatcher.submit(
            Delivery(
                kind="webhook",
                channel=self.tables.record_id(endpoint),
                url=url,
                display_url=display_url,
                body=body,
                headers=headers,
                policy=RetryPolicy(
                    max_retries=1,
                    interval_seconds=self.settings.webhook_retry_delay_seconds,
                    timeout_seconds=self.settings.webhook_timeout_seconds,
                    retry_statuses=frozenset({502, 503, 504}),
                ),
                meta={
                    "entity": entity.name,
                    "message": message,
                    "record_id": notification.record_id,
                    "step_id": self.tables.record_id(step),
                },
                on_failure=self._record_failure,
            )
        )

    def _record_failure(self, delivery: Delivery, result: DeliveryResult) -> None:
        meta = delivery.meta
        entity = self.tables.entity(ASYNC_OPERATION)
        regarding_targets = entity.fields["regardingobjectid"].targets
        now = self.tables.store.now()
        values: dict[str, Any] = {
            "name": f"Webhook delivery failed: {meta['message']} of {meta['entity']}",
            "operationtype": 1,
            "statecode": 3,
            "statuscode": 31,
            "message": f"Webhook delivery to {delivery.display_url} failed after {result.attempts} attempt(s): {result.error}",
            "friendlymessage": result.error,
            "errorcode": result.status or 0,
            "depth": 1,
            "messagename": meta["message"],
            "primaryentitytype": meta["entity"],
            "correlationid": delivery.headers.get("x-ms-correlation-request-id"),
            "owningextensionid": LookupRef(STEP, meta["step_id"]),
            "startedon": now,
            "completedon": now,
        }
        if meta["entity"] in regarding_targets and meta["message"] != "Delete":
            values["regardingobjectid"] = LookupRef(meta["entity"], meta["record_id"])
        self.tables.create(entity, WriteSet(values, frozenset(values)), SYSTEM.client_id)


def _target(
    entity: EntityDef, message: str, event: WriteEvent, after: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if message == "Delete" or after is None:
        return None
    if message == "Create":
        return {k: v for k, v in after.items() if v is not None or k in event.changed}
    names = set(event.changed) | {entity.primary_id, "modifiedon", "modifiedby"}
    return {k: after.get(k) for k in after if k in names}


def _activated_in(step: Mapping[str, Any], company: str) -> bool:
    """Whether a data-event step is active for ``company``: every legal entity, unless its
    ``configuration`` is ``<settings><setting name="LegalEntity" value="usmf,usrt" /></settings>``."""
    configuration = str(step.get("configuration") or "").strip()
    if not configuration:
        return True
    wanted = parse_settings(configuration).get("LegalEntity", "")
    companies = {c.strip().casefold() for c in wanted.split(",") if c.strip()}
    return not companies or company.casefold() in companies


def _authenticated_url(endpoint: Mapping[str, Any], headers: dict[str, str]) -> tuple[str, str]:
    url = str(endpoint.get("url"))
    auth_type, auth_value = endpoint.get("authtype"), str(endpoint.get("authvalue") or "")
    joiner = "&" if "?" in url else "?"
    if auth_type == WEBHOOK_KEY:
        return f"{url}{joiner}code={quote(auth_value, safe='')}", f"{url}{joiner}code=***"
    settings = parse_settings(auth_value)
    if auth_type == HTTP_HEADER:
        headers.update(settings)
        return url, url
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in settings.items())
    shown = "&".join(f"{quote(k, safe='')}=***" for k in settings)
    return f"{url}{joiner}{query}", f"{url}{joiner}{shown}"
