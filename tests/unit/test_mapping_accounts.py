"""Accounts (Sales to Fin and Ops) - Direct: spec §4 and §13, line by line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.errors import ConfigError, MappingError
from bridge.mapping.engine import MappingContext, TargetWrite, WriteKind, map_event
from bridge.mapping.loader import load_templates

ACCOUNTS = load_templates()["accounts"]
CONTEXT = MappingContext(company="usmf")

FULL_ACCOUNT: dict[str, Any] = {
    "accountid": "6d81597f-0f9f-e711-8122-000d3aa2331c",
    "accountnumber": "ACC-01000-BVRCPS",
    "name": "Fourth Coffee",
    "address1_line1": "1 Main St",
    "address1_city": "Redmond",
    "address1_stateorprovince": "WA",
    "address1_postalcode": "98052",
    "address1_country": "United States",
    "telephone1": "555-0100",
    "emailaddress1": "orders@fourthcoffee.example",
    "creditlimit": 25000.0,
    "description": "Key account",
}


def account_event(image: dict[str, Any], operation: Operation = Operation.UPDATE) -> ChangeEvent:
    source = Source(
        system=System.SALES,
        entity="account",
        record_id=image.get("accountid", "00000000-0000-0000-0000-000000000001"),
        change_time=datetime(2026, 11, 22, tzinfo=UTC),
        capture=Capture.WEBHOOK,
        record_version=7,
    )
    if operation is Operation.DELETE:
        return ChangeEvent.create(source, operation, before=image)
    return ChangeEvent.create(source, operation, after=image)


def mapped(image: dict[str, Any]) -> TargetWrite:
    result = map_event(ACCOUNTS, account_event(image), CONTEXT)
    assert len(result.writes) == 1, result.skipped
    return result.writes[0]


@pytest.mark.parametrize(
    ("target_field", "expected", "why"),
    [
        ("CustomerAccount", "ACC-01000-BVRCPS", "§4 Match key: 'Sales Account Number'"),
        ("OrganizationName", "Fourth Coffee", "§13 Customer: 'name | name | OrganizationName'"),
        ("CustomerGroupId", "10", "§4 CustomerGroupId: 'Template default 10'"),
        ("LanguageId", "en-us", "§4 LanguageId: 'template default en-us'"),
        ("SiteId", "1", "§4 SiteId: 'Template default 1'"),
        ("WarehouseId", "13", "§4 WarehouseId: 'template default 13'"),
        ("IsExternallyMaintained", "Yes", "§4 'Is Externally Maintained ... set to Yes'"),
        (
            "PartyType",
            "Organization",
            "§12 [DW] Customers V3 (accounts): 'PARTYTYPE << Organization'",
        ),
        (
            "AddressStreet",
            "1 Main St",
            "§13 Customer: 'address (street, city, state, zip ...) | address1_*'",
        ),
        (
            "AddressCity",
            "Redmond",
            "§13 Customer: 'address (street, city, state, zip ...) | address1_*'",
        ),
        (
            "AddressState",
            "WA",
            "§13 Customer: 'address (street, city, state, zip ...) | address1_*'",
        ),
        (
            "AddressZipCode",
            "98052",
            "§13 Customer: 'address (street, city, state, zip ...) | address1_*'",
        ),
        (
            "AddressCountryRegionISOCode",
            "USA",
            "§4 'address country | AddressCountryRegionISOCode'",
        ),
        ("DeliveryAddressCountryRegionISOCode", "USA", "§4 'delivery address country'"),
        (
            "PrimaryContactPhone",
            "555-0100",
            "§4 [3P] 'CustomersV2 also exposes ... PrimaryContactEmail/Phone'",
        ),
        (
            "PrimaryContactEmail",
            "orders@fourthcoffee.example",
            "§4 [3P] '... PrimaryContactEmail/Phone'",
        ),
        ("CreditLimit", 25000.0, "§12 [DW] Customers V3 (accounts): 'CREDITLIMIT = creditlimit'"),
        (
            "SalesMemo",
            "Key account",
            "no spec line: §0 'the full ... field lists are not reproduced'",
        ),
        ("dataAreaId", "usmf", "§1.1 'organization mapping ... legal entity (company)'"),
    ],
)
def test_every_field_of_a_full_account(target_field: str, expected: Any, why: str) -> None:
    assert mapped(FULL_ACCOUNT).body[target_field] == expected, why


@pytest.mark.parametrize(
    ("target_field", "expected"),
    [
        ("AddressCountryRegionISOCode", "USA"),
        ("DeliveryAddressCountryRegionISOCode", "USA"),
        ("CustomerGroupId", "10"),
        ("LanguageId", "en-us"),
        ("SiteId", "1"),
        ("WarehouseId", "13"),
        ("CreditLimit", 0),
        ("AddressCity", None),
        ("PrimaryContactEmail", None),
    ],
)
def test_defaults_of_a_minimal_account(target_field: str, expected: Any) -> None:
    minimal = {"accountid": "a", "accountnumber": "A-1", "name": "Minimal", "address1_country": " "}
    assert mapped(minimal).body[target_field] == expected


@pytest.mark.parametrize(
    ("country", "iso"),
    [
        ("Germany", "DEU"),
        ("uk", "GBR"),
        ("  united states ", "USA"),
        ("DNK", "DNK"),
        ("Narnia", "Narnia"),
    ],
)
def test_country_value_map(country: str, iso: str) -> None:
    """§4 'address country | AddressCountryRegionISOCode | default USA' through the template's
    country value map (§2: value maps are organisation-specific); unknown names pass through."""
    image = {**FULL_ACCOUNT, "address1_country": country}
    assert mapped(image).body["AddressCountryRegionISOCode"] == iso


def test_key_is_company_and_customer_account() -> None:
    write = mapped(FULL_ACCOUNT)
    assert write.kind is WriteKind.UPSERT
    assert write.entity_set == "CustomersV3"
    assert dict(write.key) == {"dataAreaId": "usmf", "CustomerAccount": "ACC-01000-BVRCPS"}


@pytest.mark.parametrize("missing", ["accountnumber", "name"])
def test_account_without_required_field_is_a_mapping_error(missing: str) -> None:
    image = {k: v for k, v in FULL_ACCOUNT.items() if k != missing}
    with pytest.raises(MappingError, match=missing):
        map_event(ACCOUNTS, account_event(image), CONTEXT)


def test_account_number_longer_than_f_and_o_allows_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="longer"):
        mapped({**FULL_ACCOUNT, "accountnumber": "X" * 21})


def test_deletes_are_not_applied_by_default() -> None:
    result = map_event(ACCOUNTS, account_event(FULL_ACCOUNT, Operation.DELETE), CONTEXT)
    assert result.writes == ()
    assert result.skipped == "deletes are not applied by this template"


def test_overrides_file_changes_defaults_without_code(tmp_path: Path) -> None:
    overrides = tmp_path / "templates.toml"
    overrides.write_text(
        '[accounts]\napply_deletes = true\n[[accounts.fields]]\ntarget = "CustomerGroupId"\n'
        'default = "30"\n[accounts.value_maps.country.values]\n"narnia" = "NRN"\n'
    )
    template = load_templates(overrides)["accounts"]
    result = map_event(
        template, account_event({**FULL_ACCOUNT, "address1_country": "Narnia"}), CONTEXT
    )
    assert result.writes[0].body["CustomerGroupId"] == "30"
    assert result.writes[0].body["AddressCountryRegionISOCode"] == "NRN"
    deleted = map_event(template, account_event(FULL_ACCOUNT, Operation.DELETE), CONTEXT)
    assert deleted.writes[0].kind is WriteKind.DELETE


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"nope": {}}', "unknown template"),
        ('{"accounts": {"fields": [{"target": "X"}]}}', "invalid"),
        ("not json", "cannot read"),
    ],
)
def test_bad_overrides_file_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    overrides = tmp_path / "templates.json"
    overrides.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_templates(overrides)
