"""The flow processor drops echoes and unmapped companies, applies, and names its cascade.

Version order is the engine's (tests/unit/engine/)."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.config import CompanySettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.dataverse.source import DataverseSource
from bridge.flows.processor import FlowContext, FlowProcessor, Identities
from bridge.fno.source import FnoSource
from bridge.mapping.loader import load_templates
from bridge.sources.base import Sources
from tests.unit.fakes import RecordingSink

# the processor asks the sources only for a record's company, which reads nothing
SOURCES = Sources({System.SALES: DataverseSource(None), System.FNO: FnoSource(None)})  # type: ignore[arg-type]
BRIDGE_USER = "11111111-1111-1111-1111-111111111111"
HUMAN = "22222222-2222-2222-2222-222222222222"


def event(version: int, *, by: str = HUMAN, operation: Operation = Operation.UPDATE) -> ChangeEvent:
    source = Source(
        system=System.SALES,
        entity="account",
        record_id="a-1",
        change_time=datetime.now(UTC),
        capture=Capture.WEBHOOK,
        record_version=version,
        changed_by=by,
    )
    return ChangeEvent.create(source, operation, after={"accountnumber": "A-1", "name": "N"})


def processor(companies: CompanySettings | None = None) -> tuple[FlowProcessor, RecordingSink]:
    sink = RecordingSink()
    context = FlowContext(
        sources=SOURCES,
        identities=Identities({System.SALES: frozenset({BRIDGE_USER})}),
        companies=companies or CompanySettings(),
    )
    template = load_templates()["accounts"]
    return FlowProcessor(template, sink, source_entity(System.SALES, "account"), context), sink


async def test_applies_an_event() -> None:
    proc, sink = processor()
    processed = await proc.process(event(5))
    assert len(sink.writes) == 1
    assert processed.skipped is None


async def test_echo_of_the_bridge_is_skipped() -> None:
    proc, sink = processor()
    processed = await proc.process(event(5, by=BRIDGE_USER.upper()))
    assert processed.skipped == "echo of the bridge's own write"
    assert sink.writes == []


async def test_unmapped_business_unit_is_skipped() -> None:
    proc, sink = processor(CompanySettings(map={"usmf": "some-other-unit"}))
    processed = await proc.process(event(5))
    assert processed.skipped is not None and "not mapped" in processed.skipped
    assert sink.writes == []


async def test_filtered_events_are_reported_skipped() -> None:
    proc, sink = processor()
    source = event(5).source
    filtered = ChangeEvent.create(source, Operation.DELETE, before={"accountnumber": "A-1"})
    processed = await proc.process(filtered)
    assert processed.skipped == "deletes are not applied by this template"
    assert sink.writes == []


async def test_fno_records_of_an_unmapped_company_are_skipped() -> None:
    sink = RecordingSink()
    context = FlowContext(identities=Identities(), companies=CompanySettings(), sources=SOURCES)
    template = load_templates()["products"]
    proc = FlowProcessor(template, sink, source_entity(System.FNO, "product"), context)
    source = Source(
        system=System.FNO,
        entity="CDSReleasedDistinctProducts",
        record_id="demf|p-1",
        change_time=datetime.now(UTC),
        capture=Capture.BUSINESS_EVENT,
        company="demf",
        record_version=3,
    )
    image = {"dataAreaId": "demf", "ProductNumber": "P-1", "SalesUnitSymbol": "ea"}
    processed = await proc.process(ChangeEvent.create(source, Operation.CREATE, after=image))
    assert processed.skipped == "company demf is not mapped"
    assert sink.writes == []


async def test_a_polled_delete_is_addressed_by_the_key_applied_before() -> None:
    template = load_templates()["accounts"].override({"apply_deletes": True})
    sink = RecordingSink()
    first = event(5)
    context = FlowContext(identities=Identities(), companies=CompanySettings(), sources=SOURCES)
    proc = FlowProcessor(template, sink, source_entity(System.SALES, "account"), context)
    polled_delete = ChangeEvent.create(first.source, Operation.DELETE)
    await proc.process(polled_delete, known_key="A-1")
    assert [dict(w.key) for w in sink.writes] == [{"dataAreaId": "usmf", "CustomerAccount": "A-1"}]
