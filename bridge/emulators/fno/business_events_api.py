"""Emulator-specific OData-style API to configure business events (real F&O configures them
in the Business events workspace, not through OData):

====================  =====================================================================
``BusinessEventsCatalog``       GET: events that can be activated
``BusinessEventsEndpoints``     GET, POST ``{"EndpointName", "EndpointType": "Https", "Url"}``;
                                ``('<name>')``: GET, DELETE (400 while activations use it)
``BusinessEventsActivations``   GET, POST ``{"BusinessEventId", "EndpointName", "LegalEntity"}``
                                (``LegalEntity`` "" = all companies); DELETE with all three keys
``BusinessEventsErrors``        GET; ``(<Id>)/Resend``: POST queues the event again
====================  =====================================================================

Endpoint URLs are write-only secrets (Key Vault in the real product): reads mask their
query values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, empty_response, json_response
from bridge.emulators.fno.business_events import Activation, BusinessEvents, Endpoint
from bridge.emulators.fno.tables import odata_error
from bridge.emulators.odata.keys import Segment, parse_key

CATALOG, ENDPOINTS, ACTIVATIONS, ERRORS = (
    "BusinessEventsCatalog",
    "BusinessEventsEndpoints",
    "BusinessEventsActivations",
    "BusinessEventsErrors",
)
BUSINESS_EVENT_SETS = frozenset({CATALOG, ENDPOINTS, ACTIVATIONS, ERRORS})


def _body(request: ApiRequest, allowed: Sequence[str]) -> dict[str, str]:
    data = request.json_object()
    for name in data:
        if name not in allowed and not name.startswith("@"):
            raise odata_error(
                f"The property '{name}' does not exist on type 'Microsoft.Dynamics.DataEntities.{name}'."
            )
    return {name: str(data.get(name) or "") for name in allowed}


def _endpoint_json(endpoint: Endpoint) -> dict[str, str]:
    return {"EndpointName": endpoint.name, "EndpointType": "Https", "Url": endpoint.display_url}


def _activation_json(activation: Activation) -> dict[str, str]:
    return {
        "BusinessEventId": activation.event_id,
        "EndpointName": activation.endpoint,
        "LegalEntity": activation.legal_entity,
    }


class BusinessEventsApi:
    """HTTP handlers over :class:`BusinessEvents`."""

    def __init__(self, events: BusinessEvents, companies: Sequence[str]) -> None:
        self.events = events
        self.companies = {c.casefold() for c in companies}

    def handle(self, request: ApiRequest, segments: Sequence[Segment]) -> ApiResponse:
        """Dispatch a request under one of :data:`BUSINESS_EVENT_SETS`."""
        head = segments[0]
        root = f"{request.service_root}$metadata#{head.name}"
        if head.name == CATALOG and request.method == "GET":
            return json_response({"@odata.context": root, "value": self.events.catalog()})
        if head.name == ENDPOINTS:
            return self._endpoints(request, head, root)
        if head.name == ACTIVATIONS:
            return self._activations(request, head, root)
        if head.name == ERRORS:
            return self._errors(request, segments, root)
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )

    def _endpoints(self, request: ApiRequest, head: Segment, root: str) -> ApiResponse:
        if head.key is None and request.method == "GET":
            return json_response(
                {
                    "@odata.context": root,
                    "value": [_endpoint_json(e) for e in self.events.endpoints.values()],
                }
            )
        if head.key is None and request.method == "POST":
            return self._add_endpoint(request)
        name = self._single_key(head.key, "EndpointName")
        endpoint = self.events.endpoints.get(name)
        if endpoint is None:
            raise odata_error(f"Business event endpoint '{name}' does not exist.", 404)
        if request.method == "GET":
            return json_response({"@odata.context": f"{root}/$entity", **_endpoint_json(endpoint)})
        if request.method == "DELETE":
            if any(a.endpoint == name for a in self.events.activations):
                raise odata_error(
                    f"Endpoint '{name}' is used by active business events; deactivate them first."
                )
            del self.events.endpoints[name]
            return empty_response()
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )

    def _add_endpoint(self, request: ApiRequest) -> ApiResponse:
        data = _body(request, ("EndpointName", "EndpointType", "Url"))
        name, url = data["EndpointName"], data["Url"]
        if not name:
            raise odata_error("EndpointName must be filled in.")
        if data["EndpointType"].casefold() != "https":
            raise odata_error("The emulator supports only EndpointType 'Https'.")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise odata_error("Url must be an absolute http(s) URL.")
        if name in self.events.endpoints:
            raise odata_error(f"Business event endpoint '{name}' already exists.")
        endpoint = self.events.endpoints[name] = Endpoint(name, url)
        return json_response(_endpoint_json(endpoint), 201)

    def _activations(self, request: ApiRequest, head: Segment, root: str) -> ApiResponse:
        if head.key is None and request.method == "GET":
            return json_response(
                {
                    "@odata.context": root,
                    "value": [_activation_json(a) for a in self.events.activations],
                }
            )
        if head.key is None and request.method == "POST":
            data = _body(request, ("BusinessEventId", "EndpointName", "LegalEntity"))
            activation = Activation(
                data["BusinessEventId"], data["EndpointName"], data["LegalEntity"].casefold()
            )
            self._check_activation(activation)
            self.events.activations.append(activation)
            return json_response(_activation_json(activation), 201)
        if request.method != "DELETE" or head.key is None:
            raise odata_error(
                f"The requested resource does not support http method '{request.method}'.", 405
            )
        named = parse_key(head.key).named
        wanted = Activation(
            str(named.get("BusinessEventId")),
            str(named.get("EndpointName")),
            str(named.get("LegalEntity", "")).casefold(),
        )
        if wanted not in self.events.activations:
            raise odata_error("The business event activation does not exist.", 404)
        self.events.activations.remove(wanted)
        return empty_response()

    def _check_activation(self, activation: Activation) -> None:
        if activation.event_id not in {row["BusinessEventId"] for row in self.events.catalog()}:
            raise odata_error(f"Business event '{activation.event_id}' does not exist.")
        if activation.endpoint not in self.events.endpoints:
            raise odata_error(f"Business event endpoint '{activation.endpoint}' does not exist.")
        if activation.legal_entity and activation.legal_entity not in self.companies:
            raise odata_error(f"Legal entity '{activation.legal_entity}' does not exist.")
        if activation in self.events.activations:
            raise odata_error(
                "The business event is already activated for this endpoint and legal entity."
            )

    def _errors(self, request: ApiRequest, segments: Sequence[Segment], root: str) -> ApiResponse:
        head = segments[0]
        if head.key is None and request.method == "GET":
            return json_response(
                {"@odata.context": root, "value": list(self.events.errors.values())}
            )
        if (
            head.key is not None
            and len(segments) == 2
            and segments[1].name == "Resend"
            and request.method == "POST"
        ):
            error_id = self._single_key(head.key, "Id")
            if not error_id.isdigit() or not self.events.resend(int(error_id)):
                raise odata_error(
                    f"Business event error '{error_id}' does not exist or its endpoint is gone.",
                    404,
                )
            return empty_response()
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )

    def _single_key(self, key_text: str | None, name: str) -> str:
        predicate = parse_key(key_text or "")
        value: Any = predicate.single if predicate.is_single else predicate.named.get(name)
        if value is None:
            raise ApiError(400, f"The key '{name}' is required.")
        return str(value)


def raise_from_admin(events: BusinessEvents, body: Mapping[str, Any]) -> dict[str, Any]:
    """Raise an arbitrary business event (``POST /_emulator/business-events``)."""
    event_id = str(body.get("BusinessEventId") or "")
    if not event_id:
        raise ValueError("BusinessEventId is required")
    fields = body.get("Fields") or {}
    if not isinstance(fields, dict):
        raise ValueError("Fields must be an object")
    client_id = str(body.get("ClientId") or "system")
    return events.raise_event(event_id, str(body.get("LegalEntity") or ""), fields, client_id)
