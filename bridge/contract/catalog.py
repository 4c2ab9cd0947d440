"""The source entities the bridge captures: where each lives, how it is keyed, its topic.

This is data. Adding a source entity means adding a row here and a schema file in
``schemas/`` named ``<system>.<topic name>.avsc``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.contract.envelope import System
from bridge.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SourceEntity:
    """One capturable entity of one system.

    ``name`` is the topic's last segment and the schema file's stem; ``entity`` is the
    system's own name for it (Dataverse logical name, F&O entity set).
    """

    system: System
    name: str
    entity: str
    entity_set: str
    id_attribute: str | None
    key_attributes: tuple[str, ...]
    business_key: str

    @property
    def schema_file(self) -> str:
        """The file in ``schemas/`` holding this entity's envelope schema."""
        return f"{self.system.lower()}.{self.name}.avsc"

    def topic(self, prefix: str) -> str:
        """The topic of this entity's change events."""
        return f"{prefix}.{self.system.lower()}.{self.name}"


SOURCE_ENTITIES: tuple[SourceEntity, ...] = (
    SourceEntity(
        system=System.SALES,
        name="account",
        entity="account",
        entity_set="accounts",
        id_attribute="accountid",
        key_attributes=("accountid",),
        business_key="accountnumber",
    ),
)


def source_entity(system: System, entity: str) -> SourceEntity:
    """Find a source entity by system and its system-side name (case-insensitive)."""
    wanted = entity.lower()
    for candidate in SOURCE_ENTITIES:
        if candidate.system is system and wanted in (
            candidate.entity.lower(),
            candidate.name,
            candidate.entity_set.lower(),
        ):
            return candidate
    raise ConfigError(f"unknown {system.lower()} entity {entity!r}")


def find_source_entity(system: System, entity: str) -> SourceEntity | None:
    """Like :func:`source_entity` but returns ``None`` for an entity the bridge does not know."""
    try:
        return source_entity(system, entity)
    except ConfigError:
        return None
