"""A flow as the operator commands see it: its template and every Kafka name it uses."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import CompanySettings, Settings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.errors import ConfigError
from bridge.kafka.topics import dead_letter_topic
from bridge.mapping.loader import load_templates
from bridge.mapping.template import Template


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow: template, source entity, source topic, consumer group, dead-letter topic,
    and the companies (F&O ``dataAreaId``) that take part in the sync."""

    template: Template
    entity: SourceEntity
    topic: str
    group: str
    dead_letter_topic: str
    companies: CompanySettings

    @property
    def name(self) -> str:
        """The template's name, which is the flow's name."""
        return self.template.name

    @property
    def dead_letter_replay_group(self) -> str:
        """The consumer group whose committed offsets mark dead letters already replayed."""
        return f"{self.group}.dlq-replay"


def resolve_flow(settings: Settings, name: str) -> Flow:
    """The flow called ``name`` (enabled or not), with the user's template overrides.

    Raises :class:`ConfigError` for an unknown name, listing the known ones.
    """
    templates = load_templates(settings.flows.templates_file)
    template = templates.get(name)
    if template is None:
        raise ConfigError(f"unknown flow {name!r}; known: {', '.join(sorted(templates))}")
    entity = source_entity(template.source.system, template.source.entity)
    return Flow(
        template=template,
        entity=entity,
        topic=entity.topic(settings.kafka.topic_prefix),
        group=f"{settings.flows.consumer_group_prefix}.{template.name}",
        dead_letter_topic=dead_letter_topic(settings.kafka, template.name),
        companies=settings.companies,
    )
