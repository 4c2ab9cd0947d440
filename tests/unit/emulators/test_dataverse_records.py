"""Dataverse create/read/update/upsert/delete semantics (dynamics-apis.md A.4)."""

from __future__ import annotations

import re
import uuid

import pytest

from bridge.emulators.common.principals import stable_id
from tests.unit.emulators.support import API, SalesHarness

USD = stable_id("transactioncurrency", "USD")


async def create_account(sales: SalesHarness, **fields: object) -> str:
    response = await sales.client.post(
        f"{API}/accounts", json={"name": "Contoso", **fields}, headers=sales.bridge
    )
    assert response.status == 204, await response.text()
    entity_id = response.headers["OData-EntityId"]
    match = re.search(r"accounts\(([0-9a-f-]{36})\)$", entity_id)
    assert match, entity_id
    return match.group(1)


async def test_create_returns_204_and_entity_id(sales: SalesHarness) -> None:
    response = await sales.client.post(
        f"{API}/accounts", json={"name": "Contoso"}, headers=sales.bridge
    )
    assert response.status == 204
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["OData-EntityId"].startswith(
        f"http://{response.url.host}:{response.url.port}{API}/accounts("
    )
    assert re.fullmatch(r'W/"\d+"', response.headers["ETag"])


async def test_create_with_representation_returns_201_and_body(sales: SalesHarness) -> None:
    status, body = await sales.json(
        "POST",
        f"{API}/accounts?$select=name,accountnumber,creditlimit",
        json={
            "name": "Contoso",
            "creditlimit": 1000,
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({USD})",
        },
        headers={"Prefer": "return=representation"},
    )
    assert status == 201
    assert body["@odata.context"].endswith(
        "$metadata#accounts(name,accountnumber,creditlimit)/$entity"
    )
    assert body["name"] == "Contoso"
    assert body["creditlimit"] == 1000.0
    assert re.fullmatch(r"ACC-\d{5}-[A-Z]{6}", body["accountnumber"])
    assert "telephone1" not in body
    assert uuid.UUID(body["accountid"])


async def test_record_has_platform_columns(sales: SalesHarness) -> None:
    account = await create_account(sales, customertypecode=3)
    status, body = await sales.json("GET", f"{API}/accounts({account})")
    assert status == 200
    assert body["@odata.context"].endswith("$metadata#accounts/$entity")
    assert body["@odata.etag"] == f'W/"{body["versionnumber"]}"'
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["createdon"])
    assert body["modifiedon"] == body["createdon"]
    principal = sales.emulator.directory.get("bridge-local")
    assert principal is not None
    assert body["_createdby_value"] == principal.systemuser_id
    assert body["_modifiedby_value"] == principal.systemuser_id
    assert body["_ownerid_value"] == principal.systemuser_id
    assert (body["statecode"], body["statuscode"]) == (0, 1)
    assert body["telephone1"] is None


async def test_name_is_required_and_unknown_properties_are_rejected(sales: SalesHarness) -> None:
    status, body = await sales.json("POST", f"{API}/accounts", json={"telephone1": "555"})
    assert status == 400
    assert "name" in body["error"]["message"]
    status, body = await sales.json("POST", f"{API}/accounts", json={"name": "A", "x": 1})
    assert status == 400
    assert (
        body["error"]["message"]
        == "Invalid property 'x' was found in entity 'Microsoft.Dynamics.CRM.account'."
    )
    assert body["error"]["code"] == "0x80060888"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "A", "customertypecode": 99}, "outside the valid range"),
        ({"name": "A", "customertypecode": "3"}, "Cannot convert"),
        ({"name": "x" * 161}, "exceeded the maximum allowed length of '160'"),
        ({"name": "A", "creditlimit": "lots"}, "Cannot convert"),
        ({"name": "A", "creditonhold": "yes"}, "Cannot convert"),
        ({"name": "A", "_parentaccountid_value": "x"}, "Invalid property"),
        (
            {
                "name": "A",
                "parentaccountid@odata.bind": "contacts(0e8e6a3d-1e2f-4b1a-9f6a-0d2b1f3c4a5b)",
            },
            "",
        ),
    ],
)
async def test_invalid_values(sales: SalesHarness, body: dict[str, object], fragment: str) -> None:
    status, error = await sales.json("POST", f"{API}/accounts", json=body)
    assert status in (400, 404)
    assert fragment in error["error"]["message"]


async def test_bind_to_missing_record_is_404(sales: SalesHarness) -> None:
    missing = str(uuid.uuid4())
    status, body = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "A", "parentaccountid@odata.bind": f"accounts({missing})"},
    )
    assert status == 404
    assert body["error"] == {
        "code": "0x80040217",
        "message": f"account With Id = {missing} Does Not Exist",
    }


async def test_lookup_bind_forms_including_alternate_key(sales: SalesHarness) -> None:
    parent = await create_account(sales, accountnumber="PARENT-1")
    forms = [
        f"accounts({parent})",
        f"/accounts({parent})",
        f"{sales.client.make_url(API)}/accounts({parent})",
        "accounts(accountnumber='PARENT-1')",
    ]
    for form in forms:
        child = await create_account(sales, **{"parentaccountid@odata.bind": form})
        status, body = await sales.json(
            "GET", f"{API}/accounts({child})?$select=_parentaccountid_value"
        )
        assert body["_parentaccountid_value"] == parent, form
    status, _ = await sales.json(
        "POST",
        f"{API}/accounts",
        json={"name": "A", "parentaccountid@odata.bind": "accounts(accountnumber='NOPE')"},
    )
    assert status == 404


async def test_polymorphic_customer_lookup(sales: SalesHarness) -> None:
    account = await create_account(sales)
    status, body = await sales.json(
        "POST",
        f"{API}/salesorders",
        json={"name": "SO", "customerid_account@odata.bind": f"accounts({account})"},
        headers={"Prefer": 'return=representation,odata.include-annotations="*"'},
    )
    assert status == 201
    assert body["_customerid_value"] == account
    assert body["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert (
        body["_customerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"]
        == "customerid_account"
    )
    assert body["_customerid_value@OData.Community.Display.V1.FormattedValue"] == "Contoso"
    assert re.fullmatch(r"ORD-\d{5}-[A-Z]{6}", body["ordernumber"])


async def test_get_by_alternate_key_and_404s(sales: SalesHarness) -> None:
    account = await create_account(sales, accountnumber="A1")
    status, body = await sales.json("GET", f"{API}/accounts(accountnumber='A1')?$select=name")
    assert status == 200
    assert body["accountid"] == account
    status, body = await sales.json("GET", f"{API}/accounts(accountnumber='NOPE')")
    assert status == 404
    assert body["error"]["code"] == "0x80060891"
    missing = str(uuid.uuid4())
    status, body = await sales.json("GET", f"{API}/accounts({missing})")
    assert status == 404
    assert body["error"]["message"] == f"account With Id = {missing} Does Not Exist"
    status, body = await sales.json("GET", f"{API}/accounts(telephone1='1')")
    assert status == 400


async def test_alternate_key_must_be_unique(sales: SalesHarness) -> None:
    await create_account(sales, accountnumber="DUP")
    status, body = await sales.json(
        "POST", f"{API}/accounts", json={"name": "B", "accountnumber": "dup"}
    )
    assert status == 412
    assert body["error"]["code"] == "0x80060892"


async def test_patch_updates_and_bumps_version(sales: SalesHarness) -> None:
    account = await create_account(sales)
    _, before = await sales.json("GET", f"{API}/accounts({account})")
    response = await sales.client.patch(
        f"{API}/accounts({account})", json={"telephone1": "555"}, headers=sales.user
    )
    assert response.status == 204
    assert response.headers["OData-EntityId"].endswith(f"accounts({account})")
    _, after = await sales.json("GET", f"{API}/accounts({account})")
    assert after["telephone1"] == "555"
    assert after["versionnumber"] > before["versionnumber"]
    user = sales.emulator.directory.get("p2c-user")
    assert user is not None
    assert after["_modifiedby_value"] == user.systemuser_id
    assert after["_createdby_value"] != user.systemuser_id


async def test_patch_is_upsert_by_id(sales: SalesHarness) -> None:
    new_id = str(uuid.uuid4())
    status, body = await sales.json(
        "PATCH",
        f"{API}/accounts({new_id})",
        json={"name": "New"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 201
    assert body["accountid"] == new_id
    status, body = await sales.json(
        "PATCH",
        f"{API}/accounts({new_id})",
        json={"name": "Again"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 200
    assert body["name"] == "Again"


async def test_upsert_by_alternate_key(sales: SalesHarness) -> None:
    status, created = await sales.json(
        "PATCH",
        f"{API}/accounts(accountnumber='ALT-1')",
        json={"name": "Alt"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 201
    assert created["accountnumber"] == "ALT-1"
    status, updated = await sales.json(
        "PATCH",
        f"{API}/accounts(accountnumber='ALT-1')",
        json={"name": "Alt 2", "accountnumber": "CHANGED"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 200
    assert updated["accountid"] == created["accountid"]
    assert updated["accountnumber"] == "ALT-1"
    assert updated["name"] == "Alt 2"


async def test_multi_part_alternate_key_with_lookup(sales: SalesHarness) -> None:
    account = await create_account(sales)
    _, order = await sales.json(
        "POST",
        f"{API}/salesorders",
        json={"name": "SO", "customerid_account@odata.bind": f"accounts({account})"},
        headers={"Prefer": "return=representation"},
    )
    order_id = order["salesorderid"]
    url = f"{API}/salesorderdetails(_salesorderid_value={order_id},sequencenumber=1)"
    status, line = await sales.json(
        "PATCH",
        url,
        json={"quantity": 2, "priceperunit": 10.5},
        headers={"Prefer": "return=representation"},
    )
    assert status == 201
    assert line["_salesorderid_value"] == order_id
    assert line["sequencenumber"] == 1
    assert line["baseamount"] == 21.0
    assert line["extendedamount"] == 21.0
    status, again = await sales.json("GET", url)
    assert status == 200
    assert again["salesorderdetailid"] == line["salesorderdetailid"]


async def test_if_match_star_is_update_only(sales: SalesHarness) -> None:
    missing = str(uuid.uuid4())
    status, body = await sales.json(
        "PATCH", f"{API}/accounts({missing})", json={"name": "X"}, headers={"If-Match": "*"}
    )
    assert status == 404
    assert body["error"]["message"] == f"account With Id = {missing} Does Not Exist"
    account = await create_account(sales)
    status, _ = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"name": "Y"}, headers={"If-Match": "*"}
    )
    assert status == 204


async def test_if_none_match_star_is_create_only(sales: SalesHarness) -> None:
    account = await create_account(sales)
    status, body = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"name": "Y"}, headers={"If-None-Match": "*"}
    )
    assert status == 412
    assert body["error"]["message"] == "A record with matching key values already exists."
    status, _ = await sales.json(
        "PATCH",
        f"{API}/accounts({uuid.uuid4()})",
        json={"name": "Y"},
        headers={"If-None-Match": "*"},
    )
    assert status == 204
    status, _ = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"name": "Z"}, headers={"If-None-Match": "null"}
    )
    assert status == 204


async def test_stale_etag_is_412_on_patch_and_delete(sales: SalesHarness) -> None:
    account = await create_account(sales)
    _, record = await sales.json("GET", f"{API}/accounts({account})")
    etag = record["@odata.etag"]
    status, _ = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"name": "1"}, headers={"If-Match": etag}
    )
    assert status == 204
    status, body = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"name": "2"}, headers={"If-Match": etag}
    )
    assert status == 412
    assert body["error"] == {
        "code": "0x80060882",
        "message": "The version of the existing record doesn't match the RowVersion property provided.",
    }
    status, _ = await sales.json("DELETE", f"{API}/accounts({account})", headers={"If-Match": etag})
    assert status == 412


async def test_get_if_none_match_returns_304_when_unchanged(sales: SalesHarness) -> None:
    account = await create_account(sales)
    _, record = await sales.json("GET", f"{API}/accounts({account})")
    etag = record["@odata.etag"]
    response = await sales.client.get(
        f"{API}/accounts({account})", headers={**sales.bridge, "If-None-Match": etag}
    )
    assert response.status == 304
    await sales.json("PATCH", f"{API}/accounts({account})", json={"name": "changed"})
    response = await sales.client.get(
        f"{API}/accounts({account})", headers={**sales.bridge, "If-None-Match": etag}
    )
    assert response.status == 200


async def test_delete(sales: SalesHarness) -> None:
    account = await create_account(sales)
    status, _ = await sales.json("DELETE", f"{API}/accounts({account})")
    assert status == 204
    status, body = await sales.json("DELETE", f"{API}/accounts({account})")
    assert status == 404
    assert body["error"]["message"] == f"account With Id = {account} Does Not Exist"
    status, _ = await sales.json("DELETE", f"{API}/accounts")
    assert status == 405


async def test_state_and_status_stay_consistent(sales: SalesHarness) -> None:
    account = await create_account(sales)
    await sales.json("PATCH", f"{API}/accounts({account})", json={"statecode": 1})
    _, body = await sales.json("GET", f"{API}/accounts({account})?$select=statecode,statuscode")
    assert (body["statecode"], body["statuscode"]) == (1, 2)
    status, _ = await sales.json(
        "PATCH", f"{API}/accounts({account})", json={"statecode": 0, "statuscode": 2}
    )
    assert status == 400


async def test_contact_number_and_fullname(sales: SalesHarness) -> None:
    status, contact = await sales.json(
        "POST",
        f"{API}/contacts",
        json={"firstname": "Ada", "lastname": "Lovelace"},
        headers={"Prefer": "return=representation"},
    )
    assert status == 201
    assert contact["fullname"] == "Ada Lovelace"
    assert re.fullmatch(r"CON-\d{5}-[A-Z]{6}", contact["msdynce_contactnumber"])
    status, body = await sales.json(
        "GET", f"{API}/contacts(msdynce_contactnumber='{contact['msdynce_contactnumber']}')"
    )
    assert body["contactid"] == contact["contactid"]


async def test_single_property_and_reference_operations(sales: SalesHarness) -> None:
    account = await create_account(sales, telephone1="1")
    other = await create_account(sales)
    status, body = await sales.json("GET", f"{API}/accounts({account})/telephone1")
    assert (status, body["value"]) == (200, "1")
    status, _ = await sales.json(
        "PUT", f"{API}/accounts({account})/telephone1", json={"value": "2"}
    )
    assert status == 204
    status, _ = await sales.json("DELETE", f"{API}/accounts({account})/telephone1")
    assert status == 204
    status, _ = await sales.json("GET", f"{API}/accounts({account})/telephone1")
    assert status == 204
    status, _ = await sales.json(
        "PUT",
        f"{API}/accounts({account})/parentaccountid/$ref",
        json={"@odata.id": f"accounts({other})"},
    )
    assert status == 204
    _, body = await sales.json("GET", f"{API}/accounts({account})?$select=_parentaccountid_value")
    assert body["_parentaccountid_value"] == other
    await sales.json("DELETE", f"{API}/accounts({account})/parentaccountid/$ref")
    _, body = await sales.json("GET", f"{API}/accounts({account})?$select=_parentaccountid_value")
    assert body["_parentaccountid_value"] is None


async def test_unknown_entity_set_and_older_versions(sales: SalesHarness) -> None:
    status, body = await sales.json("GET", f"{API}/widgets")
    assert status == 404
    assert body["error"]["message"] == "Resource not found for the segment 'widgets'."
    response = await sales.client.get("/api/data/v9.0/accounts", headers=sales.bridge)
    assert response.status == 200
