"""The Dataverse (Dynamics 365 Sales) emulator: Web API under ``/api/data/v9.2/``, token
endpoint, webhooks and the ``/_emulator`` control API, as one aiohttp application; once
:meth:`DataverseEmulator.connect_fno` links an F&O emulator, also its virtual tables and
data events.

``DataverseEmulator(settings).app`` can be served by ``web.AppRunner`` or
``aiohttp.test_utils.TestServer``; its cleanup stops the webhook delivery workers.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from multidict import CIMultiDict

from bridge.emulators.common.admin import AdminTarget
from bridge.emulators.common.auth import PRINCIPAL_KEY, TokenIssuer
from bridge.emulators.common.delivery import DeliveryDispatcher, DeliveryLog, WorkerPool
from bridge.emulators.common.errors import ApiError, dataverse_body
from bridge.emulators.common.faults import FaultInjector
from bridge.emulators.common.limits import ServiceProtection, UserLimits
from bridge.emulators.common.principals import PrincipalDirectory, stable_id
from bridge.emulators.common.protocol import ApiRequest, to_web_response
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import RecordStore
from bridge.emulators.common.web_support import AppParts, build_app
from bridge.emulators.dataverse.api import DataverseApi
from bridge.emulators.dataverse.data_events import DataEvents
from bridge.emulators.dataverse.entities import DATAVERSE_ENTITIES
from bridge.emulators.dataverse.execution_context import Organization
from bridge.emulators.dataverse.p2c import install_sales_behaviour
from bridge.emulators.dataverse.seeds import seed_data_event_messages, seed_dataverse
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.dataverse.virtual_tables import VirtualTables
from bridge.emulators.dataverse.webhook_registration import install_registration_rules
from bridge.emulators.dataverse.webhooks import WebhookNotifier
from bridge.emulators.fno.tables import FnoTables

API_PREFIX = "/api/data/"
THROTTLE_MESSAGE = "Number of requests exceeded the limit of 6000 over time window of 300 seconds."


def throttle_error(status: int, retry_after: float | None) -> ApiError:
    """The error a fault rule answers with: 429 is Dataverse's service-protection error."""
    if status == 429:
        seconds = retry_after if retry_after is not None else 1
        return ApiError(
            429, THROTTLE_MESSAGE, code="0x80072322", headers={"Retry-After": f"{seconds:g}"}
        )
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return ApiError(status, "An unexpected error occurred.", code="0x80040216", headers=headers)


class DataverseEmulator:
    """One emulated Dataverse organization."""

    def __init__(
        self, settings: EmulatorSettings, directory: PrincipalDirectory | None = None
    ) -> None:
        self.settings = settings
        self.directory = directory or PrincipalDirectory(settings)
        self.organization = Organization(
            organization_id=stable_id("organization", settings.organization_name),
            name=settings.organization_name,
            business_unit_id=stable_id("businessunit", settings.organization_name),
        )
        self.store = RecordStore(timedelta(seconds=settings.change_tracking_retention_seconds))
        self.tables = DataverseTables(DATAVERSE_ENTITIES, self.store, self.directory)
        install_registration_rules(self.tables)
        install_sales_behaviour(self.tables)
        self.deliveries = DeliveryLog()
        self.dispatcher = DeliveryDispatcher(
            self.deliveries,
            pools={
                "webhook": WorkerPool(
                    settings.webhook_workers,
                    settings.webhook_reorder_window_seconds,
                    settings.webhook_reorder_seed,
                )
            },
        )
        self.webhooks = WebhookNotifier(
            self.tables, self.dispatcher, self.directory, settings, self.organization
        )
        self.store.subscribe(self.webhooks.on_write)
        self.faults = FaultInjector((API_PREFIX,))
        self.protection = ServiceProtection(
            UserLimits(
                request_limit=settings.dataverse_request_limit,
                execution_limit_seconds=settings.dataverse_execution_limit_seconds,
                concurrency_limit=settings.dataverse_concurrency_limit,
                window_seconds=settings.dataverse_limit_window_seconds,
                dop_hint=settings.dataverse_dop_hint,
                time_scale=settings.limits_time_scale,
            )
        )
        self.issuer = TokenIssuer(self.directory, settings.tenant, settings.token_lifetime_seconds)
        self.api = DataverseApi(self.tables, self.organization, settings.dataverse_max_page_size)
        self.virtual: VirtualTables | None = None
        self._seed()
        self.app = build_app(
            AppParts(
                system="dataverse",
                api_prefix=API_PREFIX,
                api_route=r"/api/data/{version:v9\.[0-2]}/{tail:.*}",
                handler=self.handle,
                issuer=self.issuer,
                directory=self.directory,
                faults=self.faults,
                render_error=dataverse_body,
                fault_error=throttle_error,
                limits=(
                    self.protection.middleware(API_PREFIX, dataverse_body)
                    if settings.limits_enabled
                    else None
                ),
                admin=AdminTarget(
                    system="dataverse",
                    store=self.store,
                    faults=self.faults,
                    deliveries=self.deliveries,
                    dispatcher=self.dispatcher,
                    directory=self.directory,
                    reset=self.reset,
                    tracked_stores=self._tracked_stores,
                ),
            )
        )

    def connect_fno(self, fno: FnoTables) -> None:
        """Power Platform integration with an F&O environment: its entities become virtual
        tables ``mserp_*`` (read live from ``fno``) and its writes raise data events
        (``OnExternalCreated/Updated/Deleted``) through this organization's webhooks."""
        self.virtual = VirtualTables(fno)
        self.api.connect(self.virtual)
        fno.store.subscribe(DataEvents(self.virtual, self.webhooks).on_write)
        seed_data_event_messages(self.tables, self.virtual.entities)

    def _tracked_stores(self) -> list[RecordStore]:
        return [self.store] + ([self.virtual.fno.store] if self.virtual else [])

    def reset(self) -> None:
        """Back to a freshly seeded organization: no records, registrations, faults or logs."""
        self.store.reset()
        self.faults.clear()
        self.protection.reset()
        self.deliveries.clear()
        self._seed()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one Web API request."""
        version = request.match_info["version"]
        root = f"{request.scheme}://{request.host}/api/data/{version}/"
        if not self.webhooks.organization_host:
            self.webhooks.organization_host = request.host
        api_request = ApiRequest(
            method=request.method,
            path=request.match_info["tail"],
            query={key: value for key, value in request.query.items()},
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            principal=request[PRINCIPAL_KEY],
            service_root=root,
        )
        return to_web_response(self.api.dispatch(api_request))

    def _seed(self) -> None:
        seed_dataverse(
            self.tables,
            self.directory,
            self.organization,
            self.settings.tenant,
            self.settings.dataverse_tables_without_bulk,
        )
        if self.virtual is not None:
            seed_data_event_messages(self.tables, self.virtual.entities)
