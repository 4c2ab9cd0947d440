"""Operator commands against the real broker and both emulators: dead letters and their
replay, reconcile (and repair) of flows into F&O and into Sales, backfill with resume, and
replay from a point in time."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import bridge.engine.runner
from bridge.config import PollerSettings, Settings, WebhookSettings
from bridge.contract.envelope import Capture, ChangeEvent, Operation
from bridge.demo.actors import OrderProcessor, Salesperson
from bridge.engine.flow import resolve_flow
from bridge.errors import ConfigError
from bridge.kafka.state import StateStore
from bridge.ops.backfill import BackfillProgress, progress_key
from bridge.ops.commands import (
    backfill_flow,
    dlq_show_command,
    list_dead_letters,
    reconcile_command,
    reconcile_flow,
    replay_dead_letters,
    replay_from,
)
from bridge.ops.drift import DriftReport
from bridge.ops.reconcile import DriftFound
from tests.integration.conftest import Stack, eventually, running_bridge
from tests.integration.test_accounts_flow import create_account, customer, read_topic
from tests.integration.test_prospect_to_cash import fast_flows
from tests.support.kafka_probe import FlowTopics, LagProbe

FORCE_SUPPORTED = hasattr(bridge.engine.runner, "FORCE_HEADER")
needs_force = pytest.mark.skipif(
    not FORCE_SUPPORTED,
    reason="the flow consumer does not honour bridge.force yet (docs/operations.md)",
)

STRICT_COUNTRIES = """
[accounts.value_maps.country]
strict = true
"""
AUSTRIA_ADDED = (
    STRICT_COUNTRIES
    + """
[accounts.value_maps.country.values]
"österreich" = "AUT"
"""
)


def quiet() -> Console:
    """A console that records instead of printing."""
    return Console(file=io.StringIO(), width=200)


def printed(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def with_templates(stack: Stack, path: Path, text: str) -> Settings:
    path.write_text(text)
    flows = stack.settings.flows.model_copy(update={"templates_file": path})
    return stack.with_settings(flows=flows)


async def customer_where(stack: Stack, number: str, **fields: Any) -> dict[str, Any] | None:
    record = await customer(stack, number)
    if record is None or any(record.get(k) != v for k, v in fields.items()):
        return None
    return record


async def test_a_poison_event_is_dead_lettered_and_replayed_after_the_fix(
    stack: Stack, tmp_path: Path
) -> None:
    # Operations made the country map strict so that no unknown country text reaches F&O's
    # ISO code fields. An account typed in German is then a mapping error: dead-lettered.
    settings = with_templates(stack, tmp_path / "templates.toml", STRICT_COUNTRIES)
    async with running_bridge(settings):
        poison = await create_account(stack, name="Alpine Ski House", address1_country="Österreich")
        healthy = await create_account(stack, name="Fourth Coffee", address1_country="Germany")
        await eventually(lambda: customer(stack, healthy["accountnumber"]))

        async def dead_lettered() -> list[Any]:
            return await list_dead_letters(settings, "accounts")

        letters = await eventually(dead_lettered)
    assert await customer(stack, poison["accountnumber"]) is None
    assert {d.key for d in letters} == {poison["accountid"]}
    letter = letters[0]
    assert letter.get("flow") == "accounts"
    assert letter.get("stage") == "map"
    assert letter.get("error.class") == "MappingError"
    assert "no value map entry for 'Österreich'" in letter.get("error.message")
    assert letter.get("attempts") == "1"
    assert letter.get("original.topic") == f"{settings.kafka.topic_prefix}.sales.account"
    assert int(letter.get("original.offset")) >= 0
    assert datetime.fromisoformat(letter.get("time")).tzinfo is not None
    assert letter.pending

    shown = quiet()
    await dlq_show_command(settings, "accounts", letter.ref, console=shown)
    assert "dlq.error.class" in printed(shown) and "Österreich" in printed(shown)

    # The fix: map the German name, restart the bridge with it, replay what is pending.
    fixed = with_templates(stack, tmp_path / "templates.toml", AUSTRIA_ADDED)
    async with running_bridge(fixed):
        replayed = await replay_dead_letters(fixed, "accounts", all_pending=True, console=quiet())
        assert [d.ref for d in replayed] == [d.ref for d in letters]
        number = poison["accountnumber"]
        created = await eventually(
            lambda: customer_where(stack, number, AddressCountryRegionISOCode="AUT")
        )
    assert created["OrganizationName"] == "Alpine Ski House"
    after = await list_dead_letters(fixed, "accounts")
    assert [(d.ref, d.pending) for d in after] == [(d.ref, False) for d in letters]


async def no_drift(settings: Settings) -> DriftReport | None:
    report = await reconcile_flow(settings, "accounts", console=quiet())
    return None if report.drifted else report


async def inject_drift(stack: Stack, numbers: list[str]) -> None:
    """As the demo user in F&O: rename one customer, delete one, add an owned and a foreign
    customer that no Sales account maps to."""
    key = f"dataAreaId='usmf',CustomerAccount='{numbers[0]}'"
    params = {"cross-company": "true"}
    await stack.fno_user.request(
        "PATCH",
        f"CustomersV3({key})",
        json={"OrganizationName": "Tampered"},
        params=params,
        headers={"If-Match": "*"},
    )
    key = f"dataAreaId='usmf',CustomerAccount='{numbers[1]}'"
    await stack.fno_user.request(
        "DELETE", f"CustomersV3({key})", params=params, headers={"If-Match": "*"}
    )
    for account, maintained in (("EXTRA-OWNED", "Yes"), ("EXTRA-FOREIGN", "No")):
        await stack.fno_user.request(
            "POST",
            "CustomersV3",
            json={
                "dataAreaId": "usmf",
                "CustomerAccount": account,
                "OrganizationName": account,
                "CustomerGroupId": "10",
                "IsExternallyMaintained": maintained,
            },
        )


async def converged_accounts(stack: Stack, count: int) -> list[str]:
    numbers = []
    for n in range(count):
        account = await create_account(stack, name=f"Contoso {n}", telephone1=f"+1 555 010{n}")
        numbers.append(account["accountnumber"])
    for number in numbers:
        await eventually(lambda number=number: customer(stack, number))
    return numbers


async def test_reconcile_finds_no_drift_after_convergence_and_then_the_injected_drift(
    stack: Stack,
) -> None:
    async with running_bridge(stack.settings):
        numbers = await converged_accounts(stack, 3)
        clean = await eventually(lambda: no_drift(stack.settings))
        assert clean.checked == 3
        assert (clean.missing, clean.different, clean.extra, clean.unmappable) == ([], [], [], [])
        await inject_drift(stack, numbers)
        report = await reconcile_flow(stack.settings, "accounts", console=(shown := quiet()))
    assert [d.business_key for d in report.missing] == [numbers[1]]
    (different,) = report.different
    assert different.business_key == numbers[0]
    assert [(f.field, f.expected, f.actual) for f in different.fields] == [
        ("OrganizationName", "Contoso 0", "Tampered")
    ]
    assert [d.target_key for d in report.extra] == ["dataAreaId=usmf,CustomerAccount=EXTRA-OWNED"]
    assert report.drifted
    assert "Tampered" in printed(shown) and "EXTRA-FOREIGN" not in printed(shown)
    with pytest.raises(DriftFound, match="1 missing, 1 different"):
        await reconcile_command(stack.settings, "accounts")


@needs_force
async def test_reconcile_repair_corrects_the_drift_through_the_flow(stack: Stack) -> None:
    async with running_bridge(stack.settings):
        numbers = await converged_accounts(stack, 3)
        await eventually(lambda: no_drift(stack.settings))
        await inject_drift(stack, numbers)
        report = await reconcile_flow(
            stack.settings, "accounts", repair_drift=True, console=quiet()
        )
        assert len(report.corrections) == 2
        repaired = await eventually(lambda: no_drift(stack.settings))
    assert [d.target_key for d in repaired.extra] == ["dataAreaId=usmf,CustomerAccount=EXTRA-OWNED"]
    assert (await customer(stack, numbers[0]) or {}).get("OrganizationName") == "Contoso 0"
    assert await customer(stack, numbers[1]) is not None


def backfilled(events: list[ChangeEvent]) -> list[ChangeEvent]:
    return [e for e in events if e.source.capture is Capture.BACKFILL]


async def test_backfill_publishes_pre_existing_records_and_resumes_after_an_interruption(
    stack: Stack,
) -> None:
    ids = {(await create_account(stack, name=f"Legacy {n}"))["accountid"] for n in range(5)}
    settings = stack.with_settings(
        poller=PollerSettings(enabled=False), webhook=WebhookSettings(enabled=False)
    )
    first = await backfill_flow(settings, "accounts", page_size=2, max_pages=1, console=quiet())
    assert not first.complete
    assert (first.progress.published, first.progress.total) == (2, 5)
    async with StateStore(settings.kafka) as state:
        stored = BackfillProgress.from_state(state.get(progress_key("accounts")))
    assert stored is not None and stored.next_cursor and stored.pages == 1

    shown = quiet()
    second = await backfill_flow(settings, "accounts", page_size=2, console=shown)
    assert second.resumed and second.complete
    assert (second.published_now, second.progress.published, second.progress.pages) == (3, 5, 3)
    assert "complete" in printed(shown)
    async with StateStore(settings.kafka) as state:
        assert state.get(progress_key("accounts")) is None

    topic = f"{settings.kafka.topic_prefix}.sales.account"
    events = backfilled(await read_topic(settings, topic, lambda evs: len(backfilled(evs)) >= 5))
    assert sorted(e.source.record_id for e in events) == sorted(ids), "each record exactly once"
    assert {e.operation for e in events} == {Operation.SNAPSHOT}

    async with running_bridge(settings, register_webhooks=False):
        for event in events:
            number = str(event.source.business_key)
            await eventually(lambda number=number: customer(stack, number))


async def test_replay_from_a_time_reapplies_what_the_flow_applied_since(stack: Stack) -> None:
    settings = stack.settings
    since = datetime.now(UTC)
    async with running_bridge(settings):
        numbers = await converged_accounts(stack, 2)
        with pytest.raises(ConfigError, match="is running"):
            await replay_from(settings, "accounts", since.isoformat(), console=quiet())
    key = f"dataAreaId='usmf',CustomerAccount='{numbers[0]}'"
    await stack.fno_user.request(
        "PATCH",
        f"CustomersV3({key})",
        json={"OrganizationName": "Restored from an old backup"},
        params={"cross-company": "true"},
        headers={"If-Match": "*"},
    )

    planned = await replay_from(
        settings, "accounts", since.isoformat(), dry_run=True, console=quiet()
    )
    assert planned.dry_run and sum(r.reapplied for r in planned.resets) >= 2
    shown = quiet()
    result = await replay_from(settings, "accounts", since.isoformat(), console=shown)
    assert result.forgotten == 2
    assert sum(r.reapplied for r in result.resets) >= 2
    assert all(r.new <= r.committed for r in result.resets if r.new is not None and r.committed)
    assert "new offset" in printed(shown)

    async with running_bridge(settings):
        await eventually(lambda: customer_where(stack, numbers[0], OrganizationName="Contoso 0"))


async def test_backfill_reads_fno_sources_of_the_mapped_companies(stack: Stack) -> None:
    for company, number in (("usmf", "P-1"), ("usmf", "P-2"), ("usmf", "P-3"), ("usrt", "P-4")):
        await stack.fno_user.request(
            "POST",
            "CDSReleasedDistinctProducts",
            json={"dataAreaId": company, "ProductNumber": number, "ProductName": f"Bolt {number}"},
        )
    result = await backfill_flow(stack.settings, "products", page_size=2, console=quiet())
    assert result.complete
    assert (result.progress.published, result.progress.pages) == (3, 2)
    topic = f"{stack.settings.kafka.topic_prefix}.fno.product"
    events = await read_topic(stack.settings, topic, lambda evs: len(evs) >= 3)
    assert sorted(e.source.record_id for e in events) == ["usmf|p-1", "usmf|p-2", "usmf|p-3"]
    assert {(e.operation, e.source.capture) for e in events} == {
        (Operation.SNAPSHOT, Capture.BACKFILL)
    }


# --- reconcile of flows into Sales ----------------------------------------------------------


async def nothing_in_flight(stack: Stack, settings: Settings, *flows: str) -> None:
    """Wait until nothing more is on its way: every webhook delivered and every event on
    ``flows``' topics committed. Convergence alone is not enough before the test changes a
    target itself: a late event of the source (webhooks run in no guaranteed order) is
    applied as the source holds it then, and would repair the change the test made."""
    topics = [
        FlowTopics(flow.group, flow.consumed_topics)
        for flow in (resolve_flow(settings, name) for name in flows)
    ]
    async with LagProbe(settings.kafka.bootstrap_servers, topics) as probe:
        for _ in range(2):  # twice: a delivery may publish after the first look
            await stack.emulators.sales.dispatcher.wait_idle()
            await stack.emulators.fno.dispatcher.wait_idle()
            await eventually(lambda: _no_lag(probe))


async def _no_lag(probe: LagProbe) -> bool:
    return await probe.lag() == 0


async def converged(settings: Settings, flow: str, checked: int) -> DriftReport | None:
    """The report of ``flow`` once it has no drift and has compared ``checked`` records."""
    report = await reconcile_flow(settings, flow, console=quiet())
    return None if report.drifted or report.checked != checked else report


def lookup_keys(report: DriftReport) -> list[tuple[str, str, Any, Any]]:
    return [
        (d.business_key or "", f.field, f.expected, f.actual)
        for d in report.different
        for f in d.fields
    ]


async def test_reconcile_of_products_reports_drift_made_in_sales_and_repairs_it(
    stack: Stack,
) -> None:
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    settings = stack.with_settings(flows=fast_flows(stack, enabled=["products"]))
    async with running_bridge(settings):
        for number in ("SPK-1", "SPK-2", "SPK-3"):
            await fno.release_product(number, f"Speaker {number}", 100.0)
        clean = await eventually(lambda: converged(settings, "products", 3))
        assert (clean.missing, clean.different, clean.extra, clean.unmappable) == ([], [], [], [])

        # In Sales, as a user: rename one product and give it another unit, delete another,
        # and add two products no F&O product maps to (one maintained externally).
        hour = await sales.unit_id("Hour")
        tampered = await sales.product_id("SPK-1")
        await sales.update(
            "products",
            tampered,
            {"name": "Tampered", "defaultuomid@odata.bind": f"/uoms({hour})"},
        )
        await stack.sales_user.request("DELETE", f"products({await sales.product_id('SPK-2')})")
        for number, external in (("EXTRA-OWNED", True), ("EXTRA-SALES", False)):
            await sales.create(
                "products",
                {
                    "productnumber": number,
                    "name": number,
                    "msdynce_ismaintainedexternally": external,
                    "defaultuomid@odata.bind": f"/uoms({hour})",
                },
            )
        report = await reconcile_flow(settings, "products", console=(shown := quiet()))
        assert [d.business_key for d in report.missing] == ["SPK-2"]
        assert lookup_keys(report) == [
            ("SPK-1", "name", "Speaker SPK-1", "Tampered"),
            ("SPK-1", "defaultuomid", "ea", "Hour"),
        ]
        assert [d.target_key for d in report.extra] == ["productnumber=EXTRA-OWNED"]
        assert report.drifted and "Tampered" in printed(shown)
        with pytest.raises(DriftFound, match="1 missing, 1 different"):
            await reconcile_command(settings, "products")

        repaired = await reconcile_flow(settings, "products", repair_drift=True, console=quiet())
        assert len(repaired.corrections) == 2
        fixed = await eventually(lambda: converged(settings, "products", 3))
    assert [d.target_key for d in fixed.extra] == ["productnumber=EXTRA-OWNED"]
    product = await sales.get("products", "productnumber='SPK-1'")
    assert product is not None and product["name"] == "Speaker SPK-1"
    assert product["_defaultuomid_value"] == await sales.unit_id("ea")
    assert await sales.get("products", "productnumber='SPK-2'") is not None


async def orders_from_fno(stack: Stack, count: int) -> tuple[str, list[str]]:
    """An account synced to F&O and ``count`` orders taken and confirmed in F&O for it:
    the account number and the order numbers."""
    sales, fno = Salesperson(stack.sales_user), OrderProcessor(stack.fno_user)
    await fno.release_product("SPK-100", "Mid-range speaker", 220.5)
    account = await sales.create_account("Fourth Coffee", address1_country="Germany")
    number = account["accountnumber"]
    await eventually(lambda: customer(stack, number))
    orders = []
    for n in range(count):
        line = {"product": "SPK-100", "quantity": float(n + 1), "price": 220.5}
        order = await fno.create_order(number, [line])
        await fno.confirm(order)
        orders.append(order)
    return number, orders


async def test_reconcile_of_orders_to_sales_reports_drift_made_in_sales_and_repairs_it(
    stack: Stack,
) -> None:
    sales = Salesperson(stack.sales_user)
    settings = stack.with_settings(flows=fast_flows(stack))
    async with running_bridge(settings):
        customer_number, orders = await orders_from_fno(stack, 3)
        clean = await eventually(lambda: converged(settings, "orders-to-sales", 3))
        assert (clean.missing, clean.different, clean.unmappable) == ([], [], [])
        await eventually(lambda: converged(settings, "order-lines-to-sales", 3))
        await nothing_in_flight(stack, settings, "orders-to-sales", "order-lines-to-sales")

        # In Sales, as a user: rename one order and give it another customer, delete another.
        other = await sales.create_account("Northwind Traders")
        first = await sales.get("salesorders", f"ordernumber='{orders[0]}'")
        second = await sales.get("salesorders", f"ordernumber='{orders[1]}'")
        assert first is not None and second is not None
        await sales.update(
            "salesorders",
            first["salesorderid"],
            {
                "name": "Tampered",
                "customerid_account@odata.bind": f"/accounts({other['accountid']})",
            },
        )
        await stack.sales_user.request("DELETE", f"salesorders({second['salesorderid']})")
        report = await reconcile_flow(settings, "orders-to-sales", console=(shown := quiet()))
        assert [d.business_key for d in report.missing] == [orders[1]]
        assert lookup_keys(report) == [
            (orders[0], "name", "Phone order", "Tampered"),
            (orders[0], "customerid", customer_number, other["accountnumber"]),
        ]
        assert report.drifted and "Tampered" in printed(shown)

        repaired = await reconcile_flow(
            settings, "orders-to-sales", repair_drift=True, console=quiet()
        )
        assert len(repaired.corrections) == 2
        fixed = await eventually(lambda: converged(settings, "orders-to-sales", 3))
    assert fixed.extra == []
    restored = await sales.get("salesorders", f"ordernumber='{orders[1]}'")
    assert restored is not None and restored["salesorderid"] != second["salesorderid"]
    assert restored["name"] == "Phone order"

    # The re-created order's line: a fresh bridge (the Dataverse sink caches lookup GUIDs
    # for its lifetime, so the running one still bound the line to the deleted order)
    # repairs whatever reconcile of the lines finds.
    async with running_bridge(settings):
        await reconcile_flow(settings, "order-lines-to-sales", repair_drift=True, console=quiet())
        lines = await eventually(lambda: converged(settings, "order-lines-to-sales", 3))
    assert all(
        f"{second['salesorderid']} (not in salesorders)" in d.target_key for d in lines.extra
    )
