"""Secure by default (bridge/security.py and ``bridge run``), secrets from files, Kafka
security options, and the receiver's own HTTPS over real TLS with a CA the test creates."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from bridge.config import (
    AdminSettings,
    FnoSettings,
    KafkaSettings,
    SalesSettings,
    SecuritySettings,
    Settings,
    WebhookSettings,
)
from bridge.errors import ConfigError
from bridge.kafka.clients import connection_options
from bridge.security import CHECKS, SecurityCheck, enforce, is_loopback_host, problems
from bridge.sources.receiver import DATAVERSE_PATH, WebhookReceiver
from bridge.tls import client_context
from tests.support.tls import TestCA
from tests.unit.fakes import MemoryPublisher, StaticReader
from tests.unit.notifications import notification

REAL_SECRETS = {
    "sales": SalesSettings(
        base_url="https://org.crm4.dynamics.com",
        authority="https://login.microsoftonline.com",
        client_id="3f2c-app",
        client_secret=SecretStr("entra-secret"),
    ),
    "fno": FnoSettings(
        base_url="https://env.operations.eu.dynamics.com",
        authority="https://login.microsoftonline.com",
        client_id="3f2c-app",
        client_secret=SecretStr("entra-secret"),
    ),
    "webhook": WebhookSettings(host="0.0.0.0", port=443, key=SecretStr("long-random-key")),
}


def settings(**sections: Any) -> Settings:
    return Settings(**sections)


def deployed(**changes: Any) -> Settings:
    """A deployment with real secrets everywhere, then ``changes`` section by section."""
    return Settings(**{**REAL_SECRETS, **changes})


# --- secure by default -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("10.0.0.5", False),
        ("bridge.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("case", "make", "role", "refused"),
    [
        ("all local defaults", lambda: settings(), "all", None),
        (
            "receiver on all interfaces, default key",
            lambda: settings(webhook=WebhookSettings(host="0.0.0.0")),
            "ingest",
            "webhook-default-key",
        ),
        (
            "receiver on all interfaces, apply role (no receiver), local targets",
            lambda: settings(webhook=WebhookSettings(host="0.0.0.0")),
            "apply",
            None,
        ),
        (
            "receiver on loopback behind a proxy, remote Kafka, default key",
            lambda: deployed(
                webhook=WebhookSettings(port=8090),
                kafka=KafkaSettings(bootstrap_servers="kafka-1.corp:9093"),
            ),
            "all",
            "webhook-default-key",
        ),
        (
            "remote Dataverse with the default secret",
            lambda: deployed(sales=SalesSettings(base_url="https://org.crm.dynamics.com")),
            "apply",
            "default-client-credentials",
        ),
        (
            "remote F&O with the default client id",
            lambda: deployed(
                fno=FnoSettings(
                    base_url="https://env.operations.dynamics.com",
                    client_secret=SecretStr("real"),
                )
            ),
            "apply",
            "default-client-credentials",
        ),
        (
            "remote F&O over plain http",
            lambda: deployed(
                fno=REAL_SECRETS["fno"].model_copy(update={"base_url": "http://env.example"})
            ),
            "apply",
            "plain-http-to-remote",
        ),
        ("a real deployment", lambda: deployed(), "all", None),
        (
            "certificate instead of the default secret",
            lambda: deployed(
                sales=REAL_SECRETS["sales"].model_copy(
                    update={
                        "client_secret": SecretStr("bridge-local-secret"),
                        "client_certificate_file": Path("/run/secrets/app.pem"),
                    }
                )
            ),
            "all",
            None,
        ),
    ],
)
def test_checks(case: str, make: Any, role: str, refused: str | None) -> None:
    names = [name for name, _ in problems(make(), role)]
    assert (names[0] if names else None) == refused, case


def test_enforce_names_the_first_problem_in_one_line() -> None:
    with pytest.raises(ConfigError) as refused:
        enforce(settings(webhook=WebhookSettings(host="0.0.0.0")), "all")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("refusing to start [webhook-default-key]")
    assert "local-webhook-key" not in message  # names the setting, not the secret


def test_another_component_adds_its_own_check() -> None:
    admin_rule = SecurityCheck("admin-token", lambda s, role: "admin API without a token")
    assert problems(settings(), "all", [*CHECKS, admin_rule]) == [
        ("admin-token", "admin API without a token")
    ]


def test_bridge_run_refuses_with_exit_2_and_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= {"BRIDGE_WEBHOOK__HOST": "0.0.0.0", "BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: refusing to start [webhook-default-key]")


# --- secrets from files, never shown ------------------------------------------------------


def test_secrets_come_from_files_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "BRIDGE_SALES__CLIENT_SECRET": "sales-s3cret-from-file",
        "BRIDGE_KAFKA__SASL_PASSWORD": "kafka-s3cret-from-file",
        "BRIDGE_WEBHOOK__KEY": "webhook-s3cret-from-file",
    }
    for variable, value in values.items():
        path = tmp_path / variable.lower()
        path.write_text(value + "\n")
        monkeypatch.setenv(f"{variable}_FILE", str(path))
    monkeypatch.setenv("BRIDGE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BRIDGE_KAFKA__SASL_USERNAME", "bridge")
    monkeypatch.setenv("BRIDGE_FLOWS__TEMPLATES_FILE", "/etc/bridge/templates.yaml")
    loaded = Settings()
    assert loaded.sales.client_secret.get_secret_value() == "sales-s3cret-from-file"
    assert loaded.kafka.sasl_password is not None
    assert loaded.kafka.sasl_password.get_secret_value() == "kafka-s3cret-from-file"
    assert loaded.webhook.key.get_secret_value() == "webhook-s3cret-from-file"
    assert loaded.flows.templates_file == Path("/etc/bridge/templates.yaml")  # not a secret
    with capture_logs() as logs:
        structlog.get_logger("t").info("settings_loaded", settings=loaded, kafka=loaded.kafka)
    shown = [repr(loaded), str(loaded), json.dumps(loaded.model_dump(mode="json")), repr(logs)]
    for value in values.values():
        assert not any(value in text for text in shown)


def test_a_secret_and_its_file_twin_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("from-file")
    monkeypatch.setenv("BRIDGE_WEBHOOK__KEY", "from-env")
    monkeypatch.setenv("BRIDGE_WEBHOOK__KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ConfigError, match="BRIDGE_WEBHOOK__KEY and BRIDGE_WEBHOOK__KEY_FILE"):
        Settings()


def test_an_unreadable_secret_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_FNO__CLIENT_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ConfigError, match=r"BRIDGE_FNO__CLIENT_SECRET_FILE: cannot read"):
        Settings()


# --- Kafka security options ---------------------------------------------------------------


def test_plaintext_passes_no_security() -> None:
    assert connection_options(KafkaSettings(bootstrap_servers="k:9092")) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_passes_mechanism_credentials_and_a_verifying_context(
    tmp_path: Path, mechanism: Any
) -> None:
    ca = TestCA(tmp_path)
    options = connection_options(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_username="bridge",
            sasl_password=SecretStr("pw"),
            ssl_cafile=ca.cert,
        )
    )
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "bridge",
        "sasl_plain_password": "pw",
    }
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "p2c test CA"),),)]


def test_ssl_with_a_client_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    client = ca.issue("bridge")
    options = connection_options(
        KafkaSettings(
            security_protocol="SSL",
            ssl_cafile=ca.cert,
            ssl_certfile=client.cert,
            ssl_keyfile=client.key,
        )
    )
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_a_broken_client_key_is_a_config_error(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    client = ca.issue("bridge")
    settings = KafkaSettings(security_protocol="SSL", ssl_certfile=client.cert, ssl_keyfile=ca.cert)
    with pytest.raises(ConfigError, match="certificate"):
        connection_options(settings)


@pytest.mark.parametrize(
    "fields",
    [
        {"security_protocol": "SASL_SSL"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
        {"ssl_certfile": "/x.pem"},
    ],
)
def test_incomplete_kafka_security_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(**fields)


# --- the receiver over HTTPS --------------------------------------------------------------


async def test_the_receiver_serves_https_with_its_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.issue("receiver", server=True)
    webhook = WebhookSettings(
        port=0, key=SecretStr("k"), tls_certfile=server.cert, tls_keyfile=server.key
    )
    assert webhook.url.startswith("https://")
    publisher = MemoryPublisher()
    receiver = WebhookReceiver(webhook, publisher, StaticReader(None))  # type: ignore[arg-type]
    async with receiver:
        url = f"https://127.0.0.1:{receiver.port}{DATAVERSE_PATH}?code=k"
        async with httpx.AsyncClient(verify=client_context(ca.cert)) as trusting:
            answer = await trusting.post(url, json=notification())
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.post(url, json=notification())
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(url.replace("https://", "http://"), json=notification())
    assert answer.status_code == 200
    assert [event.event_id for event in publisher.events] == [answer.json()["event_id"]]


def test_the_admin_api_beyond_loopback_without_a_token_is_refused_by_bridge_run() -> None:
    """The admin rule is one of the checks ``bridge run`` makes, even on a local stack."""
    exposed = settings(admin=AdminSettings(host="0.0.0.0"))
    with pytest.raises(ConfigError, match=r"\[admin-without-token\].*BRIDGE_ADMIN__TOKEN"):
        enforce(exposed, "all")
    enforce(settings(admin=AdminSettings(host="0.0.0.0", token=SecretStr("t0k"))), "all")
    enforce(settings(admin=AdminSettings(host="127.0.0.1")), "all")


def test_a_check_is_waived_only_by_its_name_and_the_waiver_is_logged() -> None:
    exposed = {"webhook": WebhookSettings(host="0.0.0.0")}
    with pytest.raises(ConfigError, match="webhook-default-key"):
        enforce(settings(**exposed), "ingest")
    waived = settings(**exposed, security=SecuritySettings(waive=["webhook-default-key"]))
    with pytest.raises(ConfigError, match="default-client-credentials"):
        enforce(waived, "ingest")  # waiving one check leaves the others on
    all_waived = settings(
        **exposed,
        security=SecuritySettings(waive=["webhook-default-key", "default-client-credentials"]),
    )
    with capture_logs() as logs:
        enforce(all_waived, "ingest")
    assert {entry["check"] for entry in logs if entry["event"] == "security_check_waived"} == {
        "webhook-default-key",
        "default-client-credentials",
    }
    with pytest.raises(ConfigError, match="unknown checks \\['webhook-key'\\]"):
        enforce(settings(security=SecuritySettings(waive=["webhook-key"])), "all")
