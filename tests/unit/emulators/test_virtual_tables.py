"""F&O entities as Dataverse virtual tables (mserp_*): names, keys, columns, queries, paging."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from tests.unit.emulators.p2c_support import customer, fno_create, fno_order, released_product
from tests.unit.emulators.support import API, LinkedHarness

CUSTOMERS = f"{API}/mserp_custcustomerv3entities"
PRODUCTS = f"{API}/mserp_ecoresreleaseddistinctproductcdsentities"
ORDERS = f"{API}/mserp_salesorderheadercdsentities"
NO, YES = 200_000_000, 200_000_001


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def fno_version(etag: str) -> int:
    """The record version inside an F&O ETag ``W/"<base64 of '0,<version>'>"``."""
    decoded = base64.b64decode(etag[3:-1]).decode()
    return int(decoded.strip("'").split(",")[1])


async def rows(linked: LinkedHarness, path: str, **headers: str) -> list[dict[str, Any]]:
    status, body = await linked.sales.json("GET", path, headers=headers)
    assert status == 200, body
    return list(body["value"])


async def test_metadata_names_the_virtual_tables_and_their_f_and_o_sources(
    linked: LinkedHarness,
) -> None:
    names = {
        "CDSReleasedDistinctProducts": "mserp_ecoresreleaseddistinctproductcdsentity",
        "CDSSalesOrderHeaders": "mserp_salesorderheadercdsentity",
        "CDSSalesOrderLines": "mserp_salesorderlinecdsentity",
        "SalesInvoiceHeadersV2": "mserp_salesinvoiceheaderv2entity",
        "SalesInvoiceV2Lines": "mserp_salesinvoicelinev2entity",
    }
    for logical in names.values():
        status, entity = await linked.sales.json(
            "GET", f"{API}/EntityDefinitions(LogicalName='{logical}')"
        )
        assert status == 200, entity
        assert entity["EntitySetName"] == f"{logical[:-1]}ies"
        assert entity["PrimaryIdAttribute"] == f"{logical}id"
        assert entity["PrimaryNameAttribute"] == "mserp_primaryfield"
        assert entity["TableType"] == "Virtual"
        assert entity["ChangeTrackingEnabled"] is True
    status, attribute = await linked.sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='mserp_salesorderheadercdsentity')"
        "/Attributes(LogicalName='mserp_salesordernumber')",
    )
    assert status == 200
    assert attribute["ExternalName"] == "SalesOrderNumber"
    assert attribute["AttributeType"] == "String"
    _, picklists = await linked.sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='mserp_salesorderheadercdsentity')/Attributes"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName"
        "&$expand=OptionSet($select=Name,IsGlobal,Options)",
    )
    by_name = {row["LogicalName"]: row["OptionSet"] for row in picklists["value"]}
    totals = by_name["mserp_aretotalsupdated"]
    assert totals["Name"] == "mserp_noyes"
    assert totals["IsGlobal"] is True
    assert [(o["Value"], o["ExternalValue"]) for o in totals["Options"]] == [
        (NO, "No"),
        (YES, "Yes"),
    ]
    _, service = await linked.sales.json("GET", f"{API}/")
    assert "mserp_salesorderlinecdsentities" in {row["name"] for row in service["value"]}


async def test_rows_carry_the_documented_keys_and_converted_values(linked: LinkedHarness) -> None:
    await customer(linked.fno, "US-001")
    await customer(linked.fno, "RT-001", company="usrt")
    status, fno_row = await linked.fno.json(
        "GET", "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"
    )
    assert status == 200
    [first, second] = await rows(linked, CUSTOMERS)
    assert first["mserp_custcustomerv3entityid"] == "00003a01-0000-0000-0000-005001000000"
    assert second["mserp_custcustomerv3entityid"] == "00003a01-0000-0000-0100-005001000000"
    assert first["mserp_primaryfield"] == "US-001"
    assert (first["mserp_dataareaid"], second["mserp_dataareaid"]) == ("usmf", "usrt")
    assert first["mserp_customeraccount"] == "US-001"
    assert first["mserp_customergroupid"] == "10"
    assert first["mserp_isexternallymaintained"] == YES
    assert first["mserp_onholdstatus"] == NO
    assert first["mserp_salesmemo"] == ""
    assert first["versionnumber"] == fno_version(fno_row["@odata.etag"])
    assert first["@odata.etag"] == f'W/"{first["versionnumber"]}"'
    dates = [name for name in first if name.startswith("mserp_") and name.endswith("date")]
    assert dates
    assert all(first[name] is None for name in dates)
    assert "dataAreaId" not in first


async def test_primary_field_joins_key_values_with_dates(linked: LinkedHarness) -> None:
    await customer(linked.fno, "US-001")
    await fno_create(
        linked.fno,
        "SalesInvoiceHeadersV2",
        {"InvoiceCustomerAccountNumber": "US-001", "InvoiceDate": "2026-01-05T12:00:00Z"},
    )
    [invoice] = await rows(linked, f"{API}/mserp_salesinvoiceheaderv2entities")
    assert invoice["mserp_primaryfield"] == "CIV-000001 | 1/5/2026 | ARI-000001"
    assert invoice["mserp_invoicedate"] == "2026-01-05T12:00:00Z"


async def test_read_by_id_with_select_etag_and_missing_rows(linked: LinkedHarness) -> None:
    await customer(linked.fno, "US-001")
    [row] = await rows(linked, CUSTOMERS)
    record_id = row["mserp_custcustomerv3entityid"]
    response = await linked.sales.client.get(
        f"{CUSTOMERS}({record_id})?$select=mserp_customeraccount", headers=linked.sales.bridge
    )
    assert response.status == 200
    body = await response.json()
    assert body["@odata.context"].endswith(
        "$metadata#mserp_custcustomerv3entities(mserp_customeraccount)/$entity"
    )
    assert body["mserp_customeraccount"] == "US-001"
    assert set(body) == {
        "@odata.context",
        "@odata.etag",
        "mserp_customeraccount",
        "mserp_custcustomerv3entityid",
    }
    unchanged = await linked.sales.client.get(
        f"{CUSTOMERS}({record_id})",
        headers={**linked.sales.bridge, "If-None-Match": response.headers["ETag"]},
    )
    assert unchanged.status == 304
    missing = "00003a01-0000-0000-0500-005001000000"
    status, error = await linked.sales.json("GET", f"{CUSTOMERS}({missing})")
    assert status == 404
    assert error["error"] == {
        "code": "0x80040217",
        "message": f"mserp_custcustomerv3entity With Id = {missing} Does Not Exist",
    }
    status, _ = await linked.sales.json("GET", f"{PRODUCTS}(00003a01-0000-0000-0000-005001000000)")
    assert status == 404


async def test_filter_orderby_count_and_formatted_values(linked: LinkedHarness) -> None:
    for number in ("P3", "P1", "P2"):
        await released_product(linked.fno, number, price=10.0)
    await released_product(linked.fno, "P9", company="demf")
    found = await rows(linked, f"{PRODUCTS}?$filter=mserp_productnumber eq 'p2'")
    assert [r["mserp_productnumber"] for r in found] == ["P2"]
    ordered = await rows(
        linked,
        f"{PRODUCTS}?$select=mserp_productnumber&$filter=mserp_dataareaid eq 'usmf'"
        "&$orderby=mserp_productnumber desc",
    )
    assert [r["mserp_productnumber"] for r in ordered] == ["P3", "P2", "P1"]
    _, counted = await linked.sales.json(
        "GET",
        f"{PRODUCTS}?$count=true&$filter=mserp_currencycode eq 'EUR'&$select=mserp_dataareaid",
    )
    assert counted["@odata.count"] == 1
    annotated = await rows(
        linked,
        f"{PRODUCTS}?$select=mserp_producttype&$top=1",
        Prefer='odata.include-annotations="*"',
    )
    assert annotated[0]["mserp_producttype"] == NO
    assert annotated[0]["mserp_producttype@OData.Community.Display.V1.FormattedValue"] == "Item"
    response = await linked.sales.client.get(
        f"{PRODUCTS}/$count?$filter=mserp_producttype eq {NO}", headers=linked.sales.bridge
    )
    assert await response.text() == "4"


async def test_paging_keeps_its_position_while_f_and_o_changes(linked: LinkedHarness) -> None:
    for number in range(5):
        await released_product(linked.fno, f"P{number}")
    page_size = {"Prefer": "odata.maxpagesize=2"}
    _, page = await linked.sales.json(
        "GET", f"{PRODUCTS}?$select=mserp_productnumber", headers=page_size
    )
    seen = [r["mserp_productnumber"] for r in page["value"]]
    status, _ = await linked.fno.json(
        "DELETE", "/data/CDSReleasedDistinctProducts(dataAreaId='usmf',ProductNumber='P0')"
    )
    assert status == 204
    while "@odata.nextLink" in page:
        _, page = await linked.sales.json(
            "GET", relative(page["@odata.nextLink"]), headers=page_size
        )
        seen += [r["mserp_productnumber"] for r in page["value"]]
    assert seen == ["P0", "P1", "P2", "P3", "P4"]


async def test_writes_are_not_emulated(linked: LinkedHarness) -> None:
    await customer(linked.fno, "US-001")
    [row] = await rows(linked, CUSTOMERS)
    record = f"{CUSTOMERS}({row['mserp_custcustomerv3entityid']})"
    for method, path in (("POST", CUSTOMERS), ("PATCH", record), ("DELETE", record)):
        status, body = await linked.sales.json(method, path, json={})
        assert status == 405
        assert "read-only" in body["error"]["message"]


async def test_f_and_o_computed_fields_show_as_read_now(linked: LinkedHarness) -> None:
    await customer(linked.fno, "US-001", external="No")
    await released_product(linked.fno, "P1")
    await fno_order(linked.fno, "US-001", [{"ProductNumber": "P1", "OrderedSalesQuantity": 1}])
    [order] = await rows(linked, f"{ORDERS}?$select=mserp_orderingcustomerisexternallymaintained")
    assert order["mserp_orderingcustomerisexternallymaintained"] == NO
    status, _ = await linked.fno.json(
        "PATCH",
        "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')",
        json={"IsExternallyMaintained": "Yes"},
    )
    assert status == 204
    [again] = await rows(linked, f"{ORDERS}?$select=mserp_orderingcustomerisexternallymaintained")
    assert again["mserp_orderingcustomerisexternallymaintained"] == YES
    assert again["@odata.etag"] == order["@odata.etag"]


async def test_unknown_enum_symbols_get_option_values_as_they_appear(
    linked: LinkedHarness,
) -> None:
    await released_product(linked.fno, "P1")
    status, _ = await linked.fno.json(
        "PATCH",
        "/data/CDSReleasedDistinctProducts(dataAreaId='usmf',ProductNumber='P1')",
        json={"ServiceType": "Consumable"},
    )
    assert status == 204
    [product] = await rows(linked, f"{PRODUCTS}?$select=mserp_servicetype")
    assert product["mserp_servicetype"] >= 200_000_000
    _, attribute = await linked.sales.json(
        "GET",
        f"{API}/EntityDefinitions(LogicalName='mserp_ecoresreleaseddistinctproductcdsentity')"
        "/Attributes(LogicalName='mserp_servicetype')"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet",
    )
    last = attribute["OptionSet"]["Options"][-1]
    assert (last["Value"], last["ExternalValue"]) == (product["mserp_servicetype"], "Consumable")
    assert attribute["OptionSet"]["Name"] == "mserp_ecoresproductservicetype"
