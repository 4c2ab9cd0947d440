"""TLS contexts, built in one place for every client and server of the bridge: Kafka, the
Dynamics APIs, the token authority and the webhook receiver.

A file that is missing or does not hold what it should is a :class:`ConfigError` naming the
file, raised when the component is built (before anything starts), never a traceback."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import SecretStr

from bridge.errors import ConfigError


def client_context(
    cafile: Path | None = None,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    key_password: SecretStr | None = None,
) -> ssl.SSLContext:
    """A client context verifying servers (against ``cafile``, else the system's CAs), with
    hostname checking; with ``certfile``/``keyfile`` it presents a client certificate."""
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"CA file {cafile}: {_reason(exc)}") from None
    if certfile is not None:
        _load_chain(context, certfile, keyfile, key_password)
    return context


def server_context(
    certfile: Path, keyfile: Path | None, key_password: SecretStr | None = None
) -> ssl.SSLContext:
    """A server context presenting ``certfile`` (its chain) with ``keyfile``; TLS 1.2+."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, certfile, keyfile, key_password)
    return context


def _load_chain(
    context: ssl.SSLContext, certfile: Path, keyfile: Path | None, password: SecretStr | None
) -> None:
    try:
        context.load_cert_chain(
            str(certfile),
            str(keyfile) if keyfile else None,
            password.get_secret_value() if password else None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"certificate {certfile} / key {keyfile or certfile}: {_reason(exc)}"
        ) from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not a usable certificate or key"
    return exc.strerror or exc.__class__.__name__
