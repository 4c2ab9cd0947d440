"""compose/docker-compose.yml, checked without a Docker engine: its services, roles, ports
and every BRIDGE_* variable against bridge/config.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bridge.cli import Role
from bridge.config import Settings
from bridge.security import enforce

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
BRIDGE_SERVICES = ("bridge-setup", "bridge-ingest", "bridge-apply")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = document["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's variables, ``${NAME:?...}`` given a value as an operator would."""
    return {
        name: re.sub(r"\$\{[^}]+\}", "operator-chosen-token", str(value))
        for name, value in service.get("environment", {}).items()
    }


def settings_field(name: str) -> bool:
    """Whether ``BRIDGE_SECTION__FIELD`` names a field of :class:`Settings`."""
    section, _, field = name.removeprefix("BRIDGE_").lower().partition("__")
    model = Settings.model_fields.get(section)
    if model is None:
        return False
    if not field:
        return True
    annotation = model.annotation
    return (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and (field in annotation.model_fields)
    )


def role_of(service: dict[str, Any]) -> Role:
    """The ``--role`` a bridge service runs with (``all`` when it names none)."""
    command = [str(part) for part in service.get("command", [])]
    return Role(command[command.index("--role") + 1]) if "--role" in command else Role.ALL


def host_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port → host port of each published port."""
    ports = {}
    for mapping in service.get("ports", []):
        *_, host, container = str(mapping).split(":")
        ports[int(container)] = int(host)
    return ports


def test_the_services_of_a_local_trial(services: dict[str, Any]) -> None:
    assert set(services) == {"kafka", "emulators", *BRIDGE_SERVICES}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert not any("ZOOKEEPER" in name for name in kafka["environment"])
    for name in ("emulators", *BRIDGE_SERVICES):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()


def test_ingest_and_apply_are_separate_roles_and_apply_scales(services: dict[str, Any]) -> None:
    roles = {}
    for name in ("bridge-ingest", "bridge-apply"):
        command = services[name]["command"]
        assert command[:2] == ["bridge", "run"]
        roles[name] = Role(command[command.index("--role") + 1])
    assert roles == {"bridge-ingest": Role.INGEST, "bridge-apply": Role.APPLY}
    apply = services["bridge-apply"]
    assert "ports" not in apply  # a fixed host port would stop `--scale bridge-apply=N`
    assert apply["deploy"]["replicas"] >= 2
    for name in ("bridge-ingest", "bridge-apply"):
        assert services[name]["depends_on"]["bridge-setup"] == {
            "condition": "service_completed_successfully"
        }


@pytest.mark.parametrize("service", BRIDGE_SERVICES)
def test_every_variable_is_a_setting_and_the_settings_load(
    services: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(services[service])
    unknown = [name for name in env if name.startswith("BRIDGE_") and not settings_field(name)]
    assert unknown == []
    for name in list(__import__("os").environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    # bridge run's own checks pass: the admin API beyond loopback has its token, and the
    # trial waives by name only what an emulator stack on a private network needs
    enforce(settings, role_of(services[service]).value)
    assert settings.admin.token is not None
    assert "admin-without-token" not in settings.security.waive


def test_ports_and_addresses_agree(services: dict[str, Any]) -> None:
    ingest = services["bridge-ingest"]
    env = environment(ingest)
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": env["BRIDGE_KAFKA__BOOTSTRAP_SERVERS"]},
            "webhook": {"host": env["BRIDGE_WEBHOOK__HOST"]},
            "admin": {"port": int(env["BRIDGE_ADMIN__PORT"])},
        }
    )
    published = host_ports(ingest)
    assert settings.webhook.port in published and settings.admin.port in published
    assert env["BRIDGE_WEBHOOK__PUBLIC_URL"] == f"http://bridge-ingest:{settings.webhook.port}"
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"://{settings.kafka.bootstrap_servers}" in listeners
    emulator = services["emulators"]["command"]
    sales_port = emulator[emulator.index("--sales-port") + 1]
    fno_port = emulator[emulator.index("--fno-port") + 1]
    assert env["BRIDGE_SALES__BASE_URL"] == f"http://emulators:{sales_port}"
    assert env["BRIDGE_FNO__BASE_URL"] == f"http://emulators:{fno_port}"
    probe = " ".join(ingest["healthcheck"]["test"])
    assert f":{settings.admin.port}/readyz" in probe
