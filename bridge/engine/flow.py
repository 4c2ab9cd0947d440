"""A flow as every part of the bridge sees it: its template and every Kafka name it uses.

The engine, the wiring, ``bridge setup`` and the operator commands all build flows here, so
a topic or group name is derived in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import CompanySettings, Settings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.topics import dead_letter_topic, retry_topic, versions_topic
from bridge.errors import ConfigError
from bridge.mapping.loader import load_templates
from bridge.mapping.template import Template


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow: template, source entity, its change topic, the flow's own retry,
    dead-letter and versions topics, its consumer group, and the companies (F&O
    ``dataAreaId``) that take part in the sync."""

    template: Template
    entity: SourceEntity
    topic: str
    retry_topic: str
    dead_letter_topic: str
    versions_topic: str
    group: str
    companies: CompanySettings

    @property
    def name(self) -> str:
        """The template's name, which is the flow's name."""
        return self.template.name

    @property
    def dead_letter_replay_group(self) -> str:
        """The consumer group whose committed offsets mark dead letters already replayed."""
        return f"{self.group}.dlq-replay"

    @property
    def consumed_topics(self) -> tuple[str, str]:
        """The topics the flow's engine consumes: the change topic and its retry topic."""
        return (self.topic, self.retry_topic)


def build_flow(settings: Settings, template: Template) -> Flow:
    """The flow of ``template`` under ``settings``' topic prefix and group prefix."""
    prefix = settings.kafka.topic_prefix
    entity = source_entity(template.source.system, template.source.entity)
    return Flow(
        template=template,
        entity=entity,
        topic=entity.topic(prefix),
        retry_topic=retry_topic(prefix, template.name),
        dead_letter_topic=dead_letter_topic(prefix, template.name),
        versions_topic=versions_topic(prefix, template.name),
        group=f"{settings.flows.consumer_group_prefix}.{template.name}",
        companies=settings.companies,
    )


def all_templates(settings: Settings) -> dict[str, Template]:
    """Every template, shipped or the user's, with the user's overrides applied."""
    return load_templates(settings.flows.templates_file)


def resolve_flow(settings: Settings, name: str) -> Flow:
    """The flow called ``name`` (enabled or not).

    Raises :class:`ConfigError` for an unknown name, listing the known ones.
    """
    templates = all_templates(settings)
    template = templates.get(name)
    if template is None:
        raise ConfigError(f"unknown flow {name!r}; known: {', '.join(sorted(templates))}")
    return build_flow(settings, template)


def enabled_flows(settings: Settings) -> list[Flow]:
    """The flows this deployment runs: the enabled templates plus the line flows their
    headers cascade to (a header publishes its lines' snapshots to the line flow, so the
    line flow must run wherever its header flow does)."""
    templates = all_templates(settings)
    wanted = settings.flows.enabled if settings.flows.enabled is not None else list(templates)
    unknown = sorted(set(wanted) - set(templates))
    if unknown:
        raise ConfigError(f"unknown flows {unknown}; known: {sorted(templates)}")
    chosen = {name: templates[name] for name in wanted if templates[name].enabled}
    pending = [child.flow for t in chosen.values() for child in t.children]
    while pending:
        name = pending.pop()
        if name not in chosen:
            chosen[name] = templates[name]
            pending.extend(child.flow for child in templates[name].children)
    return [build_flow(settings, template) for template in chosen.values()]


def captured_entities(flows: list[Flow]) -> list[SourceEntity]:
    """The source entities the flows read, in a stable order."""
    return sorted({flow.entity for flow in flows}, key=lambda e: (e.system, e.name))
