"""``bridge reconcile --flow NAME [--repair]``: find and correct drift between the systems.

Reads every source record (paged), resolves its lookups and company like the flow
processor, maps it with the flow's template, reads the target's records (for Sales, with
each lookup resolved back to the business key it is bound by) and compares them
(:mod:`bridge.ops.drift`). The comparison is a point in time: a change still on its way
through Kafka shows as drift until it is applied; run again.

``--repair`` publishes one SNAPSHOT event (capture RECONCILE) per missing or different
record to the flow's source topic, with ``bridge.force=1`` so the consumer re-applies the
version it already applied once; the running bridge then corrects the target through the
normal, idempotent path. Extra target records are only reported: the flow never deletes
what it does not have a source event for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import structlog
from rich.table import Table

from bridge.contract.codec import EventCodec
from bridge.contract.envelope import Capture, ChangeEvent, now_millis
from bridge.engine.dead_letters import RawSender
from bridge.engine.flow import Flow
from bridge.errors import BridgeError, DependencyMissing
from bridge.mapping.template import Template
from bridge.ops.drift import (
    DriftReport,
    RecordDrift,
    SourceRecord,
    compare,
    event_company,
    expect,
)
from bridge.ops.headers import FORCE
from bridge.ops.render import cell, table
from bridge.ops.targets import TargetRecords, target_columns
from bridge.sources.snapshots import SnapshotSource

log = structlog.get_logger(__name__)


class DriftFound(BridgeError):
    """Reconcile found drift (the command exits 1)."""


class Enricher(Protocol):
    """Adds resolved lookup columns to Sales images (:class:`LookupResolver`)."""

    async def enrich(
        self, template: Template, image: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """A copy of ``image`` with the template's lookup columns, and why the record is
        outside the selection (mapping judges the selection again, so it is not used)."""
        ...


async def source_snapshots(source: SnapshotSource, page_size: int) -> list[ChangeEvent]:
    """Every current source record as a RECONCILE snapshot."""
    return [
        event
        async for page in source.pages(None, page_size, Capture.RECONCILE)
        for event in page.events
    ]


async def prepare(
    flow: Flow, events: Sequence[ChangeEvent], enricher: Enricher | None
) -> list[SourceRecord]:
    """Each snapshot with its company and, like the flow processor does before mapping, its
    lookups resolved. A lookup naming a missing record makes the record a problem."""
    prepared = []
    for event in events:
        company = event_company(event, flow.companies)
        try:
            if company is not None:
                event = await _enriched(flow.template, event, enricher)
        except DependencyMissing as exc:
            prepared.append(SourceRecord(event, company, problem=str(exc)))
            continue
        prepared.append(SourceRecord(event, company))
    return prepared


async def _enriched(
    template: Template, event: ChangeEvent, enricher: Enricher | None
) -> ChangeEvent:
    if not (template.lookups or template.fno_lookups) or enricher is None:
        return event
    after, _ = await enricher.enrich(template, event.image)
    return replace(event, after=after)


async def reconcile(
    flow: Flow,
    source: SnapshotSource,
    target: TargetRecords,
    *,
    page_size: int,
    enricher: Enricher | None = None,
) -> DriftReport:
    """Compare the flow's source and target now."""
    events = await source_snapshots(source, page_size)
    expected = expect(flow.template, await prepare(flow, events, enricher))
    columns = target_columns(flow.template, (e.write for e in expected.by_key.values()))
    reads = target.records(flow.template, columns, flow.companies, page_size)
    records = [record async for record in reads]
    report = compare(flow.template, expected, records, flow.companies)
    log.info(
        "reconciled",
        flow=flow.name,
        checked=report.checked,
        missing=len(report.missing),
        different=len(report.different),
        extra=len(report.extra),
        unmappable=len(report.unmappable),
    )
    return report


async def repair(flow: Flow, report: DriftReport, send: RawSender, codec: EventCodec) -> int:
    """Publish the report's corrections to the source topic (acknowledged); return how many."""
    corrections = report.corrections
    for event in corrections:
        value = codec.encode(event.stamped(now_millis()), flow.entity)
        await send(flow.topic, value, event.key, [FORCE])
    if corrections:
        log.info("reconcile_repair_published", flow=flow.name, events=len(corrections))
    return len(corrections)


def drift_table(report: DriftReport) -> Table:
    """Every drifted record and field, and every unmappable source record, as one table."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    for drift in (*report.missing, *report.different, *report.extra):
        rows.extend(_rows(drift))
    for bad in report.unmappable:
        rows.append(("unmappable", "", bad.business_key or bad.record_id, "", bad.error, ""))
    columns = ("drift", "target key", "source", "field", "source (mapped)", "target")
    return table(f"drift in flow {report.flow}", columns, rows)


def _rows(drift: RecordDrift) -> list[tuple[str, str, str, str, str, str]]:
    source = drift.business_key or drift.record_id or ""
    key = " / ".join(drift.key_values) or drift.target_key
    if not drift.fields:
        return [(drift.kind.value, key, source, "", "", "")]
    return [
        (drift.kind.value, key, source, f.field, cell(f.expected), cell(f.actual))
        for f in drift.fields
    ]
