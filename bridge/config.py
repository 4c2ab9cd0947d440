"""Settings, read once from the environment (prefix ``BRIDGE_``, nested delimiter ``__``).

Every default points at the local stack (``make kafka-up`` and ``bridge emulate``), so
``bridge run`` with no settings at all works on a developer machine (and
:mod:`bridge.security` refuses those defaults anywhere else). Secrets are ``SecretStr``: they
print as ``**********`` and are only unwrapped where a request is built. Every secret can
also be read from a file named by ``<its variable>_FILE`` (``BRIDGE_SALES__CLIENT_SECRET_FILE``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.contract.schemas import shipped_schemas_dir
from bridge.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the broker is and how the bridge names and sizes its topics."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "p2c"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    client_id: str = "bridge"
    linger_ms: int = Field(default=5, ge=0)
    """How long the publisher waits to fill a batch: concurrent webhooks share one send,
    and each is still answered only once its own event is acknowledged."""
    max_batch_records: int = Field(default=500, ge=1)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    batch_bytes: int = Field(default=262_144, ge=1_024)
    """The publisher's largest batch per partition (``max_batch_size``)."""

    # Security, passed to every aiokafka client (bridge.kafka.clients.connection_options).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _security_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (a client certificate)")
        return self


class Registration(_Section):
    """One more application registration (client id and secret) of the bridge on an API."""

    client_id: str
    client_secret: SecretStr


class ApiSettings(_Section):
    """A Dynamics API endpoint plus the bridge's own client-credentials identity there."""

    base_url: str
    tenant: str = "emulated-tenant"
    authority: str | None = None
    scope: str | None = None
    client_id: str = "bridge-local"
    client_secret: SecretStr = SecretStr("bridge-local-secret")
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=100, ge=1)
    extra_registrations: list[Registration] = Field(default_factory=list)
    """More app registrations the bridge writes as; requests spread over all of them, so
    the per-user service-protection limits multiply (JSON list of ``client_id`` and
    ``client_secret`` objects in ``BRIDGE_SALES__EXTRA_REGISTRATIONS``)."""
    concurrency_initial: int = Field(default=8, ge=1)
    concurrency_max: int = Field(default=52, ge=1)
    """Ceiling of each registration's adaptive window (Dataverse: 52 concurrent per user)."""
    limits_count_operations: ClassVar[bool] = False
    """Whether the service's throttling weighs a request by the operations it carries (F&O,
    spec B.3) rather than counting each HTTP request once (Dataverse, A.8)."""

    def registrations(self) -> list[ApiSettings]:
        """These settings once per registration: the main one first, then each extra one
        with its own client id and secret."""
        extra = [
            self.model_copy(update={"client_id": r.client_id, "client_secret": r.client_secret})
            for r in self.extra_registrations
        ]
        return [self, *extra]

    # Certificate credentials instead of the secret: a PEM private key (with its certificate,
    # or with client_certificate_thumbprint) or a PFX/PKCS12 file (.pfx, .p12).
    client_certificate_file: Path | None = None
    client_certificate_thumbprint: str | None = None
    client_certificate_password: SecretStr | None = None
    # The CA bundle that verifies the token authority and the API over TLS (default: the
    # system's / certifi's); a private CA, e.g. the local emulators' test CA.
    ca_file: Path | None = None

    @field_validator("base_url", "authority")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def token_url(self) -> str:
        """The OAuth2 v2.0 token endpoint: ``{authority}/{tenant}/oauth2/v2.0/token``."""
        return f"{self.authority or self.base_url}/{self.tenant}/oauth2/v2.0/token"

    @property
    def token_scope(self) -> str:
        """The ``.default`` scope of the resource, derived from the base URL unless set."""
        return self.scope or f"{self.base_url}/.default"


class SalesSettings(ApiSettings):
    """Dataverse (Dynamics 365 Sales). Real service: ``https://<org>.crm.dynamics.com``."""

    base_url: str = "http://127.0.0.1:8081"
    api_path: str = "/api/data/v9.2"


class FnoSettings(ApiSettings):
    """Finance and Operations. Real service: ``https://<env>.operations.dynamics.com``."""

    base_url: str = "http://127.0.0.1:8082"
    api_path: str = "/data"
    default_company: str = "usmf"
    capture: Literal["data-events", "none"] = "data-events"
    limits_count_operations: ClassVar[bool] = True


class WebhookSettings(_Section):
    """The receiver that Dataverse webhooks and F&O business events post to."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    public_url: str | None = None
    key: SecretStr = SecretStr("local-webhook-key")
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # HTTPS served by the receiver itself (Dataverse calls webhooks on ports 80/443 only).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> WebhookSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        return self

    @property
    def url(self) -> str:
        """The base URL the source systems are told to call."""
        scheme = "https" if self.tls_certfile else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")


class PollerSettings(_Section):
    """Dataverse change tracking: the fallback and catch-up path."""

    enabled: bool = True
    interval_seconds: float = Field(default=5.0, gt=0)
    page_size: int = Field(default=500, ge=1, le=5000)


class FnoPollerSettings(_Section):
    """The snapshot-diff poller over F&O OData: the catch-up path for an environment
    without Power Platform integration (no data events, no virtual tables)."""

    enabled: bool = False
    interval_seconds: float = Field(default=300.0, gt=0)
    page_size: int = Field(default=1000, ge=1, le=10_000)


class LeaderSettings(_Section):
    """The election of the one process per deployment that runs the change-tracking
    pollers (and, with ``register_on_start``, the webhook registrations)."""

    session_timeout_ms: int = Field(default=6_000, ge=6_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    rebalance_timeout_ms: int = Field(default=10_000, ge=1_000)
    register_on_start: bool = False


class RetrySettings(_Section):
    """The one retry policy for calls to the Dynamics APIs."""

    max_attempts: int = Field(default=6, ge=1)
    initial_backoff_seconds: float = Field(default=0.2, gt=0)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    max_retry_after_seconds: float = Field(default=120.0, gt=0)


class FlowSettings(_Section):
    """Which flows run and how each consumer batches. ``enabled`` ``None`` = every shipped
    template whose ``enabled`` is true."""

    enabled: list[str] | None = None
    templates_file: Path | None = None
    consumer_group_prefix: str = "bridge"
    apply_concurrency: int = Field(default=64, ge=1)
    blocked_retry_seconds: float = Field(default=5.0, gt=0)
    apply_budget_seconds: float = Field(default=60.0, gt=0)
    dependency_retry_attempts: int = Field(default=8, ge=0)
    dependency_retry_initial_seconds: float = Field(default=1.0, gt=0)
    dependency_retry_max_seconds: float = Field(default=60.0, gt=0)


class BulkSettings(_Section):
    """How the sinks gather the reads and writes in flight at one moment into few calls."""

    window_seconds: float = Field(default=0.005, ge=0)
    """How long the first request of a call waits for others to join it."""
    max_reads: int = Field(default=50, ge=1)
    """Keys per ``$filter`` query (the URL must stay short)."""
    max_writes: int = Field(default=200, ge=1)
    """Change sets per ``$batch`` (Dataverse allows 1,000 operations)."""
    bulk_messages: bool = True
    """Send Dataverse creates and updates that qualify as CreateMultiple/UpdateMultiple."""
    max_bulk_items: int = Field(default=200, ge=1)
    """Records per Dataverse bulk message (Microsoft suggests 100 to 1,000 on standard tables)."""


class CompanySettings(_Section):
    """F&O legal entities (``dataAreaId``) and the Sales business units they map to.

    ``map`` goes from company to business unit (GUID or name; ``*`` = every business unit).
    Sales records go to the company whose business unit owns them; F&O records of a company
    that is not in the map are skipped with a log line.
    """

    map: dict[str, str] = Field(default_factory=lambda: {"usmf": "*"})

    def for_business_unit(self, business_unit: str | None) -> str | None:
        """The company of a Sales record owned by ``business_unit``."""
        wanted = (business_unit or "").lower()
        exact = [c for c, bu in self.map.items() if bu.lower() == wanted and wanted]
        return exact[0] if exact else next((c for c, bu in self.map.items() if bu == "*"), None)

    def is_mapped(self, company: str | None) -> bool:
        """Whether F&O records of ``company`` take part in the sync."""
        return bool(company) and (company or "").lower() in {c.lower() for c in self.map}


class LogSettings(_Section):
    """Logging: JSON lines when not on a terminal, readable lines on one."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class SecuritySettings(_Section):
    """Waivers of ``bridge run``'s secure-by-default checks (:mod:`bridge.security`)."""

    waive: list[str] = Field(default_factory=list)
    """Names of checks not to enforce (JSON list in ``BRIDGE_SECURITY__WAIVE``), e.g. for a
    trial stack of emulators on a private network; each waived problem is logged at start."""


class AdminSettings(_Section):
    """The status page, admin API, ``/metrics``, ``/healthz`` and ``/readyz`` that every
    ``bridge run`` serves. Bound beyond loopback, it needs a ``token`` (a bearer token the
    page and ``bridge status`` send); ``bridge run`` refuses to start without one."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=0, le=65535)
    token: SecretStr | None = None
    url: str | None = None
    change_tracking_expiry_days: float = Field(default=7.0, gt=0)
    lag_interval_seconds: float = Field(default=5.0, gt=0)

    @property
    def base_url(self) -> str:
        """Where ``bridge status`` reaches the admin API."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return (self.url or f"http://{host}:{self.port}").rstrip("/")


SCHEMAS_DIR = shipped_schemas_dir()


class Settings(BaseSettings):
    """All settings of one bridge process."""

    model_config = SettingsConfigDict(
        env_prefix="BRIDGE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    sales: SalesSettings = SalesSettings()
    fno: FnoSettings = FnoSettings()
    webhook: WebhookSettings = WebhookSettings()
    poller: PollerSettings = PollerSettings()
    fno_poller: FnoPollerSettings = FnoPollerSettings()
    leader: LeaderSettings = LeaderSettings()
    retry: RetrySettings = RetrySettings()
    flows: FlowSettings = FlowSettings()
    companies: CompanySettings = CompanySettings()
    bulk: BulkSettings = BulkSettings()
    log: LogSettings = LogSettings()
    admin: AdminSettings = AdminSettings()
    security: SecuritySettings = SecuritySettings()
    schemas_dir: Path = SCHEMAS_DIR

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables, with secrets also read from ``*_FILE`` variables."""
        return (
            init_settings,
            SecretFileSource(settings_cls, env_settings),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _budget_within_poll_interval(self) -> Settings:
        # an engine fetches again only after its batch; a batch that may outlive the poll
        # interval would get the process evicted from its groups while it still writes
        if self.flows.apply_budget_seconds * 1000 >= self.kafka.max_poll_interval_ms:
            raise ValueError(
                "flows.apply_budget_seconds must be shorter than kafka.max_poll_interval_ms"
            )
        return self


class SecretFileSource(PydanticBaseSettingsSource):
    """The environment, plus secrets from files: ``BRIDGE_<SECTION>__<FIELD>_FILE=/path``
    sets the secret field ``<section>.<field>`` to the file's content (one trailing newline
    removed), as container platforms mount secrets. Only ``SecretStr`` fields are read this
    way, so a setting that is itself a path (``flows.templates_file``) keeps its meaning; a
    variable and its ``_FILE`` twin together are refused, as is a file that cannot be read
    (:class:`ConfigError`, naming the variable, never the content)."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        values = dict(self._env())
        for section, name in _secret_fields():
            variable = f"BRIDGE_{section}__{name}".upper()
            nested = values.get(section)
            if isinstance(nested, dict):
                nested.pop(f"{name}_file", None)
            secret = _read_secret_file(variable)
            if secret is not None:
                values[section] = {**(nested if isinstance(nested, dict) else {}), name: secret}
        return values


def _secret_fields() -> list[tuple[str, str]]:
    """(section, field) of every ``SecretStr`` setting."""
    found = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, field in model.model_fields.items():
            if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ())):
                found.append((section, name))
    return found


def _read_secret_file(variable: str) -> str | None:
    path = os.environ.get(f"{variable}_FILE")
    if not path:
        return None
    if variable in os.environ:
        raise ConfigError(f"{variable} and {variable}_FILE are both set; keep one")
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from None
    return content.removesuffix("\n").removesuffix("\r")
