"""The Finance and Operations emulator: OData under ``/data/``, token endpoint, business
events, sales order processing (:mod:`bridge.emulators.fno.sales`, actions in
:mod:`bridge.emulators.fno.sales_processing`) and the ``/_emulator`` control API, as one
aiohttp application.

``FnoEmulator(settings).app`` can be served by ``web.AppRunner`` or
``aiohttp.test_utils.TestServer``; its cleanup stops the business-event delivery workers.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from multidict import CIMultiDict

from bridge.emulators.common.admin import AdminTarget
from bridge.emulators.common.auth import PRINCIPAL_KEY, TokenIssuer
from bridge.emulators.common.delivery import DeliveryDispatcher, DeliveryLog
from bridge.emulators.common.errors import ApiError, fno_body
from bridge.emulators.common.faults import FaultInjector
from bridge.emulators.common.limits import COST_KEY, ResourceThrottle
from bridge.emulators.common.principals import PrincipalDirectory
from bridge.emulators.common.protocol import ApiRequest, to_web_response
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import RecordStore
from bridge.emulators.common.web_support import AppParts, build_app
from bridge.emulators.fno.api import FnoApi
from bridge.emulators.fno.business_events import BusinessEvents
from bridge.emulators.fno.business_events_api import BusinessEventsApi, raise_from_admin
from bridge.emulators.fno.entities import build_registry
from bridge.emulators.fno.sales import SalesOrders
from bridge.emulators.fno.sales_processing import SalesOrderProcessing
from bridge.emulators.fno.tables import FnoTables

API_PREFIX = "/data/"
THROTTLE_MESSAGE = (
    "Number of requests exeeded the limit of 6000 over the time window of 300 seconds."
)


def throttle_error(status: int, retry_after: float | None) -> ApiError:
    """The error a fault rule answers with: 429 uses F&O's (verbatim, typo included) text."""
    if status == 429:
        seconds = retry_after if retry_after is not None else 1
        return ApiError(429, THROTTLE_MESSAGE, wrap=False, headers={"Retry-After": f"{seconds:g}"})
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return ApiError(
        status, "An unexpected error occurred in the emulated service.", headers=headers
    )


class FnoEmulator:
    """One emulated Finance and Operations environment."""

    def __init__(
        self, settings: EmulatorSettings, directory: PrincipalDirectory | None = None
    ) -> None:
        self.settings = settings
        self.directory = directory or PrincipalDirectory(settings)
        self.registry = build_registry(settings.fno_modified_datetime_field)
        self.store = RecordStore(timedelta(seconds=settings.fno_change_tracking_retention_seconds))
        self.tables = FnoTables(self.registry, self.store, settings.companies)
        self.sales = SalesOrders(self.tables, settings)
        self.sales.install()
        self.deliveries = DeliveryLog()
        self.dispatcher = DeliveryDispatcher(self.deliveries)
        self.events = BusinessEvents(
            self.registry, self.store, self.dispatcher, self.directory, settings
        )
        self.store.subscribe(self.events.on_write)
        self.faults = FaultInjector((API_PREFIX,))
        self.throttle = ResourceThrottle(
            settings.fno_resource_capacity,
            settings.fno_resource_window_seconds,
            settings.limits_time_scale,
        )
        self.issuer = TokenIssuer(self.directory, settings.tenant, settings.token_lifetime_seconds)
        events_api = BusinessEventsApi(self.events, settings.companies)
        self.api = FnoApi(self.tables, settings.default_company, settings.fno_page_size, events_api)
        SalesOrderProcessing(self.sales, settings.default_company).register(self.api.actions)
        self.app = build_app(
            AppParts(
                system="fno",
                api_prefix=API_PREFIX,
                api_route="/data/{tail:.*}",
                handler=self.handle,
                issuer=self.issuer,
                directory=self.directory,
                faults=self.faults,
                render_error=fno_body,
                fault_error=throttle_error,
                limits=(
                    self.throttle.middleware(API_PREFIX, fno_body)
                    if settings.limits_enabled
                    else None
                ),
                admin=AdminTarget(
                    system="fno",
                    store=self.store,
                    faults=self.faults,
                    deliveries=self.deliveries,
                    dispatcher=self.dispatcher,
                    directory=self.directory,
                    reset=self.reset,
                    extra_routes=[web.post("/_emulator/business-events", self._raise_event)],
                ),
            )
        )

    def reset(self) -> None:
        """Back to an empty environment: no records, registrations, errors, faults or logs."""
        self.store.reset()
        self.events.reset()
        self.faults.clear()
        self.throttle.reset()
        self.deliveries.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one OData request."""
        api_request = ApiRequest(
            method=request.method,
            path=request.match_info["tail"],
            query={key: value for key, value in request.query.items()},
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            principal=request[PRINCIPAL_KEY],
            service_root=f"{request.scheme}://{request.host}/data/",
        )
        response = self.api.dispatch(api_request)
        request[COST_KEY] = response.cost
        return to_web_response(response)

    async def _raise_event(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            payload = raise_from_admin(self.events, body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(payload, status=201)
