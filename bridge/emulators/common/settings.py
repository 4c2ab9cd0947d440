"""Settings of the emulators, read once from ``BRIDGE_EMULATOR__*`` environment variables.

Defaults match the bridge's own defaults, so ``bridge emulate`` and ``bridge run`` work
together with no configuration. Secrets are ``SecretStr`` and are only unwrapped to compare
them in constant time (see :mod:`bridge.emulators.common.principals`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_WEEK = 7 * 24 * 3600.0
_TEN_DAYS = 10 * 24 * 3600.0


class EmulatorSettings(BaseSettings):
    """Everything both emulators need: identities, companies, limits and delivery timing."""

    model_config = SettingsConfigDict(env_prefix="BRIDGE_EMULATOR__", frozen=True, extra="ignore")

    client_id: str = "bridge-local"
    client_secret: SecretStr = SecretStr("bridge-local-secret")
    user_client_id: str = "p2c-user"
    user_client_secret: SecretStr = SecretStr("p2c-user-secret")
    tenant: str = "emulated-tenant"
    organization_name: str = "emulated"
    default_company: str = "usmf"
    companies: tuple[str, ...] = ("usmf", "usrt", "demf")
    accounting_currencies: dict[str, str] = Field(
        default_factory=lambda: {"usmf": "USD", "usrt": "USD", "demf": "EUR"}
    )
    default_accounting_currency: str = "USD"
    change_tracking_retention_seconds: float = Field(default=_WEEK, gt=0)
    fno_change_tracking_retention_seconds: float = Field(default=_TEN_DAYS, gt=0)
    dataverse_max_page_size: int = Field(default=5000, ge=1)
    fno_page_size: int = Field(default=10_000, ge=1)
    fno_modified_datetime_field: str = ""
    token_lifetime_seconds: int = Field(default=3599, ge=1)
    webhook_timeout_seconds: float = Field(default=60.0, gt=0)
    webhook_retry_delay_seconds: float = Field(default=1.0, ge=0)
    webhook_workers: int = Field(default=16, ge=1)
    """Asynchronous webhook deliveries in flight at once. Dataverse runs each as a system job
    "when resources free" (spec A.9) and documents no number: 16 was chosen, since with 4 the
    emulated async service, not the bridge, capped the live path near 370 changes/s
    (docs/measurements.md)."""
    webhook_reorder_window_seconds: float = Field(default=0.0, ge=0)
    webhook_reorder_seed: int | None = None
    fno_event_retries: int = Field(default=3, ge=0)
    fno_event_retry_interval_seconds: float = Field(default=1.0, ge=0)
    limits_enabled: bool = True
    """Enforce service protection (Dataverse A.8, F&O B.3); false = unthrottled runs."""
    limits_time_scale: float = Field(default=1.0, gt=0)
    """Multiplies every limit duration (windows, execution budget, Retry-After)."""
    dataverse_request_limit: int = Field(default=6000, ge=1)
    dataverse_execution_limit_seconds: float = Field(default=1200.0, gt=0)
    dataverse_concurrency_limit: int = Field(default=52, ge=1)
    dataverse_limit_window_seconds: float = Field(default=300.0, gt=0)
    dataverse_dop_hint: int = Field(default=4, ge=1)
    fno_resource_capacity: int = Field(default=1000, ge=1)
    """Operations the emulated F&O web server takes per resource window (a $batch weighs its
    operations) before it answers 429."""
    fno_resource_window_seconds: float = Field(default=1.0, gt=0)
    dataverse_tables_without_bulk: tuple[str, ...] = ()
    """Sales tables whose ``sdkmessagefilters`` lack CreateMultiple/UpdateMultiple."""
    tls_certfile: Path | None = None
    """Serve both emulators over HTTPS with this certificate (PEM, its chain), as the real
    services are only reachable over TLS; MSAL accepts no other authority."""
    tls_keyfile: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("BRIDGE_EMULATOR__TLS_CERTFILE and __TLS_KEYFILE go together")
        return self
