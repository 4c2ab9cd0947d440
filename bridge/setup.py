"""``bridge setup``: create the topics and register push notifications on both systems."""

from __future__ import annotations

from bridge.app import captured_entities
from bridge.config import Settings
from bridge.contract.envelope import System
from bridge.engine.flow import enabled_flows
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.topics import ensure_topics
from bridge.sources.registration import register_dataverse_webhooks, register_fno_business_events


async def run_setup(settings: Settings) -> None:
    """Idempotent: safe to run again after a change of settings."""
    flows = enabled_flows(settings)
    await ensure_topics(settings.kafka, flows)
    entities = captured_entities(flows)
    policy = RetryPolicy.from_settings(settings.retry)
    sales_entities = [e for e in entities if e.system is System.SALES]
    fno_entities = [e for e in entities if e.system is System.FNO]
    if sales_entities:
        async with ApiClient(settings.sales, settings.sales.api_path, policy) as sales:
            await register_dataverse_webhooks(sales, settings.webhook, sales_entities)
    if fno_entities:
        async with ApiClient(settings.fno, settings.fno.api_path, policy) as fno:
            await register_fno_business_events(fno, settings.webhook, fno_entities)
