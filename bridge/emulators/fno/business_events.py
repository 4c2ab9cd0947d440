"""F&O business events: catalog, endpoints, activations, raising and delivery (B.4).

The catalog holds the documented application events of :data:`APPLICATION_EVENTS` (e.g.
``SalesInvoicePostedBusinessEvent`` when an invoice header is created), with their documented
flat payload. Real F&O raises no business event for an ordinary data change: record changes
reach subscribers as data events (:mod:`bridge.emulators.dataverse.data_events`). An event goes to
every activation of its id whose legal entity is empty or the record's company. Delivery is
asynchronous, in order per endpoint, retried ``fno_event_retries`` times at
``fno_event_retry_interval_seconds``; then it lands in the errors list (resendable).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bridge.emulators.common.delivery import (
    Delivery,
    DeliveryDispatcher,
    DeliveryResult,
    RetryPolicy,
)
from bridge.emulators.common.principals import SYSTEM, PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import Op, RecordStore, WriteEvent
from bridge.emulators.odata.entities import EntityRegistry
from bridge.emulators.odata.values import wcf_date

FIRST_CONTROL_NUMBER = 5637144576


@dataclass(frozen=True)
class ApplicationEvent:
    """An application business event raised by a write: id, entity, operation, contract."""

    event_id: str
    entity_set: str
    op: Op
    contract: Callable[[Mapping[str, Any]], dict[str, Any]]
    description: str


def _date(value: Any) -> str:
    return wcf_date(value) if isinstance(value, datetime | date) else wcf_date(datetime(1900, 1, 1))


def _invoice_posted(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "InvoiceAccount": values.get("InvoiceCustomerAccountNumber", ""),
        "InvoiceId": values.get("InvoiceNumber", ""),
        "SalesOrderId": values.get("SalesOrderNumber", ""),
        "InvoiceDate": _date(values.get("InvoiceDate")),
        "InvoiceDueDate": _date(values.get("InvoiceDate")),
        "InvoiceAmountInAccountingCurrency": values.get("TotalInvoiceAmount", 0.0),
        "InvoiceTaxAmount": values.get("TotalTaxAmount", 0.0),
        "LegalEntity": values.get("dataAreaId", ""),
    }


APPLICATION_EVENTS: tuple[ApplicationEvent, ...] = (
    ApplicationEvent(
        "SalesInvoicePostedBusinessEvent",
        "SalesInvoiceHeadersV2",
        Op.CREATE,
        _invoice_posted,
        "Sales invoice posted (raised when a SalesInvoiceHeadersV2 record is created)",
    ),
)


@dataclass(frozen=True)
class Endpoint:
    """An HTTPS business-event endpoint; the URL may carry a secret (``?code=``)."""

    name: str
    url: str

    @property
    def display_url(self) -> str:
        """The URL with query values masked."""
        parts = urlsplit(self.url)
        masked = urlencode(
            [(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*"
        )
        return urlunsplit(parts._replace(query=masked))


@dataclass(frozen=True)
class Activation:
    """Business event ``event_id`` is sent to ``endpoint`` for ``legal_entity`` ("" = all)."""

    event_id: str
    endpoint: str
    legal_entity: str


class BusinessEvents:
    """Registrations, the errors list and raising/delivering events for one emulator."""

    def __init__(
        self,
        registry: EntityRegistry,
        store: RecordStore,
        dispatcher: DeliveryDispatcher,
        directory: PrincipalDirectory,
        settings: EmulatorSettings,
    ) -> None:
        self.registry = registry
        self.store = store
        self.dispatcher = dispatcher
        self.directory = directory
        self.settings = settings
        self.endpoints: dict[str, Endpoint] = {}
        self.activations: list[Activation] = []
        self.errors: dict[int, dict[str, Any]] = {}
        self._control_number = FIRST_CONTROL_NUMBER - 1
        self._next_error = 1

    def catalog(self) -> list[dict[str, str]]:
        """Every business event that can be activated."""
        return [
            {
                "BusinessEventId": e.event_id,
                "Name": e.event_id,
                "Category": "Application",
                "Description": e.description,
            }
            for e in APPLICATION_EVENTS
        ]

    def reset(self) -> None:
        """Forget endpoints, activations and errors (control numbers keep increasing)."""
        self.endpoints.clear()
        self.activations.clear()
        self.errors.clear()

    def on_write(self, event: WriteEvent) -> None:
        """Store listener: raise the application events ``event`` triggers."""
        values = event.after.values if event.after else event.before.values if event.before else {}
        company = str(values.get("dataAreaId", ""))
        for application in APPLICATION_EVENTS:
            if application.entity_set == event.entity and application.op is event.op:
                self.raise_event(
                    application.event_id, company, application.contract(values), event.principal
                )

    def raise_event(
        self, event_id: str, legal_entity: str, contract: Mapping[str, Any], client_id: str
    ) -> dict[str, Any]:
        """Build one event and queue it to every matching activation; returns the payload."""
        self._control_number += 1
        principal = self.directory.get(client_id) or SYSTEM
        now = self.store.now()
        payload: dict[str, Any] = {
            "BusinessEventId": event_id,
            "BusinessEventLegalEntity": legal_entity.upper(),
            "ContextRecordSubject": "",
            "ControlNumber": self._control_number,
            "EventId": str(uuid.uuid4()).upper(),
            "EventTime": wcf_date(now),
            "EventTimeIso8601": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
            "InitiatingUserAADObjectId": "{" + principal.object_id.upper() + "}",
            "MajorVersion": 1,
            "MinorVersion": 0,
            "ParentContextRecordSubjects": [],
            **contract,
        }
        for activation in self.activations:
            matches_company = activation.legal_entity in ("", legal_entity.casefold())
            endpoint = self.endpoints.get(activation.endpoint)
            if activation.event_id == event_id and matches_company and endpoint is not None:
                self.send(endpoint, payload)
        return payload

    def send(self, endpoint: Endpoint, payload: Mapping[str, Any]) -> None:
        """Queue ``payload`` to ``endpoint``."""
        policy = RetryPolicy(
            max_retries=self.settings.fno_event_retries,
            interval_seconds=self.settings.fno_event_retry_interval_seconds,
            timeout_seconds=self.settings.webhook_timeout_seconds,
        )
        self.dispatcher.submit(
            Delivery(
                kind="business_event",
                channel=f"business-event:{endpoint.name}",
                url=endpoint.url,
                display_url=endpoint.display_url,
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                policy=policy,
                meta={
                    "endpoint": endpoint.name,
                    "business_event_id": payload["BusinessEventId"],
                    "control_number": payload["ControlNumber"],
                    "event_id": payload["EventId"],
                },
                on_failure=self._record_error,
            )
        )

    def resend(self, error_id: int) -> bool:
        """Queue a failed event again (the error row goes); False if unknown or endpoint gone."""
        row = self.errors.get(error_id)
        endpoint = self.endpoints.get(row["EndpointName"]) if row else None
        if row is None or endpoint is None:
            return False
        del self.errors[error_id]
        self.send(endpoint, json.loads(row["Payload"]))
        return True

    def _record_error(self, delivery: Delivery, result: DeliveryResult) -> None:
        payload = json.loads(delivery.body)
        error_id = self._next_error
        self._next_error += 1
        self.errors[error_id] = {
            "Id": error_id,
            "BusinessEventId": payload["BusinessEventId"],
            "EndpointName": delivery.meta["endpoint"],
            "LegalEntity": payload.get("BusinessEventLegalEntity", ""),
            "EventId": payload["EventId"],
            "ControlNumber": payload["ControlNumber"],
            "ErrorMessage": result.error or "",
            "ErrorTime": self.store.now().isoformat(),
            "Attempts": result.attempts,
            "Payload": delivery.body.decode(),
        }
