"""The local Kafka broker for tests: start, stop and crash it through compose/local/kafka.sh.

The broker is a real single-node Apache Kafka (KRaft) on loopback; see docs/kafka-local.md.
Each helper runs the script and raises subprocess.CalledProcessError if it fails; the
script's own output goes to the test's stdout/stderr (pytest shows it for a failing test).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO_ROOT / "compose" / "local" / "kafka.sh"

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BOOTSTRAP = os.environ.get("BRIDGE_KAFKA__BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)

# `up` may resolve jars with Maven and waits up to 90 s for the broker; `down` up to 30 s
# for a controlled shutdown before SIGKILL.
_TIMEOUTS = {"up": 600.0, "down": 120.0, "kill": 60.0, "status": 30.0}


def _script_env() -> dict[str, str]:
    """The environment for kafka.sh: the broker listens where BOOTSTRAP points."""
    env = dict(os.environ)
    first = BOOTSTRAP.split(",", 1)[0].strip()
    host, _, port = first.rpartition(":")
    if "KAFKA_PORT" not in env and host in {"127.0.0.1", "localhost"} and port.isdigit():
        env["KAFKA_PORT"] = port
    return env


def _run(command: str, *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(KAFKA_SH), command],
        cwd=REPO_ROOT,
        env=_script_env(),
        check=check,
        stdin=subprocess.DEVNULL,
        timeout=_TIMEOUTS[command],
    )


def ensure_broker() -> None:
    """Start the broker unless it is already running; returns once it answers Metadata."""
    _run("up")


def start_broker() -> None:
    """Start the broker again, e.g. after kill_broker(); same as ensure_broker()."""
    _run("up")


def stop_broker() -> None:
    """Controlled shutdown (SIGTERM); no error if the broker is not running."""
    _run("down")


def kill_broker() -> None:
    """SIGKILL the broker, as a crash would; start_broker() recovers it with its data."""
    _run("kill")


def broker_ready() -> bool:
    """True if the broker started by kafka.sh is running and answers requests."""
    return _run("status", check=False).returncode == 0


# --- the secure broker: SASL_SSL (SCRAM, PLAIN) and mutual-TLS SSL listeners -------------
# KAFKA_SECURITY=sasl_ssl compose/local/kafka.sh, on ports and a home dir of its own so the
# PLAINTEXT broker of the rest of the suite is untouched.

SECURE_PORT = int(os.environ.get("KAFKA_SECURE_PORT", "9094"))
SECURE_CONTROLLER_PORT = int(os.environ.get("KAFKA_SECURE_CONTROLLER_PORT", SECURE_PORT + 1))
SECURE_SSL_PORT = int(os.environ.get("KAFKA_SECURE_SSL_PORT", SECURE_PORT + 2))
SECURE_HOME = Path(os.environ.get("KAFKA_SECURE_HOME_DIR", REPO_ROOT / ".local" / "kafka-secure"))


def _secure_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {
        "KAFKA_SECURITY": "sasl_ssl",
        "KAFKA_PORT": str(SECURE_PORT),
        "KAFKA_CONTROLLER_PORT": str(SECURE_CONTROLLER_PORT),
        "KAFKA_SSL_PORT": str(SECURE_SSL_PORT),
        "KAFKA_HOME_DIR": str(SECURE_HOME),
    }
    return env


def secure_broker(command: str) -> int:
    """Run ``kafka.sh <command>`` for the secure broker; its exit code (``up`` must succeed)."""
    done = subprocess.run(
        [str(KAFKA_SH), command],
        cwd=REPO_ROOT,
        env=_secure_env(),
        check=command == "up",
        stdin=subprocess.DEVNULL,
        timeout=_TIMEOUTS[command],
    )
    return done.returncode


def secure_client_env() -> dict[str, str]:
    """The BRIDGE_KAFKA__* settings kafka.sh wrote for the SCRAM user ``bridge``."""
    lines = (SECURE_HOME / "client.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)
