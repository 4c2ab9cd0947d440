"""F&O collection queries: filters, paging, $count, $expand, $batch (B.1)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from tests.unit.emulators.support import FnoHarness


async def seed(fno: FnoHarness, count: int) -> None:
    for index in range(count):
        status, _ = await fno.json(
            "POST",
            "/data/CustomersV3",
            json={
                "CustomerAccount": f"C-{index:03d}",
                "CustomerGroupId": "10",
                "OrganizationName": f"{'Retail' if index % 2 else 'Wholesale'} customer {index}",
                "IsExternallyMaintained": "Yes" if index < 2 else "No",
                "CreditLimit": index * 10,
            },
        )
        assert status == 201


async def test_filter_select_orderby_top_skip_count(fno: FnoHarness) -> None:
    await seed(fno, 6)
    status, body = await fno.json(
        "GET",
        "/data/CustomersV3?$filter=OrganizationName eq '*retail*'&$select=CustomerAccount,CreditLimit"
        "&$orderby=CreditLimit desc&$top=2&$skip=1&$count=true",
    )
    assert status == 200
    assert body["@odata.context"].endswith("$metadata#CustomersV3(CustomerAccount,CreditLimit)")
    assert body["@odata.count"] == 3
    assert [row["CustomerAccount"] for row in body["value"]] == ["C-003", "C-001"]
    assert set(body["value"][0]) == {"@odata.etag", "CustomerAccount", "CreditLimit"}


async def test_enum_filter(fno: FnoHarness) -> None:
    await seed(fno, 4)
    _, body = await fno.json(
        "GET",
        "/data/CustomersV3?$filter=IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'&$select=CustomerAccount",
    )
    assert [row["CustomerAccount"] for row in body["value"]] == ["C-000", "C-001"]
    status, body = await fno.json(
        "GET", "/data/CustomersV3?$filter=IsExternallyMaintained eq 'Yes'"
    )
    assert status == 400
    assert "incompatible types" in body["error"]["innererror"]["message"]


async def test_in_and_has_are_rejected(fno: FnoHarness) -> None:
    status, body = await fno.json("GET", "/data/CustomersV3?$filter=CustomerAccount in ('C-000')")
    assert status == 400
    assert "'in' operator is not supported" in body["error"]["innererror"]["message"]


async def test_count_segment_respects_company(fno: FnoHarness) -> None:
    await seed(fno, 3)
    await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": "D", "CustomerGroupId": "10", "dataAreaId": "demf"},
    )
    response = await fno.client.get("/data/CustomersV3/$count", headers=fno.bridge)
    assert await response.text() == "3"
    response = await fno.client.get(
        "/data/CustomersV3/$count?cross-company=true", headers=fno.bridge
    )
    assert await response.text() == "4"


async def test_server_paging_next_link(fno: FnoHarness) -> None:
    fno.emulator.api.page_size = 2
    await seed(fno, 5)
    url = "/data/CustomersV3?cross-company=true&$select=CustomerAccount"
    seen: list[str] = []
    links: list[str] = []
    while url:
        _, body = await fno.json("GET", url)
        seen += [row["CustomerAccount"] for row in body["value"]]
        link = body.get("@odata.nextLink")
        if link:
            links.append(link)
            parts = urlsplit(link)
            url = f"{parts.path}?{parts.query}"
        else:
            url = ""
    assert seen == [f"C-{i:03d}" for i in range(5)]
    assert links[0].endswith("cross-company=true&$select=CustomerAccount&$skip=2")
    _, body = await fno.json(
        "GET",
        "/data/CustomersV3?$select=CustomerAccount",
        headers={"Prefer": "odata.maxpagesize=1"},
    )
    assert len(body["value"]) == 1


async def test_client_top_larger_than_page(fno: FnoHarness) -> None:
    fno.emulator.api.page_size = 2
    await seed(fno, 5)
    _, body = await fno.json("GET", "/data/CustomersV3?$top=3&$select=CustomerAccount")
    assert len(body["value"]) == 2
    assert body["@odata.nextLink"].endswith("$skip=2&$top=1")


async def test_expand_one_level(fno: FnoHarness) -> None:
    await fno.json(
        "POST", "/data/CustomersV3", json={"CustomerAccount": "C", "CustomerGroupId": "10"}
    )
    _, order = await fno.json(
        "POST", "/data/CDSSalesOrderHeaders", json={"OrderingCustomerAccountNumber": "C"}
    )
    number = order["SalesOrderNumber"]
    for quantity in (1, 2):
        await fno.json(
            "POST",
            "/data/CDSSalesOrderLines",
            json={"SalesOrderNumber": number, "OrderedSalesQuantity": quantity},
        )
    _, body = await fno.json(
        "GET",
        f"/data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='{number}')?$expand=CDSSalesOrderLines($select=OrderedSalesQuantity)",
    )
    assert [line["OrderedSalesQuantity"] for line in body["CDSSalesOrderLines"]] == [1, 2]
    _, line = await fno.json(
        "GET",
        f"/data/CDSSalesOrderLines(dataAreaId='usmf',SalesOrderNumber='{number}',LineCreationSequenceNumber=1)?$expand=CDSSalesOrderHeader",
    )
    assert line["CDSSalesOrderHeader"]["SalesOrderNumber"] == number
    status, body = await fno.json(
        "GET", "/data/CDSSalesOrderHeaders?$expand=CDSSalesOrderLines($expand=CDSSalesOrderHeader)"
    )
    assert status == 400
    assert "too deep" in body["error"]["innererror"]["message"]


async def test_batch_change_set_rolls_back_and_batch_is_200(fno: FnoHarness) -> None:
    def part(method: str, url: str, body: dict[str, object], content_id: str) -> str:
        return (
            f"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {content_id}\r\n\r\n"
            f"{method} {url} HTTP/1.1\r\nContent-Type: application/json;odata.metadata=minimal\r\n\r\n{json.dumps(body)}"
        )

    base = str(fno.client.make_url("/data"))
    change_set = (
        "Content-Type: multipart/mixed; boundary=changeset_1\r\n\r\n"
        f"--changeset_1\r\n{part('POST', f'{base}/CustomersV3', {'CustomerAccount': 'B1', 'CustomerGroupId': '10'}, '1')}\r\n"
        f"--changeset_1\r\n{part('POST', f'{base}/CustomersV3', {'CustomerAccount': 'B1', 'CustomerGroupId': '10'}, '2')}\r\n"
        "--changeset_1--"
    )
    second = part(
        "POST", f"{base}/CustomersV3", {"CustomerAccount": "B2", "CustomerGroupId": "10"}, "3"
    )
    body = f"--batch_1\r\n{change_set}\r\n--batch_1\r\n{second}\r\n--batch_1--\r\n"
    response = await fno.client.post(
        "/data/$batch",
        data=body.encode(),
        headers={**fno.bridge, "Content-Type": "multipart/mixed; boundary=batch_1"},
    )
    assert response.status == 200
    text = await response.text()
    assert "HTTP/1.1 500 Internal Server Error" in text
    assert "HTTP/1.1 201 Created" in text
    _, customers = await fno.json("GET", "/data/CustomersV3?$select=CustomerAccount")
    assert [c["CustomerAccount"] for c in customers["value"]] == ["B2"]


async def test_service_document_and_metadata(fno: FnoHarness) -> None:
    _, body = await fno.json("GET", "/data/")
    assert {"name": "CustomersV3", "kind": "EntitySet", "url": "CustomersV3"} in body["value"]
    response = await fno.client.get("/data/$metadata", headers=fno.bridge)
    text = await response.text()
    assert '<EntityType Name="CustomerV3">' in text
    assert (
        '<EnumType Name="NoYes"><Member Name="No" Value="0" /><Member Name="Yes" Value="1" /></EnumType>'
        in text
    )


async def test_a_filter_of_full_keys_answers_as_a_scan_would(fno: FnoHarness) -> None:
    # keyed reads ((dataAreaId eq .. and CustomerAccount eq ..) or ...) come from the key index;
    # the same filter with a wildcard branch that matches nothing is answered by a scan
    await seed(fno, 4)
    status, _ = await fno.json(
        "POST",
        "/data/CustomersV3",
        json={"CustomerAccount": "C-001", "CustomerGroupId": "10", "dataAreaId": "demf"},
    )
    assert status == 201
    keyed = (
        "(dataAreaId eq 'USMF' and CustomerAccount eq 'c-001') or "
        "(CustomerAccount eq 'C-001' and dataAreaId eq 'demf') or "
        "(dataAreaId eq 'usmf' and CustomerAccount eq 'C-003') or "
        "(dataAreaId eq 'usmf' and CustomerAccount eq 'C-999')"
    )
    for cross_company, expected in (
        ("&cross-company=true", {("usmf", "C-001"), ("demf", "C-001"), ("usmf", "C-003")}),
        ("", {("usmf", "C-001"), ("usmf", "C-003")}),
    ):
        answers = []
        for text in (keyed, keyed + " or CustomerAccount eq 'ZZ*'"):
            status, body = await fno.json(
                "GET", f"/data/CustomersV3?$filter={text}{cross_company}&$orderby=dataAreaId"
            )
            assert status == 200
            answers.append([(r["dataAreaId"], r["CustomerAccount"]) for r in body["value"]])
        assert answers[0] == answers[1]
        assert set(answers[0]) == expected
