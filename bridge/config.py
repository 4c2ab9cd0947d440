"""Settings, read once from the environment (prefix ``BRIDGE_``, nested delimiter ``__``).

Every default points at the local stack (``make kafka-up`` and ``bridge emulate``), so
``bridge run`` with no settings at all works on a developer machine. Secrets are
``SecretStr``: they print as ``**********`` and are only unwrapped where a request is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.contract.schemas import shipped_schemas_dir


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

    def registrations(self) -> list[ApiSettings]:
        """These settings once per registration: the main one first, then each extra one
        with its own client id and secret."""
        extra = [
            self.model_copy(update={"client_id": r.client_id, "client_secret": r.client_secret})
            for r in self.extra_registrations
        ]
        return [self, *extra]

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


class WebhookSettings(_Section):
    """The receiver that Dataverse webhooks and F&O business events post to."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    public_url: str | None = None
    key: SecretStr = SecretStr("local-webhook-key")
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)

    @property
    def url(self) -> str:
        """The base URL the source systems are told to call."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


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
    schemas_dir: Path = SCHEMAS_DIR

    @model_validator(mode="after")
    def _budget_within_poll_interval(self) -> Settings:
        # an engine fetches again only after its batch; a batch that may outlive the poll
        # interval would get the process evicted from its groups while it still writes
        if self.flows.apply_budget_seconds * 1000 >= self.kafka.max_poll_interval_ms:
            raise ValueError(
                "flows.apply_budget_seconds must be shorter than kafka.max_poll_interval_ms"
            )
        return self
