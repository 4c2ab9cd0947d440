"""Settings come from BRIDGE_* variables with __ nesting; defaults match the local stack."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.config import Settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.sales.base_url == "http://127.0.0.1:8081"
    assert settings.fno.base_url == "http://127.0.0.1:8082"
    assert settings.sales.token_url == "http://127.0.0.1:8081/emulated-tenant/oauth2/v2.0/token"
    assert settings.fno.token_scope == "http://127.0.0.1:8082/.default"
    assert settings.webhook.port == 8090
    assert settings.flows.enabled is None


def test_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_KAFKA__BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("BRIDGE_SALES__BASE_URL", "https://org.crm.dynamics.com/")
    monkeypatch.setenv("BRIDGE_SALES__AUTHORITY", "https://login.microsoftonline.com")
    monkeypatch.setenv("BRIDGE_SALES__TENANT", "contoso.onmicrosoft.com")
    monkeypatch.setenv("BRIDGE_FNO__CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("BRIDGE_WEBHOOK__PORT", "9000")
    monkeypatch.setenv("BRIDGE_FLOWS__ENABLED", '["accounts"]')
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "broker:9093"
    assert settings.sales.base_url == "https://org.crm.dynamics.com"
    assert settings.sales.token_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert settings.sales.token_scope == "https://org.crm.dynamics.com/.default"
    assert settings.fno.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
    assert settings.webhook.port == 9000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_WEBHOOK__PORT", "not-a-port"),
        ("BRIDGE_WEBHOOK__PORT", "70000"),
        ("BRIDGE_KAFKA__PARTITIONS", "0"),
        ("BRIDGE_LOG__LEVEL", "LOUD"),
        ("BRIDGE_KAFKA__NO_SUCH_SETTING", "1"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_batch_budget_longer_than_the_poll_interval_is_refused() -> None:
    from bridge.config import FlowSettings, KafkaSettings, Settings

    with pytest.raises(ValueError, match="apply_budget_seconds must be shorter"):
        Settings(
            kafka=KafkaSettings(max_poll_interval_ms=30_000),
            flows=FlowSettings(apply_budget_seconds=30),
        )
