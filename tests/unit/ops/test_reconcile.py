"""Reconcile reads both sides, reports drift, and repair publishes forced corrections."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rich.console import Console
from structlog.testing import capture_logs

from bridge.config import CompanySettings, Settings
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import Capture, Operation
from bridge.engine.flow import resolve_flow
from bridge.errors import DependencyMissing
from bridge.mapping.engine import MappingContext, map_event
from bridge.mapping.template import Template
from bridge.ops.drift import DriftReport
from bridge.ops.headers import FORCE
from bridge.ops.reconcile import drift_table, prepare, reconcile, repair
from tests.unit.ops.fakes import (
    MemoryTargets,
    PagedSource,
    RecordingSender,
    account_event,
    accounts_flow,
)
from tests.unit.ops.test_drift import stored

FLOW = accounts_flow()
A1, A2, A3 = (account_event(r, address1_city="Berlin") for r in ("a1", "a2", "a3"))
CODEC = EventCodec.from_directory()


async def drifted_report() -> DriftReport:
    source = PagedSource(FLOW, [A1, A2, A3])
    target = MemoryTargets([stored(A1), stored(A2, AddressCity="Bonn")])
    return await reconcile(FLOW, source, target, page_size=2)


async def test_reconcile_reads_every_page_and_finds_the_drift() -> None:
    with capture_logs() as logs:
        report = await drifted_report()
    assert report.checked == 3
    assert [d.record_id for d in report.missing] == ["a3"]
    assert [d.record_id for d in report.different] == ["a2"]
    (logged,) = [e for e in logs if e["event"] == "reconciled"]
    assert logged["flow"] == "accounts"
    assert (logged["missing"], logged["different"], logged["extra"]) == (1, 1, 0)


async def test_repair_publishes_forced_reconcile_snapshots_to_the_source_topic() -> None:
    report = await drifted_report()
    send = RecordingSender()
    assert await repair(FLOW, report, send, CODEC) == 2
    assert [(topic, key, headers) for topic, _, key, headers in send.sent] == [
        (FLOW.topic, b"a3", [FORCE]),
        (FLOW.topic, b"a2", [FORCE]),
    ]
    events = [CODEC.decode(value or b"") for _, value, _, _ in send.sent]
    assert {e.operation for e in events} == {Operation.SNAPSHOT}
    assert {e.source.capture for e in events} == {Capture.RECONCILE}
    assert [e.event_id for e in events] == [A3.event_id, A2.event_id]


async def test_nothing_to_repair_publishes_nothing() -> None:
    source = PagedSource(FLOW, [A1])
    report = await reconcile(FLOW, source, MemoryTargets([stored(A1)]), page_size=10)
    send = RecordingSender()
    assert await repair(FLOW, report, send, CODEC) == 0
    assert send.sent == []


async def test_the_drift_table_shows_fields_and_values() -> None:
    report = await drifted_report()
    out = io.StringIO()
    Console(file=out, width=200).print(drift_table(report))
    text = out.getvalue()
    assert "drift in flow accounts" in text
    assert "missing" in text and "ACC-a3" in text
    assert "AddressCity" in text and "'Berlin'" in text and "'Bonn'" in text


class FakeEnricher:
    """Adds ``currency.code`` like the lookup resolver; knows one currency."""

    def __init__(self) -> None:
        self.calls = 0

    async def enrich(
        self, template: Template, image: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        self.calls += 1
        guid = image.get("_transactioncurrencyid_value")
        if guid and guid != "eur-guid":
            raise DependencyMissing(f"_transactioncurrencyid_value {guid} names no currency")
        return {**image, "currency.code": "EUR" if guid else None}, None


async def test_prepare_resolves_lookups_and_companies_like_the_processor() -> None:
    euro = account_event("eur", _transactioncurrencyid_value="eur-guid")
    unknown = account_event("bad", _transactioncurrencyid_value="nope")
    elsewhere = account_event("bu", _owningbusinessunit_value="bu-9")
    flow = replace(FLOW, companies=CompanySettings(map={"usmf": "bu-1"}))
    enricher = FakeEnricher()
    prepared = await prepare(flow, [euro, unknown, elsewhere], enricher)
    assert [(p.event.source.record_id, p.company) for p in prepared] == [
        ("eur", None),
        ("bad", None),
        ("bu", None),
    ]
    assert enricher.calls == 0, "records of companies that do not take part are not enriched"
    prepared = await prepare(FLOW, [euro, unknown], enricher)
    assert (prepared[0].event.after or {})["currency.code"] == "EUR"
    assert prepared[0].problem is None and prepared[0].company == "usmf"
    assert prepared[1].problem == "_transactioncurrencyid_value nope names no currency"


async def test_reconcile_maps_the_enriched_image() -> None:
    euro = account_event("eur", _transactioncurrencyid_value="eur-guid")
    target = MemoryTargets([stored(euro, SalesCurrencyCode="EUR")])
    report = await reconcile(
        FLOW, PagedSource(FLOW, [euro]), target, page_size=5, enricher=FakeEnricher()
    )
    assert not report.drifted
    without_lookups = await reconcile(FLOW, PagedSource(FLOW, [euro]), target, page_size=5)
    assert [f.field for d in without_lookups.different for f in d.fields] == ["SalesCurrencyCode"]


async def test_fields_that_rules_add_are_read_and_compared() -> None:
    # order-lines-to-fno's rule adds the per-unit discount and the rounding charge; a reader
    # that selected only the template's fields saw them empty on every line.
    lines = resolve_flow(Settings(), "order-lines-to-fno")
    image = {
        "salesorderdetailid": "l1",
        "sequencenumber": 1,
        "quantity": 3.0,
        "priceperunit": 10.0,
        "manualdiscountamount": 1.0,
        "_productid_value": "p",
        "order.number": "SO-1",
        "order.status": 647390000,
        "order.external_only": True,
        "product.number": "P-1",
    }
    line = replace(account_event("l1"), after=image)
    written = map_event(lines.template, line, MappingContext(company="usmf")).writes[0]
    target = MemoryTargets(
        [{**written.body, "LineDiscountAmount": 0.33, "TotalChargesAmount": -0.01}]
    )
    report = await reconcile(lines, PagedSource(lines, [line]), target, page_size=5)
    assert not report.drifted
    assert target.columns is not None
    assert {"LineDiscountAmount", "TotalChargesAmount"} <= set(target.columns.fields)
    target.rows = [{**written.body, "LineDiscountAmount": 0.3}]
    report = await reconcile(lines, PagedSource(lines, [line]), target, page_size=5)
    assert [(f.field, f.expected, f.actual) for d in report.different for f in d.fields] == [
        ("LineDiscountAmount", 0.33, 0.3)
    ]
