"""How every aiokafka client connects (address and security), and starting and stopping
clients so that none is left open when a shutdown cancels them halfway."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from bridge.config import KafkaSettings
from bridge.tls import client_context

log = structlog.get_logger(__name__)

FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, ProducerFenced)
"""Errors after which an idempotent aiokafka producer never sends again: its sender task
ends and every later send raises the same error. The broker answers so when the sequence
numbers of the producer's session no longer match its log, as after a broker restart that
lost batches the producer had counted."""


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments that connect any aiokafka client (producer, consumer, admin)
    to the configured cluster: bootstrap servers, security protocol, TLS context (CA file,
    client certificate) and SASL mechanism and credentials. Every client the bridge creates
    is built with them, so one setting secures them all.

    The password is unwrapped here and handed to aiokafka only; it is never logged."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = client_context(
            settings.ssl_cafile,
            settings.ssl_certfile,
            settings.ssl_keyfile,
            settings.ssl_key_password,
        )
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # KafkaSettings validates the trio
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start_client(client: _Startable) -> None:
    """Start a producer or consumer; if the start fails or is cancelled (a shutdown while
    the broker is slow to answer), stop it before re-raising, since the owner's
    ``__aexit__`` will not run and aiokafka warns about a client never closed (see
    :func:`start_or_close`)."""
    await start_or_close(client.start, client.stop)


async def start_or_close(
    start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
) -> None:
    """Run ``start`` (one client's start, or several, with retries); if it fails or is
    cancelled, run ``close`` to the end and re-raise.

    A cancelled start is first let finish: aiokafka keeps the connection of its bootstrap
    request in a local variable, so interrupting it there leaves that socket open."""
    starting = asyncio.ensure_future(start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await starting
        await close_to_the_end(close)
        raise
    except BaseException:
        await close_to_the_end(close)
        raise


async def close_to_the_end(close: Callable[[], Awaitable[None]]) -> None:
    """Run ``close`` to the end even if the caller is cancelled meanwhile (a shutdown
    cancels a component's task while it is already closing): aiokafka closes its connections
    last, so an interrupted close would leave them open. Then the cancellation goes on."""
    try:
        await close()
    except asyncio.CancelledError:
        await close()
        raise


async def start_clients(*clients: _Startable) -> None:
    """Start ``clients`` in order; if one fails, stop all of them (those already started and
    those created but never started, which aiokafka would otherwise report unclosed)."""
    for index, client in enumerate(clients):
        try:
            await start_client(client)
        except BaseException:
            for other in clients[:index] + clients[index + 1 :]:
                await stop_client(other)
            raise


async def stop_client(client: _Startable) -> None:
    """Stop a producer or consumer to the end (:func:`close_to_the_end`)."""
    await close_to_the_end(client.stop)


class RenewingProducer:
    """An idempotent producer that replaces itself after a fatal error.

    aiokafka does not recover an idempotent producer from :data:`FATAL_PRODUCER_ERRORS`;
    a long-running bridge would refuse every webhook and poll from then on. This wrapper
    builds a fresh producer (a new producer id, sequences from zero) the next time it is
    used after such an error: immediately when :meth:`send` itself raises one (nothing was
    queued, so the send is made again on the new producer), and on the following send when
    an acknowledgement fails with one (that send's caller gets the error and retries, as for
    any unacknowledged send). Messages the old producer had written but not acknowledged
    may be written again by the new one — at least once, as everywhere else.

    Contract: at most one replacement per failed producer, however many sends see its
    error; :meth:`stop` stops the current one.
    """

    def __init__(self, build: Callable[[], AIOKafkaProducer], name: str) -> None:
        self._build = build
        self._name = name
        self._producer = build()
        self._broken: AIOKafkaProducer | None = None
        self._broken_error = ""
        self._renewing = asyncio.Lock()
        self.renewals = 0

    async def start(self) -> None:
        """Start the current producer."""
        await self._producer.start()

    async def stop(self) -> None:
        """Stop the current producer."""
        await self._producer.stop()

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue one message (``AIOKafkaProducer.send``'s arguments); the future resolves on
        the broker's acknowledgement."""
        if self._broken is self._producer:
            await self._renew(self._producer, self._broken_error)
        producer = self._producer
        try:
            sent: asyncio.Future[Any] = await producer.send(topic, value, **kwargs)
        except FATAL_PRODUCER_ERRORS as exc:
            self._broken, self._broken_error = producer, exc.__class__.__name__
            await self._renew(producer, self._broken_error)
            sent = await self._producer.send(topic, value, **kwargs)
        if sent.done():  # a callback added now would run only after the caller's await
            self._note(producer, sent)
        else:
            sent.add_done_callback(lambda done: self._note(producer, done))
        return sent

    async def send_and_wait(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        """Send one message and wait for its acknowledgement."""
        return await (await self.send(topic, value, **kwargs))

    def _note(self, producer: AIOKafkaProducer, done: asyncio.Future[Any]) -> None:
        error = None if done.cancelled() else done.exception()
        if isinstance(error, FATAL_PRODUCER_ERRORS):
            self._broken, self._broken_error = producer, error.__class__.__name__

    async def _renew(self, failed: AIOKafkaProducer, cause: str) -> None:
        async with self._renewing:
            if self._producer is not failed:
                return  # another send replaced it meanwhile
            replacement = self._build()
            await start_client(replacement)
            self._producer = replacement
            self.renewals += 1
        log.warning("kafka_producer_renewed", producer=self._name, error=cause)
        await stop_client(failed)


async def security_failure(settings: KafkaSettings) -> str | None:
    """Why the first bootstrap server refuses the bridge's TLS or SASL credentials, or
    ``None`` when the cause is something else (broker down, unreachable).

    aiokafka logs such a refusal and reports only "Unable to bootstrap"; this makes one
    connection of its own to name the cause in a one-line error."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    options = connection_options(settings)
    options.pop("bootstrap_servers")
    try:
        conn = await create_conn(
            host.strip("[]"), int(port), request_timeout_ms=settings.request_timeout_ms, **options
        )
    except (SaslAuthenticationFailed, AuthenticationFailedError) as exc:
        user = settings.sasl_username
        return f"SASL authentication failed ({settings.sasl_mechanism} as {user!r}): {exc}"
    except UnsupportedSaslMechanismError:
        return f"the broker does not offer SASL mechanism {settings.sasl_mechanism}"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except KafkaError as exc:
        # the broker refusing our client certificate shows as a closed connection caused by
        # a TLS alert (mutual TLS checks the client after the client's handshake finished)
        if isinstance(exc.__cause__, ssl.SSLError):
            return f"TLS refused by the broker: {exc.__cause__.reason or exc.__cause__}"
        return None
    except (TimeoutError, OSError, ValueError):
        return None
    conn.close()
    return None
