"""``bridge setup``: create the topics and register the webhooks on the source systems."""

from __future__ import annotations

from bridge.app import captured_entities, enabled_templates
from bridge.config import Settings
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.topics import ensure_topics
from bridge.sources.registration import register_dataverse_webhooks


async def run_setup(settings: Settings) -> None:
    """Idempotent: safe to run again after a change of settings."""
    templates = enabled_templates(settings)
    await ensure_topics(settings.kafka, [t.name for t in templates])
    sales_entities = [e for e in captured_entities(templates) if e.system == "SALES"]
    policy = RetryPolicy.from_settings(settings.retry)
    async with ApiClient(settings.sales, settings.sales.api_path, policy) as sales:
        await register_dataverse_webhooks(sales, settings.webhook, sales_entities)
