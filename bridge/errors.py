"""The bridge's one error tree, grouped by what the caller must do.

::

    BridgeError
    ├── ConfigError                 fatal at start-up: fix the settings or template file
    ├── ContractError               a message or notification that does not fit the contract
    │   ├── UndecodableMessage      bytes on a topic the codec cannot read (poison: dead-letter)
    │   └── InvalidNotification     a webhook body that is not a valid notification (HTTP 400)
    │       └── NotCaptured         a valid notification about an entity not captured (422)
    ├── EventRejected               this event cannot be applied; dead-letter it, go on
    │   ├── MappingError            the template cannot map the event (missing key, bad value)
    │   ├── TargetRejected          the target answered 4xx to a well-formed request
    │   ├── DependencyMissing       a prerequisite record is absent (retried, bounded)
    │   └── ConflictLost            the other side owns the record now (deterministic rule)
    ├── TransientError              try again later with back-off; nothing is lost
    │   ├── TargetUnavailable       5xx, timeout, connection error
    │   │   └── Throttled           429, carries the server's Retry-After
    │   └── PublishFailed           Kafka did not acknowledge
    └── FlowBlocked                 the whole flow must pause (401/403): no event can succeed
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """Settings or a template are invalid; the process cannot start."""


class ContractError(BridgeError):
    """Input that does not fit the event contract."""


class UndecodableMessage(ContractError):
    """A Kafka message whose bytes are not a known single-object Avro datum."""


class InvalidNotification(ContractError):
    """A webhook or business-event body that is not a valid notification."""


class NotCaptured(InvalidNotification):
    """A well-formed notification about an entity or message the bridge does not capture."""


class EventRejected(BridgeError):
    """The event can never be applied as it is; it goes to the dead-letter topic."""

    stage = "apply"


class MappingError(EventRejected):
    """The template cannot map the event."""

    stage = "map"


class TargetRejected(EventRejected):
    """The target system rejected a well-formed request (4xx other than 401/403/404/412/429)."""

    def __init__(self, message: str, *, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DependencyMissing(EventRejected):
    """A record this event needs (a header, a customer, a product) does not exist yet."""

    stage = "dependency"


class ConflictLost(EventRejected):
    """The target record is owned by the other system now; this version loses and is kept
    on the dead-letter topic (stage ``conflict``) for inspection. ``winner`` is the target
    record as read, so the winning version can be sent back to the losing side."""

    stage = "conflict"

    def __init__(self, message: str, *, winner: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.winner = winner


class TransientError(BridgeError):
    """A failure that may pass; retry with back-off."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TargetUnavailable(TransientError):
    """5xx, timeout or connection failure talking to a Dynamics API."""


class Throttled(TargetUnavailable):
    """HTTP 429; ``retry_after`` is the server's Retry-After in seconds."""


class PublishFailed(TransientError):
    """Kafka did not acknowledge a publish."""


class FlowBlocked(BridgeError):
    """Authentication or authorisation failed (401/403): pause the flow, keep its offsets."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotFound(BridgeError):
    """The addressed record does not exist (404); sinks turn this into a create or a no-op."""


class PreconditionFailed(BridgeError):
    """HTTP 412: the ETag is stale or a create-only write found the record."""


class AlreadyExists(BridgeError):
    """A create found the key taken (F&O answers this with a 500 and a known message)."""
