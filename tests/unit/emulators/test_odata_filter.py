"""$filter parser and evaluator, as tables per dialect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.emulators.common.errors import ApiError
from bridge.emulators.dataverse.entities import DATAVERSE_ENTITIES
from bridge.emulators.fno.entities import FNO_ENTITIES
from bridge.emulators.odata.filter import DATAVERSE, FNO, compile_filter, matches, parse_filter
from bridge.emulators.odata.lexer import LiteralType, Tok, tokenize
from bridge.emulators.odata.values import LookupRef

ACCOUNT = DATAVERSE_ENTITIES.require("account")
CUSTOMER = FNO_ENTITIES.require("CustomersV3")
PARENT = "0e8e6a3d-1e2f-4b1a-9f6a-0d2b1f3c4a5b"

ACCOUNT_ROW: dict[str, Any] = {
    "name": "Fabrikam (sample)",
    "accountnumber": "ACC-01000-ABCDEF",
    "customertypecode": 3,
    "creditlimit": 2500.5,
    "creditonhold": False,
    "telephone1": None,
    "_parentaccountid_value": LookupRef("account", PARENT),
    "modifiedon": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    "statecode": 0,
}

CUSTOMER_ROW: dict[str, Any] = {
    "dataAreaId": "usmf",
    "CustomerAccount": "US-001",
    "OrganizationName": "Contoso Retail San Diego",
    "IsExternallyMaintained": "Yes",
    "OnHoldStatus": "No",
    "CreditLimit": 100.0,
    "PaymentTerms": "",
    "PersonAnniversaryDay": 7,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("name eq 'Fabrikam (sample)'", True),
        ("name eq 'FABRIKAM (SAMPLE)'", True),
        ("name ne 'Fabrikam (sample)'", False),
        ("customertypecode eq 3", True),
        ("customertypecode gt 2 and customertypecode lt 4", True),
        ("customertypecode ge 4 or creditlimit le 2500.5", True),
        ("not (customertypecode eq 3)", False),
        ("creditlimit gt 2500", True),
        ("creditonhold eq false", True),
        ("telephone1 eq null", True),
        ("telephone1 ne null", False),
        ("telephone1 gt 'a'", False),
        ("contains(name,'brik')", True),
        ("contains(name,'BRIK')", True),
        ("startswith(name,'fab')", True),
        ("endswith(name,'(sample)')", True),
        ("not contains(name,'zzz')", True),
        (f"_parentaccountid_value eq {PARENT}", True),
        (f"_parentaccountid_value eq '{PARENT}'", True),
        ("modifiedon gt 2024-04-30T00:00:00Z", True),
        ("modifiedon lt 2024-05-01T11:00:00Z", False),
        ("modifiedon ge 2024-05-01", True),
        ("(statecode eq 0) and (contains(name,'fab') or name eq 'x')", True),
        ("Microsoft.Dynamics.CRM.In(PropertyName='customertypecode',PropertyValues=[1,3])", True),
        (
            "Microsoft.Dynamics.CRM.NotIn(PropertyName='customertypecode',PropertyValues=[1,3])",
            False,
        ),
        ("name eq 'O''Brien'", False),
    ],
)
def test_dataverse_filter_evaluates(expression: str, expected: bool) -> None:
    node = compile_filter(expression, ACCOUNT.web_field, ACCOUNT.qualified_type, DATAVERSE)
    assert matches(node, ACCOUNT_ROW.get, DATAVERSE) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("OrganizationName eq '*retail*'", True),
        ("OrganizationName eq 'contoso*'", True),
        ("OrganizationName eq '*Diego'", True),
        ("OrganizationName eq '*Seattle*'", False),
        ("OrganizationName ne '*retail*'", False),
        ("IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'", True),
        ("IsExternallyMaintained ne Microsoft.Dynamics.DataEntities.NoYes'Yes'", False),
        ("OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'No'", True),
        ("dataAreaId eq 'USMF' and CustomerAccount eq 'us-001'", True),
        ("CreditLimit add 1 gt 100", True),
        ("CreditLimit mul 2 eq 200", True),
        ("CreditLimit sub 100 eq 0", True),
        ("PersonAnniversaryDay mod 2 eq 1", True),
        ("PersonAnniversaryDay div 2 eq 3", True),
        ("PaymentTerms eq ''", True),
    ],
)
def test_fno_filter_evaluates(expression: str, expected: bool) -> None:
    node = compile_filter(expression, CUSTOMER.fields.get, CUSTOMER.qualified_type, FNO)
    assert matches(node, CUSTOMER_ROW.get, FNO) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("name eqq 'x'", "Syntax error"),
        ("name eq", "Syntax error"),
        ("(name eq 'x'", "Syntax error"),
        ("name eq 'unterminated", "Syntax error"),
        ("nope eq 1", "Could not find a property named 'nope'"),
        ("parentaccountid eq null", "Could not find a property named 'parentaccountid'"),
        ("customertypecode eq 'x'", "incompatible types"),
        ("name eq 5", "incompatible types"),
        ("creditonhold eq 1", "incompatible types"),
        ("name in ('a','b')", "'in' operator is not supported"),
        ("tolower(name) eq 'x'", "unknown function"),
        ("contains(name)", "Invalid arguments"),
        ("customertypecode add 1 eq 4", "'add' operator is not supported"),
    ],
)
def test_dataverse_filter_rejects(expression: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        compile_filter(expression, ACCOUNT.web_field, ACCOUNT.qualified_type, DATAVERSE)
    assert caught.value.status == 400
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("CustomerAccount in ('US-001')", "'in' operator is not supported"),
        (
            "IsExternallyMaintained has Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            "'has' operator is not supported",
        ),
        ("IsExternallyMaintained eq 'Yes'", "incompatible types"),
        (
            "IsExternallyMaintained gt Microsoft.Dynamics.DataEntities.NoYes'No'",
            "not supported for enum",
        ),
        (
            "IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Maybe'",
            "not a valid enumeration",
        ),
        (
            "IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.Gender'Male'",
            "does not match",
        ),
        (
            "Nope eq 'x'",
            "Could not find a property named 'Nope' on type 'Microsoft.Dynamics.DataEntities.CustomerV3'",
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='CustomerAccount',PropertyValues=['a'])",
            "unknown function",
        ),
    ],
)
def test_fno_filter_rejects(expression: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        compile_filter(expression, CUSTOMER.fields.get, CUSTOMER.qualified_type, FNO)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_precedence_and_binds_tighter_than_or() -> None:
    node = parse_filter("a eq 1 or b eq 2 and c eq 3", DATAVERSE)
    row = {"a": 1, "b": 0, "c": 0}
    assert matches(node, row.get, DATAVERSE) is True


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("'it''s'", LiteralType.STRING, "it's"),
        ("42", LiteralType.INT, 42),
        ("-1.5", LiteralType.DECIMAL, -1.5),
        ("10M", LiteralType.INT, 10),
        ("true", LiteralType.BOOLEAN, True),
        ("null", LiteralType.NULL, None),
        ("0E8E6A3D-1E2F-4B1A-9F6A-0D2B1F3C4A5B", LiteralType.GUID, PARENT),
        ("2024-01-31", LiteralType.DATE, datetime(2024, 1, 31).date()),
    ],
)
def test_literals(text: str, kind: LiteralType, value: object) -> None:
    token = tokenize(text)[0]
    assert token.kind is Tok.LITERAL
    assert token.literal_type is kind
    assert token.value == value


def test_datetime_literal_without_offset_is_utc() -> None:
    token = tokenize("2024-01-31T10:00:00")[0]
    assert token.value == datetime(2024, 1, 31, 10, tzinfo=UTC)
