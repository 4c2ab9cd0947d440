"""F&O OData keys, companies, writes and errors (dynamics-apis.md B.1-B.2)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.plugins import PluginContext, Stage
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.common.store import Op
from bridge.emulators.fno.app import FnoEmulator
from tests.unit.emulators.support import BRIDGE, FnoHarness, token_for

CUSTOMER = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"


async def create_customer(
    fno: FnoHarness, account: str = "US-001", **fields: Any
) -> dict[str, Any]:
    status, body = await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": account, "CustomerGroupId": "10", **fields},
    )
    assert status == 201, body
    return dict(body)


async def test_post_returns_201_with_full_record(fno: FnoHarness) -> None:
    response = await fno.client.post(
        "/data/CustomersV3",
        json={
            "@odata.type": "#Microsoft.Dynamics.DataEntities.CustomerV3",
            "CustomerAccount": "US-001",
            "CustomerGroupId": "10",
            "OrganizationName": "Contoso",
        },
        headers=fno.bridge,
    )
    assert response.status == 201
    assert response.headers["Location"].endswith(CUSTOMER)
    body = await response.json()
    assert body["@odata.context"].endswith("/data/$metadata#CustomersV3/$entity")
    assert body["dataAreaId"] == "usmf"
    assert body["OrganizationName"] == "Contoso"
    assert body["PaymentTerms"] == ""
    assert body["IsExternallyMaintained"] == "No"
    assert body["OnHoldStatus"] == "No"
    assert body["CreditLimit"] == 0.0
    assert body["DeliveryAddressValidFrom"] == "1900-01-01T12:00:00Z"
    assert body["PartyType"] == "Organization"
    assert re.fullmatch(r"\d{9}", body["PartyNumber"])
    etag = body["@odata.etag"]
    decoded = base64.b64decode(etag[3:-1]).decode()
    assert re.fullmatch(r"'0,\d+'", decoded)


async def test_get_requires_all_keys(fno: FnoHarness) -> None:
    await create_customer(fno)
    status, body = await fno.json("GET", CUSTOMER)
    assert status == 200
    assert body["CustomerAccount"] == "US-001"
    status, body = await fno.json("GET", "/data/CustomersV3(dataAreaId='usmf')")
    assert status == 400
    assert body["error"]["message"] == "An error has occurred."
    assert "number of keys" in body["error"]["innererror"]["message"]
    status, _ = await fno.json("GET", "/data/CustomersV3('US-001')")
    assert status == 400
    status, _ = await fno.json(
        "GET", "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='us-001')"
    )
    assert status == 200


async def test_keys_are_case_insensitive_but_values_are_kept(fno: FnoHarness) -> None:
    await create_customer(fno, "Mixed-Case")
    _, body = await fno.json(
        "GET", "/data/CustomersV3(dataAreaId='USMF',CustomerAccount='MIXED-CASE')"
    )
    assert body["CustomerAccount"] == "Mixed-Case"


async def test_company_from_body_and_cross_company_rules(fno: FnoHarness) -> None:
    await create_customer(fno, "DE-001", dataAreaId="DEMF")
    usrt = "/data/CustomersV3(dataAreaId='demf',CustomerAccount='DE-001')"
    status, _ = await fno.json("GET", usrt)
    assert status == 404
    status, body = await fno.json("GET", f"{usrt}?cross-company=true")
    assert (status, body["dataAreaId"]) == (200, "demf")
    _, default_only = await fno.json("GET", "/data/CustomersV3")
    assert default_only["value"] == []
    _, everything = await fno.json(
        "GET", "/data/CustomersV3?cross-company=true&$filter=dataAreaId eq 'demf'"
    )
    assert [c["CustomerAccount"] for c in everything["value"]] == ["DE-001"]
    status, _ = await fno.json("PATCH", usrt, json={"OrganizationName": "x"})
    assert status == 404
    status, _ = await fno.json(
        "PATCH", f"{usrt}?cross-company=true", json={"OrganizationName": "x"}
    )
    assert status == 204
    status, body = await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": "X", "CustomerGroupId": "10", "dataAreaId": "zzzz"},
    )
    assert status == 400
    assert "Company 'zzzz' does not exist" in body["error"]["innererror"]["message"]


async def test_no_upsert(fno: FnoHarness) -> None:
    for method in ("PATCH", "PUT", "DELETE"):
        status, body = await fno.json(
            method, CUSTOMER, json={"OrganizationName": "x"} if method != "DELETE" else None
        )
        assert status == 404, method
        assert body == {
            "error": {
                "code": "",
                "message": "An error has occurred.",
                "innererror": {
                    "message": "No resources were found when selecting for update.",
                    "type": "Microsoft.OData.ODataException",
                    "stacktrace": "",
                },
            }
        }


async def test_duplicate_key_is_500_write_failure(fno: FnoHarness) -> None:
    await create_customer(fno)
    status, body = await fno.json(
        "POST", "/data/CustomersV3", json={"CustomerAccount": "us-001", "CustomerGroupId": "10"}
    )
    assert status == 500
    inner = body["error"]["innererror"]
    assert (
        inner["type"]
        == "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
    )
    assert inner["message"].startswith(
        "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Info: Cannot create a record in Customers (CustTable)."
    )
    assert inner["message"].endswith("The record already exists..")


async def test_patch_put_delete(fno: FnoHarness) -> None:
    await create_customer(fno, OrganizationName="Contoso", PrimaryContactPhone="1")
    assert (await fno.json("PATCH", CUSTOMER, json={"OrganizationName": "Contoso 2"}))[0] == 204
    _, body = await fno.json("GET", CUSTOMER)
    assert (body["OrganizationName"], body["PrimaryContactPhone"]) == ("Contoso 2", "1")
    assert (await fno.json("PUT", CUSTOMER, json={"CustomerGroupId": "20"}))[0] == 204
    _, body = await fno.json("GET", CUSTOMER)
    assert (body["OrganizationName"], body["CustomerGroupId"], body["PrimaryContactPhone"]) == (
        "",
        "20",
        "",
    )
    status, body = await fno.json("PATCH", CUSTOMER, json={"CustomerAccount": "OTHER"})
    assert status == 400
    assert (await fno.json("DELETE", CUSTOMER))[0] == 204
    assert (await fno.json("GET", CUSTOMER))[0] == 404


async def test_if_match(fno: FnoHarness) -> None:
    created = await create_customer(fno)
    etag = created["@odata.etag"]
    assert (
        await fno.json("PATCH", CUSTOMER, json={"OrganizationName": "a"}, headers={"If-Match": "*"})
    )[0] == 204
    status, _ = await fno.json(
        "PATCH", CUSTOMER, json={"OrganizationName": "b"}, headers={"If-Match": etag}
    )
    assert status == 412
    _, current = await fno.json("GET", CUSTOMER)
    status, _ = await fno.json(
        "PATCH",
        CUSTOMER,
        json={"OrganizationName": "c"},
        headers={"If-Match": current["@odata.etag"]},
    )
    assert status == 204


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"CustomerAccount": "A", "CustomerGroupId": "10", "Bogus": 1},
            "The property 'Bogus' does not exist on type 'Microsoft.Dynamics.DataEntities.CustomerV3'",
        ),
        (
            {"CustomerAccount": "A", "CustomerGroupId": "10", "IsExternallyMaintained": "Maybe"},
            "Requested value 'Maybe' was not found.",
        ),
        ({"CustomerAccount": "A", "CustomerGroupId": "10", "CreditLimit": "100"}, "Cannot convert"),
        (
            {"CustomerAccount": "A", "CustomerGroupId": "10", "CreditLimit": None},
            "does not allow null values",
        ),
        ({"CustomerAccount": "A"}, "Field 'CustomerGroupId' must be filled in."),
    ],
)
async def test_invalid_bodies(fno: FnoHarness, body: dict[str, Any], fragment: str) -> None:
    status, error = await fno.json("POST", "/data/CustomersV3", json=body)
    assert status == 400
    assert fragment in error["error"]["innererror"]["message"]


async def test_enum_symbols_are_normalised_and_nulls_become_empty_strings(fno: FnoHarness) -> None:
    body = await create_customer(fno, IsExternallyMaintained="yes", OrganizationName=None)
    assert body["IsExternallyMaintained"] == "Yes"
    assert body["OrganizationName"] == ""


async def test_number_sequences(fno: FnoHarness) -> None:
    first = await create_customer(fno, "")
    assert re.fullmatch(r"CUS-\d{6}", first["CustomerAccount"])
    await create_customer(fno, "C-1")
    _, order = await fno.json(
        "POST", "/data/CDSSalesOrderHeaders", json={"OrderingCustomerAccountNumber": "C-1"}
    )
    assert re.fullmatch(r"\d{6}", order["SalesOrderNumber"])
    assert order["InvoiceCustomerAccountNumber"] == "C-1"
    numbers = []
    for _ in range(2):
        status, line = await fno.json(
            "POST",
            "/data/CDSSalesOrderLines",
            json={"SalesOrderNumber": order["SalesOrderNumber"], "OrderedSalesQuantity": 1},
        )
        assert status == 201
        numbers.append(line["LineCreationSequenceNumber"])
    assert numbers == [1, 2]
    _, line = await fno.json(
        "GET",
        f"/data/CDSSalesOrderLines(dataAreaId='usmf',SalesOrderNumber='{order['SalesOrderNumber']}',LineCreationSequenceNumber=2)",
    )
    assert line["OrderedSalesQuantity"] == 1


async def test_references_are_checked(fno: FnoHarness) -> None:
    status, body = await fno.json(
        "POST", "/data/CDSSalesOrderHeaders", json={"OrderingCustomerAccountNumber": "NOPE"}
    )
    assert status == 400
    assert (
        "The value 'NOPE' in field 'Customer account' is not found"
        in body["error"]["innererror"]["message"]
    )
    status, body = await fno.json(
        "POST", "/data/CDSSalesOrderLines", json={"SalesOrderNumber": "000999"}
    )
    assert status == 400
    await create_customer(fno, "C-1")
    _, order = await fno.json(
        "POST", "/data/CDSSalesOrderHeaders", json={"OrderingCustomerAccountNumber": "C-1"}
    )
    status, _ = await fno.json(
        "POST",
        "/data/CDSSalesOrderLines",
        json={"SalesOrderNumber": order["SalesOrderNumber"], "ProductNumber": "P-1"},
    )
    assert status == 400
    await fno.json(
        "POST",
        "/data/CDSReleasedDistinctProducts",
        json={"ProductNumber": "P-1", "ProductName": "Widget"},
    )
    status, _ = await fno.json(
        "POST",
        "/data/CDSSalesOrderLines",
        json={"SalesOrderNumber": order["SalesOrderNumber"], "ProductNumber": "P-1"},
    )
    assert status == 201


async def test_a_create_checks_every_reference_an_update_only_those_it_writes(
    fno: FnoHarness,
) -> None:
    def invoice_to_missing_customer(context: PluginContext) -> None:
        if context.values.get("SalesOrderName") == "bad invoice account":
            context.values["InvoiceCustomerAccountNumber"] = "NOPE"

    fno.emulator.tables.plugins.register(
        "CDSSalesOrderHeaders", Stage.PRE_OPERATION, invoice_to_missing_customer, ops=[Op.CREATE]
    )
    await create_customer(fno, "C-1")
    await create_customer(fno, "C-2")
    status, body = await fno.json(
        "POST",
        "/data/CDSSalesOrderHeaders",
        json={"OrderingCustomerAccountNumber": "C-1", "SalesOrderName": "bad invoice account"},
    )
    assert status == 400, body
    assert "The value 'NOPE'" in body["error"]["innererror"]["message"]
    _, order = await fno.json(
        "POST",
        "/data/CDSSalesOrderHeaders",
        json={"OrderingCustomerAccountNumber": "C-1", "InvoiceCustomerAccountNumber": "C-2"},
    )
    assert (await fno.json("DELETE", "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='C-2')"))[
        0
    ] == 204
    address = f"/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{order['SalesOrderNumber']}')"
    status, body = await fno.json("PATCH", address, json={"SalesOrderName": "renamed"})
    assert status == 204, body
    status, body = await fno.json("PATCH", address, json={"InvoiceCustomerAccountNumber": "C-2"})
    assert status == 400
    assert "The value 'C-2'" in body["error"]["innererror"]["message"]


async def test_enum_and_datetime_keys(fno: FnoHarness) -> None:
    status, contact = await fno.json(
        "POST",
        "/data/CDSContactPersonsV2",
        json={
            "AssociatedContactType": "Customer",
            "AssociatedContactNumber": "C-1",
            "FirstName": "Ada",
        },
    )
    assert status == 201
    key = (
        f"dataAreaId='usmf',ContactPersonPartyNumber='{contact['ContactPersonPartyNumber']}',"
        "AssociatedContactType=Microsoft.Dynamics.DataEntities.SmmContactPersonCdsAssociatedContactType'Customer',AssociatedContactNumber='C-1'"
    )
    status, body = await fno.json("GET", f"/data/CDSContactPersonsV2({key})")
    assert (status, body["FirstName"]) == (200, "Ada")
    await fno.json(
        "POST", "/data/CustomersV3", json={"CustomerAccount": "C-1", "CustomerGroupId": "10"}
    )
    status, invoice = await fno.json(
        "POST",
        "/data/SalesInvoiceHeadersV2",
        json={"InvoiceDate": "2024-05-01T12:00:00Z", "InvoiceCustomerAccountNumber": "C-1"},
    )
    assert status == 201
    key = f"dataAreaId='usmf',InvoiceNumber='{invoice['InvoiceNumber']}',InvoiceDate=2024-05-01T12:00:00Z,LedgerVoucher='{invoice['LedgerVoucher']}'"
    status, body = await fno.json("GET", f"/data/SalesInvoiceHeadersV2({key})")
    assert (status, body["InvoiceDate"]) == (200, "2024-05-01T12:00:00Z")


async def test_optional_modified_datetime_field() -> None:
    emulator = FnoEmulator(EmulatorSettings(fno_modified_datetime_field="ModifiedDateTime1"))
    async with TestClient(TestServer(emulator.app)) as client:
        headers = {"Authorization": f"Bearer {await token_for(client, BRIDGE)}"}
        response = await client.post(
            "/data/CustomersV3",
            json={"CustomerAccount": "C", "CustomerGroupId": "10"},
            headers=headers,
        )
        created = await response.json()
        assert created["ModifiedDateTime1"] != "1900-01-01T12:00:00Z"
        response = await client.get(
            "/data/CustomersV3?$filter=ModifiedDateTime1 gt 2000-01-01T00:00:00Z&$select=CustomerAccount",
            headers=headers,
        )
        assert [c["CustomerAccount"] for c in (await response.json())["value"]] == ["C"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("BRIDGE_EMULATOR__DEFAULT_COMPANY", "usrt")
    monkeypatch.setenv("BRIDGE_EMULATOR__COMPANIES", '["usrt","frrt"]')
    monkeypatch.setenv("BRIDGE_EMULATOR__CLIENT_SECRET", "s3cret")
    settings = EmulatorSettings()
    assert settings.default_company == "usrt"
    assert settings.companies == ("usrt", "frrt")
    assert settings.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
