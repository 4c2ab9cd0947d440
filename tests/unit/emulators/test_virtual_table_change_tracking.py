"""Dataverse change tracking on F&O virtual tables: row-version change tracking (B.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.unit.emulators.p2c_support import released_product
from tests.unit.emulators.support import API, LinkedHarness

PRODUCTS = f"{API}/mserp_ecoresreleaseddistinctproductcdsentities"
TRACK = {"Prefer": "odata.track-changes"}
ID = "mserp_ecoresreleaseddistinctproductcdsentityid"


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def product_url(number: str, company: str = "usmf") -> str:
    return f"/data/CDSReleasedDistinctProducts(dataAreaId='{company}',ProductNumber='{number}')"


async def follow(linked: LinkedHarness, link: str, **headers: str) -> tuple[int, Any]:
    return await linked.sales.json("GET", relative(link), headers=headers)


async def initial(linked: LinkedHarness) -> dict[str, Any]:
    status, body = await linked.sales.json(
        "GET",
        f"{PRODUCTS}?$select=mserp_productnumber,mserp_salesprice,versionnumber",
        headers=TRACK,
    )
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_initial_sync_then_delta_with_updates_and_deletes(linked: LinkedHarness) -> None:
    await released_product(linked.fno, "P1")
    await released_product(linked.fno, "P2")
    await released_product(linked.fno, "P3")
    first = await initial(linked)
    rows = {r["mserp_productnumber"]: r for r in first["value"]}
    assert list(rows) == ["P1", "P2", "P3"]
    assert "$deltatoken=" in first["@odata.deltaLink"]
    await linked.fno.json("PATCH", product_url("P2"), json={"SalesPrice": 99.0})
    await linked.fno.json("DELETE", product_url("P3"))
    await released_product(linked.fno, "P4", company="usrt")
    await released_product(linked.fno, "P5")
    await linked.fno.json("DELETE", product_url("P5"))
    status, delta = await follow(linked, first["@odata.deltaLink"])
    assert status == 200
    assert delta["@odata.context"].endswith(
        "$metadata#mserp_ecoresreleaseddistinctproductcdsentities"
        "(mserp_productnumber,mserp_salesprice,versionnumber)/$delta"
    )
    changed = [r for r in delta["value"] if "reason" not in r]
    assert [(r["mserp_productnumber"], r["mserp_salesprice"]) for r in changed] == [
        ("P2", 99.0),
        ("P4", 220.5),
    ]
    assert changed[0][ID] == rows["P2"][ID]
    deleted = [r for r in delta["value"] if "reason" in r]
    assert deleted[0] == {
        "@odata.context": linked.sales.client.make_url(
            f"{API}/$metadata#mserp_ecoresreleaseddistinctproductcdsentities/$deletedEntity"
        ).human_repr(),
        "id": rows["P3"][ID],
        "reason": "deleted",
    }
    assert len(deleted) == 2
    _, empty = await follow(linked, delta["@odata.deltaLink"])
    assert empty["value"] == []


async def test_a_key_deleted_and_created_again_is_a_new_row(linked: LinkedHarness) -> None:
    await released_product(linked.fno, "P1")
    first = await initial(linked)
    [old] = first["value"]
    await linked.fno.json("DELETE", product_url("P1"))
    await released_product(linked.fno, "P1", price=5.0)
    _, delta = await follow(linked, first["@odata.deltaLink"])
    [new, gone] = delta["value"]
    assert new["mserp_productnumber"] == "P1"
    assert new[ID] != old[ID]
    assert (gone["id"], gone["reason"]) == (old[ID], "deleted")


async def test_version_numbers_order_the_changes(linked: LinkedHarness) -> None:
    await released_product(linked.fno, "P1")
    await released_product(linked.fno, "P2")
    first = await initial(linked)
    versions = {r["mserp_productnumber"]: r["versionnumber"] for r in first["value"]}
    assert versions["P1"] < versions["P2"]
    await linked.fno.json("PATCH", product_url("P1"), json={"SalesPrice": 1.0})
    _, delta = await follow(linked, first["@odata.deltaLink"])
    [row] = delta["value"]
    assert row["versionnumber"] > versions["P2"]


def _token_at(link: str, moment: datetime) -> str:
    version = link.split("$deltatoken=")[1].split("%21")[0]
    stamp = quote(moment.strftime("%m/%d/%Y %H:%M:%S"), safe="")
    return f"{PRODUCTS}?$select=mserp_productnumber&$deltatoken={version}%21{stamp}"


@pytest.mark.parametrize(("age_days", "status"), [(9, 200), (11, 400)])
async def test_tokens_live_ten_days(linked: LinkedHarness, age_days: int, status: int) -> None:
    await released_product(linked.fno, "P1")
    first = await initial(linked)
    issued = datetime.now(UTC) - timedelta(days=age_days)
    answer, body = await linked.sales.json("GET", _token_at(first["@odata.deltaLink"], issued))
    assert answer == status
    if status == 400:
        assert body["error"] == {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. Please perform a full sync.",
        }


async def test_expiring_tracking_on_dataverse_expires_virtual_tokens(
    linked: LinkedHarness,
) -> None:
    first = await initial(linked)
    response = await linked.sales.client.post("/_emulator/change-tracking/expire")
    assert response.status == 200
    status, body = await follow(linked, first["@odata.deltaLink"])
    assert status == 400
    assert body["error"]["code"] == "0x80044352"


async def test_delta_paging_and_the_rejected_options(linked: LinkedHarness) -> None:
    first = await initial(linked)
    for number in range(5):
        await released_product(linked.fno, f"P{number}")
    _, page = await follow(linked, first["@odata.deltaLink"], Prefer="odata.maxpagesize=2")
    seen = [r["mserp_productnumber"] for r in page["value"]]
    await linked.fno.json("PATCH", product_url("P0"), json={"SalesPrice": 2.0})
    while "@odata.nextLink" in page:
        assert "@odata.deltaLink" not in page
        _, page = await follow(linked, page["@odata.nextLink"], Prefer="odata.maxpagesize=2")
        seen += [r["mserp_productnumber"] for r in page["value"]]
    assert seen == ["P0", "P1", "P2", "P3", "P4"]
    _, delta = await follow(linked, page["@odata.deltaLink"])
    assert [r["mserp_productnumber"] for r in delta["value"]] == ["P0"]
    status, error = await linked.sales.json(
        "GET", f"{PRODUCTS}?$filter=mserp_productnumber eq 'P1'", headers=TRACK
    )
    assert status == 400
    assert "isn't supported when Change Tracking is enabled" in error["error"]["message"]
