"""Paging stays consistent when rows change between pages: no row is skipped, none repeated.

Dataverse pages by position (its paging cookie carries the last row's sort values and id),
so a write between two page requests must not shift what the next page starts with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.unit.emulators.support import API, SalesHarness

PAGE = {"Prefer": "odata.maxpagesize=2"}
TRACK_PAGED = {"Prefer": "odata.track-changes,odata.maxpagesize=2"}


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def create(sales: SalesHarness, name: str) -> str:
    _, body = await sales.json(
        "POST", f"{API}/accounts", json={"name": name}, headers={"Prefer": "return=representation"}
    )
    return str(body["accountid"])


async def rename(sales: SalesHarness, account_id: str, name: str) -> None:
    status, _ = await sales.json("PATCH", f"{API}/accounts({account_id})", json={"name": name})
    assert status == 204


async def rest_of(sales: SalesHarness, page: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Follow ``page``'s nextLinks; returns the rows of the following pages and the last page."""
    rows: list[Any] = []
    while "@odata.nextLink" in page:
        _, page = await sales.json("GET", relative(page["@odata.nextLink"]), headers=PAGE)
        rows += page["value"]
    return rows, page


def ids(rows: list[Any]) -> list[str]:
    return [row.get("accountid") or row["id"] for row in rows]


async def test_query_paging_survives_a_delete_of_a_row_already_read(sales: SalesHarness) -> None:
    accounts = [await create(sales, f"A{i}") for i in range(5)]
    _, first = await sales.json("GET", f"{API}/accounts?$select=name", headers=PAGE)
    assert ids(first["value"]) == accounts[:2]
    await sales.json("DELETE", f"{API}/accounts({accounts[0]})")
    rest, _ = await rest_of(sales, first)
    assert ids(rest) == accounts[2:]


async def test_query_paging_survives_an_insert_before_the_position(sales: SalesHarness) -> None:
    accounts = [await create(sales, f"B{i}") for i in range(5)]
    _, first = await sales.json("GET", f"{API}/accounts?$select=name&$orderby=name", headers=PAGE)
    assert ids(first["value"]) == accounts[:2]
    await create(sales, "A sorts first")
    rest, _ = await rest_of(sales, first)
    assert ids(rest) == accounts[2:]


async def test_initial_sync_pages_survive_an_update_of_a_row_already_read(
    sales: SalesHarness,
) -> None:
    accounts = [await create(sales, f"C{i}") for i in range(5)]
    _, first = await sales.json("GET", f"{API}/accounts?$select=name", headers=TRACK_PAGED)
    assert ids(first["value"]) == accounts[:2]
    await rename(sales, accounts[0], "C0 renamed")
    rest, last = await rest_of(sales, first)
    assert ids(rest) == accounts[2:]
    _, delta = await sales.json("GET", relative(last["@odata.deltaLink"]))
    assert ids(delta["value"]) == [accounts[0]]


async def test_delta_pages_survive_an_update_of_a_row_already_read(sales: SalesHarness) -> None:
    accounts = [await create(sales, f"D{i}") for i in range(5)]
    _, initial = await sales.json("GET", f"{API}/accounts?$select=name", headers=TRACK_PAGED)
    _, last = await rest_of(sales, initial)
    for index, account in enumerate(accounts):
        await rename(sales, account, f"D{index} v2")
    _, first = await sales.json("GET", relative(last["@odata.deltaLink"]), headers=PAGE)
    assert ids(first["value"]) == accounts[:2]
    await rename(sales, accounts[0], "D0 v3")
    rest, last = await rest_of(sales, first)
    assert ids(rest) == accounts[2:]
    _, delta = await sales.json("GET", relative(last["@odata.deltaLink"]))
    assert ids(delta["value"]) == [accounts[0]]


@pytest.mark.parametrize("deleted", [0, 3])
async def test_delta_pages_survive_a_delete_between_pages(
    sales: SalesHarness, deleted: int
) -> None:
    accounts = [await create(sales, f"E{i}") for i in range(4)]
    _, initial = await sales.json("GET", f"{API}/accounts?$select=name", headers=TRACK_PAGED)
    _, last = await rest_of(sales, initial)
    for index, account in enumerate(accounts):
        await rename(sales, account, f"E{index} v2")
    _, first = await sales.json("GET", relative(last["@odata.deltaLink"]), headers=PAGE)
    assert ids(first["value"]) == accounts[:2]
    await sales.json("DELETE", f"{API}/accounts({accounts[deleted]})")
    rest, last = await rest_of(sales, first)
    seen = ids(first["value"]) + ids(rest)
    assert set(seen) == set(accounts)
    _, delta = await sales.json("GET", relative(last["@odata.deltaLink"]))
    assert [(row["id"], row["reason"]) for row in delta["value"]] == [
        (accounts[deleted], "deleted")
    ]


async def test_descending_order_pages_by_position(sales: SalesHarness) -> None:
    accounts = [await create(sales, f"F{i}") for i in range(5)]
    _, first = await sales.json(
        "GET", f"{API}/accounts?$select=name&$orderby=name desc", headers=PAGE
    )
    assert ids(first["value"]) == accounts[::-1][:2]
    await sales.json("DELETE", f"{API}/accounts({accounts[4]})")
    await create(sales, "F9 sorts first, already passed")
    rest, _ = await rest_of(sales, first)
    assert ids(rest) == accounts[::-1][2:]


async def test_a_forged_skiptoken_is_refused(sales: SalesHarness) -> None:
    status, body = await sales.json("GET", f"{API}/accounts?$skiptoken=%3Ccookie%20/%3E")
    assert status == 400
    assert body["error"]["message"] == "The $skiptoken value is not valid."
