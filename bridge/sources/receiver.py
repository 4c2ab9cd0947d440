"""The webhook receiver: Dataverse webhook notifications in — Sales changes, and F&O data
events on the virtual tables — change events out.

What each request gets (always a JSON body ``{"error": {"code", "message"}}`` on failure):

=====================================  ======  =========================================
Request                                 Status  Published
=====================================  ======  =========================================
valid notification, Kafka acknowledged  200     the change event (once per version)
missing or wrong key (``?code=``)       401     nothing
body over ``max_body_bytes``            413     nothing
body not JSON                           400     nothing
JSON that is not a notification         400     nothing
entity or message not captured          422     nothing
Kafka or the source API unavailable     503     nothing (the sender retries; the poller
                                                catches up)
=====================================  ======  =========================================

Bad input never gets a 5xx: only failures of the bridge's own dependencies do, and those
are exactly the cases where the sender should retry.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import orjson
import structlog
from aiohttp import web

from bridge.config import WebhookSettings
from bridge.dataverse.reader import DataverseReader
from bridge.dataverse.webhook import (
    RemoteExecutionContext,
    SalesNotification,
    parse_notification,
)
from bridge.errors import FlowBlocked, InvalidNotification, NotCaptured, TransientError
from bridge.fno.data_events import (
    data_event_entity,
    data_event_key,
    data_event_to_change,
    is_data_event,
)
from bridge.fno.reader import FnoReader
from bridge.kafka.publisher import Publisher
from bridge.tls import server_context

log = structlog.get_logger(__name__)

DATAVERSE_PATH = "/webhooks/dataverse"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_answer(data: Any, status: int = 200) -> web.Response:
    """A JSON answer (encoded with orjson: one is written per notification)."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def json_error(status: int, code: str, message: str) -> web.Response:
    """An error answer in one shape for every failure."""
    return json_answer({"error": {"code": code, "message": message}}, status=status)


class Refused(Exception):
    """A request answered with an error status; the middleware renders it as JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One place that turns every failure into the receiver's JSON error answer."""
    try:
        return await handler(request)
    except Refused as exc:
        return json_error(exc.status, exc.code, str(exc))
    except NotCaptured as exc:
        return json_error(422, "not_captured", str(exc))
    except InvalidNotification as exc:
        return json_error(400, "invalid_notification", str(exc))
    except (TransientError, FlowBlocked) as exc:
        log.warning("webhook_publish_failed", path=request.path, error=str(exc))
        return json_error(503, "unavailable", "change not stored, retry later")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)


def bound_port(runner: web.AppRunner, requested: int) -> int:
    """The port a runner's site listens on (the real one when ``requested`` was 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


class WebhookReceiver:
    """Async context manager serving the webhook endpoints on ``settings.host:port``, over
    HTTPS when a certificate is configured."""

    def __init__(
        self,
        settings: WebhookSettings,
        publisher: Publisher,
        reader: DataverseReader,
        fno_reader: FnoReader | None = None,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._reader = reader
        self._fno_reader = fno_reader
        self._key = settings.key.get_secret_value().encode()
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    def application(self) -> web.Application:
        """The aiohttp application (also used directly by tests)."""
        app = web.Application(
            client_max_size=self._settings.max_body_bytes, middlewares=[_errors_as_json]
        )
        app.router.add_post(DATAVERSE_PATH, self.handle_dataverse)
        app.router.add_get("/healthz", self._health)
        return app

    async def __aenter__(self) -> Self:
        """Listen; over HTTPS when ``tls_certfile`` is set (Dataverse calls webhooks on
        ports 80 and 443 only, so a receiver reached directly serves TLS itself on 443)."""
        settings = self._settings
        tls = None
        if settings.tls_certfile is not None:
            tls = server_context(
                settings.tls_certfile, settings.tls_keyfile, settings.tls_key_password
            )
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port, ssl_context=tls)
        await site.start()
        self.port = bound_port(self._runner, settings.port)
        log.info(
            "webhook_receiver_started", host=settings.host, port=self.port, tls=tls is not None
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _request: web.Request) -> web.Response:
        return json_answer({"status": "ok"})

    async def _authorised_json(self, request: web.Request) -> Any:
        """The decoded JSON body of a request that carries the right key."""
        supplied = request.query.get("code", "")
        if not hmac.compare_digest(supplied.encode(), self._key):
            raise Refused(401, "unauthorized", "missing or wrong webhook key")
        return await self._json_body(request)

    async def handle_dataverse(self, request: web.Request) -> web.Response:
        """Validate, convert and publish one Dataverse webhook notification (an F&O data
        event, on a virtual table, included)."""
        context = parse_notification(await self._authorised_json(request))
        if is_data_event(context):
            return await self._handle_data_event(context)
        notification = SalesNotification.of(context)
        fresh = None
        if notification.needs_read:
            fresh = await self._reader.read(notification.entity, str(context.PrimaryEntityId))
            if fresh is None:
                return json_answer({"published": 0, "reason": "record gone"})
        event = notification.event(fresh)
        published = await self._publisher.publish([(notification.entity, event)])
        return json_answer({"published": published, "event_id": event.event_id})

    async def _handle_data_event(self, context: RemoteExecutionContext) -> web.Response:
        """Read the F&O record a data event names and publish its change."""
        entity = data_event_entity(context)
        key = data_event_key(context, entity)
        if key is None:
            raise NotCaptured(
                f"data event on {context.PrimaryEntityName} carries no key columns: register "
                "its steps with images (bridge setup does)"
            )
        if self._fno_reader is None:
            raise NotCaptured("F&O capture is not enabled")
        record = None
        if context.MessageName != "OnExternalDeleted":
            record = await self._fno_reader.read(entity, key)
            if record is None:
                return json_answer({"published": 0, "reason": "record gone"})
        event = data_event_to_change(context, entity, key, record)
        published = await self._publisher.publish([(entity, event)])
        return json_answer({"published": published, "event_id": event.event_id})

    async def _json_body(self, request: web.Request) -> Any:
        if (
            request.content_length is not None
            and request.content_length > self._settings.max_body_bytes
        ):
            raise Refused(413, "too_large", "body exceeds the configured maximum")
        raw = await request.read()
        try:
            # orjson: the webhook body parse is the ingest hot path; it refuses a BOM,
            # which the standard parser accepted, so one is dropped first
            return orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "invalid_json", "body is not JSON") from None
