"""Dataverse metadata, WhoAmI and $batch (A.7)."""

from __future__ import annotations

import json
import re

from tests.unit.emulators.support import API, SalesHarness


async def test_whoami_returns_the_callers_systemuser(sales: SalesHarness) -> None:
    _, bridge = await sales.json("GET", f"{API}/WhoAmI")
    _, user = await sales.json("GET", f"{API}/WhoAmI()", as_user=True)
    assert set(bridge) >= {"BusinessUnitId", "UserId", "OrganizationId"}
    assert bridge["UserId"] != user["UserId"]
    assert bridge["OrganizationId"] == user["OrganizationId"]
    _, systemuser = await sales.json(
        "GET",
        f"{API}/systemusers({bridge['UserId']})?$select=fullname,azureactivedirectoryobjectid",
    )
    assert systemuser["fullname"] == "Bridge integration"


async def test_entity_definitions(sales: SalesHarness) -> None:
    status, body = await sales.json(
        "GET",
        f"{API}/EntityDefinitions?$filter=LogicalName eq 'account'&$select=EntitySetName,PrimaryIdAttribute,LogicalName",
    )
    assert status == 200
    [account] = body["value"]
    assert account["EntitySetName"] == "accounts"
    assert account["PrimaryIdAttribute"] == "accountid"
    assert "ObjectTypeCode" not in account
    _, single = await sales.json("GET", f"{API}/EntityDefinitions(LogicalName='contact')")
    assert single["PrimaryNameAttribute"] == "fullname"
    assert single["ChangeTrackingEnabled"] is True
    status, _ = await sales.json("GET", f"{API}/EntityDefinitions(LogicalName='nope')")
    assert status == 404


async def test_attributes_metadata(sales: SalesHarness) -> None:
    _, body = await sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,AttributeType",
    )
    types = {row["LogicalName"]: row["AttributeType"] for row in body["value"]}
    assert types["name"] == "String"
    assert types["creditlimit"] == "Money"
    assert types["customertypecode"] == "Picklist"
    assert types["parentaccountid"] == "Lookup"
    assert types["statecode"] == "State"
    assert types["ownerid"] == "Owner"
    _, filtered = await sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='account')/Attributes?$filter=AttributeType eq 'Money'&$select=LogicalName",
    )
    assert {row["LogicalName"] for row in filtered["value"]} == {"creditlimit", "revenue"}


async def test_picklist_option_sets(sales: SalesHarness) -> None:
    url = (
        f"{API}/EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        "?$select=LogicalName&$expand=OptionSet($select=Options)"
    )
    status, body = await sales.json("GET", url)
    assert status == 200
    by_name = {row["LogicalName"]: row for row in body["value"]}
    assert "name" not in by_name
    options = by_name["customertypecode"]["OptionSet"]["Options"]
    labels = {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in options}
    assert labels[3] == "Customer"
    assert labels[1] == "Competitor"
    _, single = await sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='account')/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata?$expand=OptionSet",
    )
    assert {o["Value"]: o["State"] for o in single["OptionSet"]["Options"]} == {1: 0, 2: 1}


async def test_service_document_and_csdl(sales: SalesHarness) -> None:
    _, body = await sales.json("GET", f"{API}/")
    assert {"name": "accounts", "kind": "EntitySet", "url": "accounts"} in body["value"]
    response = await sales.client.get(f"{API}/$metadata", headers=sales.bridge)
    text = await response.text()
    assert '<EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account">' in text
    assert "Org.OData.Capabilities.V1.ChangeTracking" in text


def batch_body(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"


def http_part(
    method: str, url: str, body: dict[str, object] | None = None, content_id: str | None = None
) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    payload = json.dumps(body) if body is not None else ""
    return f"{head}\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{payload}"


def change_set(boundary: str, parts: list[str]) -> str:
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n" + batch_body(
        boundary, parts
    )


async def post_batch(sales: SalesHarness, body: str, prefer: str | None = None) -> tuple[int, str]:
    headers = {**sales.bridge, "Content-Type": "multipart/mixed; boundary=batch_AAA"}
    if prefer:
        headers["Prefer"] = prefer
    response = await sales.client.post(f"{API}/$batch", data=body.encode(), headers=headers)
    return response.status, await response.text()


async def test_batch_change_set_with_content_id_references(sales: SalesHarness) -> None:
    body = batch_body(
        "batch_AAA",
        [
            change_set(
                "changeset_B",
                [
                    http_part("POST", f"{API}/accounts", {"name": "Batch parent"}, "1"),
                    http_part(
                        "POST",
                        f"{API}/contacts",
                        {"lastname": "Child", "parentcustomerid_account@odata.bind": "$1"},
                        "2",
                    ),
                    http_part("PATCH", "$1", {"telephone1": "555"}, "3"),
                ],
            ),
            http_part("GET", f"{API}/accounts?$select=name,telephone1"),
        ],
    )
    status, text = await post_batch(sales, body)
    assert status == 200
    assert text.count("HTTP/1.1 204 No Content") == 3
    assert "Content-ID: 2" in text
    assert "changesetresponse_" in text
    assert '"telephone1":"555"' in text


async def test_batch_change_set_is_atomic_and_stops_on_error(sales: SalesHarness) -> None:
    body = batch_body(
        "batch_AAA",
        [
            change_set(
                "changeset_B",
                [
                    http_part("POST", f"{API}/accounts", {"name": "Rolled back"}, "1"),
                    http_part("POST", f"{API}/accounts", {"name": "x" * 500}, "2"),
                ],
            ),
            http_part("POST", f"{API}/accounts", {"name": "Never"}),
        ],
    )
    status, text = await post_batch(sales, body)
    assert status == 400
    assert "HTTP/1.1 400 Bad Request" in text
    assert "0x80044331" in text
    _, accounts = await sales.json("GET", f"{API}/accounts?$select=name")
    assert accounts["value"] == []


async def test_batch_continue_on_error(sales: SalesHarness) -> None:
    body = batch_body(
        "batch_AAA",
        [
            http_part("POST", f"{API}/accounts", {"bogus": 1}),
            http_part("POST", f"{API}/accounts", {"name": "Second"}),
        ],
    )
    status, text = await post_batch(sales, body, prefer="odata.continue-on-error")
    assert status == 200
    assert re.search(r"HTTP/1.1 400 Bad Request.*HTTP/1.1 204 No Content", text, re.DOTALL)
    _, accounts = await sales.json("GET", f"{API}/accounts?$select=name")
    assert [a["name"] for a in accounts["value"]] == ["Second"]


async def test_batch_reference_to_undeclared_content_id(sales: SalesHarness) -> None:
    body = batch_body(
        "batch_AAA", [change_set("changeset_B", [http_part("PATCH", "$9", {"name": "x"}, "1")])]
    )
    status, text = await post_batch(sales, body)
    assert status == 400
    assert "Content-ID Reference: '$9' does not exist in the batch context." in text
