"""``bridge run`` as a child process: started with a test's settings, stopped or SIGKILLed
by its own pid (never by name), its output kept in a log file for the failure report."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from bridge.config import Settings
from tests.support.waiting import eventually


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``bridge run`` use ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    s = settings
    env.update(
        {
            "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
            "BRIDGE_KAFKA__TOPIC_PREFIX": s.kafka.topic_prefix,
            "BRIDGE_KAFKA__PARTITIONS": str(s.kafka.partitions),
            "BRIDGE_SALES__BASE_URL": s.sales.base_url,
            "BRIDGE_FNO__BASE_URL": s.fno.base_url,
            "BRIDGE_WEBHOOK__PORT": str(s.webhook.port),
            "BRIDGE_WEBHOOK__KEY": s.webhook.key.get_secret_value(),
            "BRIDGE_POLLER__INTERVAL_SECONDS": str(s.poller.interval_seconds),
            "BRIDGE_RETRY__MAX_ATTEMPTS": str(s.retry.max_attempts),
            "BRIDGE_RETRY__INITIAL_BACKOFF_SECONDS": str(s.retry.initial_backoff_seconds),
            "BRIDGE_RETRY__MAX_BACKOFF_SECONDS": str(s.retry.max_backoff_seconds),
            "BRIDGE_FLOWS__CONSUMER_GROUP_PREFIX": s.flows.consumer_group_prefix,
            "BRIDGE_FLOWS__BLOCKED_RETRY_SECONDS": str(s.flows.blocked_retry_seconds),
            "BRIDGE_LOG__FORMAT": "json",
            "BRIDGE_ADMIN__HOST": s.admin.host,
            "BRIDGE_ADMIN__PORT": str(s.admin.port),
        }
    )
    if s.flows.enabled is not None:
        env["BRIDGE_FLOWS__ENABLED"] = json.dumps(s.flows.enabled)
    if s.admin.token is not None:
        env["BRIDGE_ADMIN__TOKEN"] = s.admin.token.get_secret_value()
    env.update(kafka_security_env(s))
    return env


def kafka_security_env(settings: Settings) -> dict[str, str]:
    """The ``BRIDGE_KAFKA__*`` security variables of ``settings`` (none for PLAINTEXT)."""
    kafka = settings.kafka
    values = {
        "SECURITY_PROTOCOL": kafka.security_protocol,
        "SASL_MECHANISM": kafka.sasl_mechanism,
        "SASL_USERNAME": kafka.sasl_username,
        "SASL_PASSWORD": kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        "SSL_CAFILE": kafka.ssl_cafile,
        "SSL_CERTFILE": kafka.ssl_certfile,
        "SSL_KEYFILE": kafka.ssl_keyfile,
    }
    if kafka.security_protocol == "PLAINTEXT":
        return {}
    return {f"BRIDGE_KAFKA__{k}": str(v) for k, v in values.items() if v is not None}


class BridgeProcess:
    """One ``bridge run`` child process; ``start`` may be called again after ``kill``."""

    def __init__(self, settings: Settings, log_path: Path, role: str = "all") -> None:
        self.settings = settings
        self.log_path = log_path
        self.role = role
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--role", self.role],
                env=settings_env(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        """Return once the webhook receiver answers its health check."""
        url = f"http://127.0.0.1:{self.settings.webhook.port}/healthz"

        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout=60, interval=0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 20 s; nothing if it is not running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the process wrote."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def bridge_processes(settings: list[Settings], tmp_path: Path) -> Iterator[list[BridgeProcess]]:
    """One not-yet-started process per settings; all stopped when the block ends."""
    processes = [
        BridgeProcess(s, tmp_path / f"bridge-{i}.log") for i, s in enumerate(settings, start=1)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
