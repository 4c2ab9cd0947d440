"""Dataverse change tracking with delta links (dynamics-apis.md A.6)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.unit.emulators.support import API, SalesHarness

TRACK = {"Prefer": "odata.track-changes"}


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def create(sales: SalesHarness, name: str) -> str:
    _, body = await sales.json(
        "POST", f"{API}/accounts", json={"name": name}, headers={"Prefer": "return=representation"}
    )
    return str(body["accountid"])


async def follow(
    sales: SalesHarness, link: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    return await sales.json("GET", relative(link), headers=headers or {})


async def test_initial_sync_returns_rows_and_delta_link(sales: SalesHarness) -> None:
    first = await create(sales, "One")
    response = await sales.client.get(
        f"{API}/accounts?$select=name,accountnumber", headers={**sales.bridge, **TRACK}
    )
    assert response.headers["Preference-Applied"] == "odata.track-changes"
    body = await response.json()
    assert body["@odata.context"].endswith("$metadata#accounts(name,accountnumber)")
    assert list(body)[:2] == ["@odata.context", "@odata.deltaLink"]
    assert [row["accountid"] for row in body["value"]] == [first]
    token = unquote(body["@odata.deltaLink"].split("$deltatoken=")[1])
    assert re.fullmatch(r"\d+!\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}", token)
    assert "$select=name,accountnumber" in body["@odata.deltaLink"]


async def test_delta_reports_new_updated_then_deleted(sales: SalesHarness) -> None:
    kept = await create(sales, "Kept")
    removed = await create(sales, "Removed")
    _, initial = await sales.json("GET", f"{API}/accounts?$select=name", headers=TRACK)
    added = await create(sales, "Added")
    await sales.json("PATCH", f"{API}/accounts({kept})", json={"name": "Kept 2"})
    await sales.json("DELETE", f"{API}/accounts({removed})")
    transient = await create(sales, "Transient")
    await sales.json("DELETE", f"{API}/accounts({transient})")
    status, delta = await follow(sales, initial["@odata.deltaLink"])
    assert status == 200
    assert delta["@odata.context"].endswith("$metadata#accounts(name)/$delta")
    rows = delta["value"]
    assert [r.get("accountid") for r in rows[:2]] == [added, kept]
    assert rows[1]["name"] == "Kept 2"
    deleted = rows[2:]
    assert {d["id"] for d in deleted} == {removed, transient}
    for entry in deleted:
        assert entry["reason"] == "deleted"
        assert entry["@odata.context"].endswith("$metadata#accounts/$deletedEntity")
    _, empty = await follow(sales, delta["@odata.deltaLink"])
    assert empty["value"] == []


async def test_delta_count(sales: SalesHarness) -> None:
    _, initial = await sales.json("GET", f"{API}/accounts", headers=TRACK)
    await create(sales, "A")
    await create(sales, "B")
    token = initial["@odata.deltaLink"].split("$deltatoken=")[1]
    response = await sales.client.get(
        f"{API}/accounts/$count?$deltatoken={token}", headers=sales.bridge
    )
    assert await response.text() == "2"


async def test_paging_inside_change_tracking(sales: SalesHarness) -> None:
    ids = [await create(sales, f"A{i}") for i in range(5)]
    headers = {"Prefer": "odata.track-changes,odata.maxpagesize=2"}
    _, page = await sales.json("GET", f"{API}/accounts?$select=name", headers=headers)
    seen = [row["accountid"] for row in page["value"]]
    assert "@odata.deltaLink" not in page
    late = await create(sales, "Late")
    while "@odata.nextLink" in page:
        _, page = await follow(sales, page["@odata.nextLink"], {"Prefer": "odata.maxpagesize=2"})
        seen += [row["accountid"] for row in page["value"]]
    assert seen == ids
    assert "@odata.deltaLink" in page
    _, delta = await follow(sales, page["@odata.deltaLink"])
    assert [row["accountid"] for row in delta["value"]] == [late]


@pytest.mark.parametrize(
    "option", ["$filter=name eq 'x'", "$orderby=name", "$top=1", "$expand=primarycontactid"]
)
async def test_query_options_rejected_with_tracking(sales: SalesHarness, option: str) -> None:
    status, body = await sales.json("GET", f"{API}/accounts?{option}", headers=TRACK)
    assert status == 400
    name = option.split("=")[0]
    assert (
        body["error"]["message"]
        == f'The "{name}" query parameter isn\'t supported when Change Tracking is enabled.'
    )


async def test_expired_token(sales: SalesHarness) -> None:
    _, initial = await sales.json("GET", f"{API}/accounts", headers=TRACK)
    response = await sales.client.post("/_emulator/change-tracking/expire")
    assert response.status == 200
    status, body = await follow(sales, initial["@odata.deltaLink"])
    assert status == 400
    assert body == {
        "error": {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. Please perform a full sync.",
        }
    }
    _, fresh = await sales.json("GET", f"{API}/accounts", headers=TRACK)
    status, _ = await follow(sales, fresh["@odata.deltaLink"])
    assert status == 200


async def test_invalid_token_and_untracked_table(sales: SalesHarness) -> None:
    status, _ = await sales.json("GET", f"{API}/accounts?$deltatoken=garbage")
    assert status == 400
    status, body = await sales.json("GET", f"{API}/serviceendpoints", headers=TRACK)
    assert status == 400
    assert "not enabled" in body["error"]["message"]
