"""``bridge setup``: create the topics and register push notifications on both systems."""

from __future__ import annotations

from bridge.config import Settings
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import System
from bridge.dataverse.registration import register_dataverse_webhooks
from bridge.engine.flow import captured_entities, enabled_flows
from bridge.fno.registration import data_event_manual_steps, register_data_events
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.topics import ensure_topics


async def run_setup(settings: Settings) -> list[str]:
    """Create the topics and register what the APIs allow; return the manual steps the APIs
    cannot do (to print). Idempotent: safe to run again after a change of settings. Raises
    :class:`~bridge.errors.ConfigError` naming what is missing when a registration fails."""
    flows = enabled_flows(settings)
    await ensure_topics(settings.kafka, flows)
    policy = RetryPolicy.from_settings(settings.retry)
    async with (
        ApiClient(settings.sales, settings.sales.api_path, policy) as sales,
        ApiClient(settings.fno, settings.fno.api_path, policy) as fno,
    ):
        await register_push(settings, captured_entities(flows), sales, fno)
    fno_entities = [e for e in captured_entities(flows) if e.system is System.FNO]
    if fno_entities and settings.fno.capture == "data-events":
        return data_event_manual_steps(fno_entities)
    return []


async def register_push(
    settings: Settings, entities: list[SourceEntity], sales: ApiClient, fno: ApiClient
) -> None:
    """Register the webhooks and business events that push changes of ``entities``;
    idempotent (an existing registration is updated, not duplicated)."""
    sales_entities = [e for e in entities if e.system is System.SALES]
    fno_entities = [e for e in entities if e.system is System.FNO]
    if sales_entities:
        await register_dataverse_webhooks(sales, settings.webhook, sales_entities)
    if fno_entities and settings.fno.capture == "data-events":
        await register_data_events(sales, settings.webhook, fno_entities)
