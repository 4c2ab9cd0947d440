"""Drift between the mapped source and the target, read like a business table."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import CompanySettings
from bridge.contract.envelope import ChangeEvent
from bridge.mapping.engine import MappingContext, map_event
from bridge.mapping.loader import load_templates
from bridge.mapping.template import Template
from bridge.ops.drift import (
    DriftKind,
    ExpectedTargets,
    FieldDrift,
    SourceRecord,
    compare,
    event_company,
    expect,
    normalized_key,
    owned,
    same_key,
)
from tests.unit.ops.fakes import account_event, fno_event

ACCOUNTS = load_templates()["accounts"]
COMPANIES = CompanySettings()


def expected(
    template: Template, *events: ChangeEvent, company: str | None = "usmf"
) -> ExpectedTargets:
    return expect(template, [SourceRecord(e, company) for e in events])


def stored(event: ChangeEvent, template: Template = ACCOUNTS, **changes: Any) -> dict[str, Any]:
    """The record F&O holds once ``event`` was applied (empty strings, not null)."""
    body = dict(map_event(template, event, MappingContext(company="usmf")).writes[0].body)
    record = {k: ("" if v is None else v) for k, v in body.items()}
    return {"@odata.etag": 'W/"1"', **record, **changes}


A1, A2 = account_event("a1"), account_event("a2", address1_city="Berlin")
EXTRA_KEY = "dataAreaId=usmf,CustomerAccount=ACC-gone"


@pytest.mark.parametrize(
    ("target", "missing", "different", "extra"),
    [
        pytest.param([stored(A1), stored(A2)], [], [], [], id="converged"),
        pytest.param([stored(A1)], ["a2"], [], [], id="missing"),
        pytest.param(
            [stored(A1), stored(A2, CustomerAccount="acc-a2", dataAreaId="USMF")],
            [],
            [],
            [],
            id="keys compare case-insensitively",
        ),
        pytest.param(
            [stored(A1), stored(A2, AddressCity="Bonn", CreditLimit=0.0000000001)],
            [],
            ["a2"],
            [],
            id="different",
        ),
        pytest.param(
            [stored(A1), stored(A2), stored(account_event("gone"))],
            [],
            [],
            [EXTRA_KEY],
            id="extra owned record",
        ),
        pytest.param(
            [stored(A1), stored(A2), stored(account_event("x"), IsExternallyMaintained="No")],
            [],
            [],
            [],
            id="not externally maintained: not the flow's",
        ),
        pytest.param(
            [stored(A1), stored(A2), stored(account_event("x"), dataAreaId="usrt")],
            [],
            [],
            [],
            id="a company that does not take part: not the flow's",
        ),
    ],
)
def test_compare(
    target: list[dict[str, Any]], missing: list[str], different: list[str], extra: list[str]
) -> None:
    report = compare(ACCOUNTS, expected(ACCOUNTS, A1, A2), target, COMPANIES)
    assert report.checked == 2
    assert [d.record_id for d in report.missing] == missing
    assert [d.record_id for d in report.different] == different
    assert [d.target_key for d in report.extra] == extra
    assert {d.kind for d in report.missing} <= {DriftKind.MISSING}
    assert report.drifted == bool(missing or different)


def test_a_difference_names_the_field_and_both_values() -> None:
    target = [stored(A2, AddressCity="Bonn")]
    report = compare(ACCOUNTS, expected(ACCOUNTS, A2), target, COMPANIES)
    (drift,) = report.different
    assert drift.target_key == "dataAreaId=usmf,CustomerAccount=ACC-a2"
    assert drift.business_key == "ACC-a2"
    assert drift.fields == (FieldDrift("AddressCity", "Berlin", "Bonn"),)
    assert report.corrections == [A2]


def test_missing_and_different_records_carry_their_correction() -> None:
    report = compare(ACCOUNTS, expected(ACCOUNTS, A1, A2), [], COMPANIES)
    assert report.corrections == [A1, A2]


def test_extras_are_drift_only_when_the_flow_applies_deletes() -> None:
    extra = [stored(account_event("gone"))]
    keeps = compare(ACCOUNTS, expected(ACCOUNTS), extra, COMPANIES)
    assert keeps.extra and not keeps.drifted
    deletes = ACCOUNTS.override({"apply_deletes": True})
    assert compare(deletes, expected(deletes), extra, COMPANIES).drifted


def test_unmappable_and_clashing_records_are_listed_not_compared() -> None:
    too_long = account_event("long", accountnumber="LEGACY-IMPORT-0000012345")
    clash = account_event("twin", accountnumber="ACC-a1")
    missing_lookup = SourceRecord(account_event("cur"), "usmf", problem="no transactioncurrency")
    records = [SourceRecord(A1, "usmf"), SourceRecord(too_long, "usmf")]
    records += [SourceRecord(clash, "usmf"), missing_lookup]
    report = compare(ACCOUNTS, expect(ACCOUNTS, records), [stored(A1)], COMPANIES)
    assert report.checked == 1
    assert [(u.record_id, u.business_key) for u in report.unmappable] == [
        ("long", "LEGACY-IMPORT-0000012345"),
        ("twin", "ACC-a1"),
        ("cur", "ACC-cur"),
    ]
    assert "longer than 20" in report.unmappable[0].error
    assert "like a1" in report.unmappable[1].error
    assert report.unmappable[2].error == "no transactioncurrency"
    assert not report.drifted


def test_records_outside_the_filter_or_of_unmapped_companies_are_not_expected() -> None:
    german_only = ACCOUNTS.override({"filter": [{"field": "address1_country", "value": "Germany"}]})
    french = account_event("fr", address1_country="France")
    records = [SourceRecord(A1, "usmf"), SourceRecord(french, "usmf")]
    records.append(SourceRecord(account_event("elsewhere"), None))
    report = compare(german_only, expect(german_only, records), [], COMPANIES)
    assert report.filtered == 2
    assert [d.record_id for d in report.missing] == ["a1"]


def test_fields_written_only_on_create_and_guarded_records_are_not_compared() -> None:
    created_once = ACCOUNTS.override(
        {"fields": [{"target": "AddressCity", "on_create_only": True}]}
    )
    target = [stored(A2, created_once, AddressCity="Bonn")]
    assert not compare(created_once, expected(created_once, A2), target, COMPANIES).different
    guard = {"conditions": [{"field": "CustomerGroupId", "value": "10"}], "reason": "on hold"}
    guarded = ACCOUNTS.override({"guard": guard})
    target = [stored(A2, guarded, CustomerGroupId="90", AddressCity="Bonn")]
    report = compare(guarded, expected(guarded, A2), target, COMPANIES)
    assert (report.different, report.missing, report.guarded) == ([], [], 1)


@pytest.mark.parametrize(
    ("event", "companies", "company"),
    [
        (account_event("a"), CompanySettings(), "usmf"),
        (
            account_event("a", _owningbusinessunit_value="BU-2"),
            CompanySettings(map={"demf": "bu-2", "usmf": "*"}),
            "demf",
        ),
        (account_event("a"), CompanySettings(map={"demf": "bu-2"}), None),
        (fno_event("usmf"), CompanySettings(), "usmf"),
        (fno_event("usrt"), CompanySettings(), None),
    ],
)
def test_event_company_follows_the_processor(
    event: ChangeEvent, companies: CompanySettings, company: str | None
) -> None:
    assert event_company(event, companies) == company


@pytest.mark.parametrize(
    ("changes", "is_owned"),
    [
        ({}, True),
        ({"dataAreaId": "USMF"}, True),
        ({"dataAreaId": "demf"}, False),
        ({"IsExternallyMaintained": "No"}, False),
        ({"PartyType": "Person"}, False),
        ({"OrganizationName": ""}, False),
    ],
)
def test_owned(changes: dict[str, Any], is_owned: bool) -> None:
    assert owned(ACCOUNTS, stored(A1, **changes), COMPANIES) is is_owned


def test_normalized_key() -> None:
    key = {"dataAreaId": "USMF", "CustomerAccount": "Ab"}
    assert normalized_key(ACCOUNTS, key) == ("usmf", "ab")
    assert normalized_key(ACCOUNTS, {}) == ("", "")


def test_summary_line() -> None:
    report = compare(ACCOUNTS, expected(ACCOUNTS, A1, A2), [stored(A1)], COMPANIES)
    assert report.summary() == (
        "accounts: 2 checked, 1 missing, 0 different, 0 extra (not drift), 0 unmappable, "
        "0 not for the target, 0 past their guard"
    )


@pytest.mark.parametrize(
    ("current", "wanted", "same"),
    [
        ("P-1", "P-1", True),
        ("p-1", "P-1", True),
        ("P-2", "P-1", False),
        (None, "P-1", False),
        ("1", 1, True),
    ],
)
def test_lookups_compare_by_business_key_ignoring_case(
    current: Any, wanted: Any, same: bool
) -> None:
    assert same_key(current, wanted) is same
