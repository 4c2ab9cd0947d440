#!/usr/bin/env python3
"""Is the local Kafka broker serving requests? A real protocol round trip, stdlib only.

Used by compose/local/kafka.sh, which may run before the project's virtual env exists, so
this file imports nothing outside the standard library.

One probe, over a fresh TCP connection:
1. ApiVersions v0 (every broker since 0.10 answers it, Kafka 4.x included): error_code must be 0,
   and the answer lists the request versions the broker supports.
2. Metadata, at the lowest non-flexible version (4..8) the broker advertises, for no topics:
   the broker list it returns must be non-empty, i.e. the broker is registered and unfenced.
   Kafka 4.0 dropped Metadata v0..v3 (KIP-896); v4..v8 are served by 2.x, 3.x and 4.x brokers.

With ``--tls-ca`` the probe speaks TLS (verifying the broker against that CA); with
``--sasl-plain-file`` (a file holding the user name on its first line and the password on
its second, so that no password shows in ``ps``) it authenticates with SASL PLAIN between
ApiVersions and Metadata: SaslHandshake v1, then SaslAuthenticate v0.

Exit codes: 0 ready; 1 not ready when --wait ran out; 2 the process named by --pid is gone.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import struct
import sys
import time

API_VERSIONS = 18
METADATA = 3
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
CLIENT_ID = b"kafka-ready"


class ProbeError(Exception):
    """The broker did not answer as a ready broker does."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by the broker")
        buf.extend(chunk)
    return bytes(buf)


def _round_trip(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id (nullable string).
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if size < 4 or size > 64 * 1024 * 1024:
        raise ProbeError(f"implausible response size {size}")
    response = _recv_exact(sock, size)
    # Response header v0 (non-flexible versions only, as sent here): correlation_id.
    (got,) = struct.unpack_from(">i", response, 0)
    if got != correlation_id:
        raise ProbeError(f"correlation id {got}, expected {correlation_id}")
    return response[4:]


def _api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    body = _round_trip(sock, API_VERSIONS, 0, 1, b"")
    (error_code, count) = struct.unpack_from(">hi", body, 0)
    if error_code != 0:
        raise ProbeError(f"ApiVersions error_code {error_code}")
    versions: dict[int, tuple[int, int]] = {}
    offset = 6
    for _ in range(count):
        key, lo, hi = struct.unpack_from(">hhh", body, offset)
        versions[key] = (lo, hi)
        offset += 6
    return versions


def _read_string(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, offset)
    offset += 2
    if length < 0:
        return None, offset
    return data[offset : offset + length].decode("utf-8"), offset + length


def _metadata_brokers(sock: socket.socket, version: int) -> list[tuple[int, str, int]]:
    # Metadata request v4..v7: topics (array, 0 = none), allow_auto_topic_creation.
    body = struct.pack(">i?", 0, False)
    if version >= 8:
        # v8 adds include_cluster_authorized_operations, include_topic_authorized_operations.
        body += struct.pack(">??", False, False)
    data = _round_trip(sock, METADATA, version, 2, body)
    offset = 4  # throttle_time_ms (v3+)
    (count,) = struct.unpack_from(">i", data, offset)
    offset += 4
    brokers: list[tuple[int, str, int]] = []
    for _ in range(max(count, 0)):
        (node_id,) = struct.unpack_from(">i", data, offset)
        host, offset = _read_string(data, offset + 4)
        (port,) = struct.unpack_from(">i", data, offset)
        _rack, offset = _read_string(data, offset + 4)
        brokers.append((node_id, host or "", port))
    return brokers


def _kafka_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def _sasl_plain(sock: socket.socket, user: str, password: str) -> None:
    body = _round_trip(sock, SASL_HANDSHAKE, 1, 3, _kafka_string("PLAIN"))
    (error_code,) = struct.unpack_from(">h", body, 0)
    if error_code != 0:
        raise ProbeError(f"SaslHandshake error_code {error_code} (PLAIN not enabled?)")
    token = b"\0" + user.encode() + b"\0" + password.encode()
    body = _round_trip(sock, SASL_AUTHENTICATE, 0, 4, struct.pack(">i", len(token)) + token)
    (error_code,) = struct.unpack_from(">h", body, 0)
    if error_code != 0:
        message, _ = _read_string(body, 2)
        raise ProbeError(f"SaslAuthenticate error_code {error_code}: {message}")


def _connect(host: str, port: int, timeout: float, tls_ca: str | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    if tls_ca is None:
        return sock
    context = ssl.create_default_context(cafile=tls_ca)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def probe(
    host: str,
    port: int,
    timeout: float,
    tls_ca: str | None = None,
    sasl_plain: tuple[str, str] | None = None,
) -> str:
    """One readiness probe; returns a one-line description, raises OSError or ProbeError."""
    with _connect(host, port, timeout, tls_ca) as sock:
        versions = _api_versions(sock)
        if sasl_plain is not None:
            _sasl_plain(sock, *sasl_plain)
        if METADATA not in versions:
            raise ProbeError("the broker does not advertise Metadata")
        lo, hi = versions[METADATA]
        version = max(lo, 4)
        if version > min(hi, 8):
            # No non-flexible Metadata version in common: ApiVersions alone has to do.
            return f"ApiVersions ok ({len(versions)} APIs); Metadata v{lo}..v{hi} not probed"
        brokers = _metadata_brokers(sock, version)
        if not brokers:
            raise ProbeError("Metadata lists no broker yet")
        listed = ", ".join(f"{node}@{h}:{p}" for node, h, p in brokers)
        return f"ApiVersions ok ({len(versions)} APIs); Metadata v{version} brokers: {listed}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # Field 3, after "pid (comm)"; a zombie has exited.
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument(
        "--wait", type=float, default=0.0, help="keep probing for up to this many seconds"
    )
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="socket timeout of one probe (s)"
    )
    parser.add_argument("--pid", type=int, help="give up as soon as this process is gone")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--tls-ca", help="speak TLS, trusting this CA file (PEM)")
    parser.add_argument(
        "--sasl-plain-file", help="authenticate with SASL PLAIN: user line, password line"
    )
    args = parser.parse_args(argv)
    sasl_plain = None
    if args.sasl_plain_file:
        with open(args.sasl_plain_file, encoding="utf-8") as credentials:
            user, password = credentials.read().splitlines()[:2]
        sasl_plain = (user, password)

    deadline = time.monotonic() + args.wait
    last_error = "no probe made"
    while True:
        try:
            result = probe(args.host, args.port, args.timeout, args.tls_ca, sasl_plain)
        except (OSError, ProbeError, struct.error, UnicodeDecodeError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if not args.quiet:
                print(f"kafka ready at {args.host}:{args.port}: {result}")
            return 0
        if args.pid is not None and not _process_alive(args.pid):
            if not args.quiet:
                print(f"kafka process {args.pid} exited ({last_error})", file=sys.stderr)
            return 2
        if time.monotonic() >= deadline:
            if not args.quiet:
                print(f"kafka not ready at {args.host}:{args.port}: {last_error}", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
