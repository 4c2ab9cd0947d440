"""Paged reads of Dataverse (snapshots) and F&O (targets) over httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bridge.config import CompanySettings, FnoSettings, SalesSettings
from bridge.contract.catalog import source_entity
from bridge.contract.envelope import Capture, Operation, System
from bridge.dataverse.snapshots import DataverseSnapshots
from bridge.fno.snapshots import FnoSnapshots
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.mapping.loader import load_templates
from bridge.ops.snapshots import snapshot_source
from bridge.ops.targets import (
    DataverseTargetRecords,
    FnoTargetRecords,
    target_columns,
    target_records,
)
from bridge.sources.snapshots import SnapshotPage, SnapshotSource

FAST = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.01)
ACCOUNT = source_entity(System.SALES, "account")
ACCOUNTS = load_templates()["accounts"]
PRODUCT = source_entity(System.FNO, "product")


def row(n: int) -> dict[str, Any]:
    return {
        "@odata.etag": f'W/"{n}"',
        "accountid": f"0000000{n}-0000-0000-0000-000000000000",
        "accountnumber": f"ACC-{n}",
        "name": f"Account {n}",
        "versionnumber": 100 + n,
        "modifiedon": "2026-01-01T00:00:00Z",
        "_modifiedby_value": "22222222-2222-2222-2222-222222222222",
    }


class PagedService:
    """Answers a collection in pages of two with a nextLink, records what it was asked."""

    def __init__(self, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
        self.rows = rows
        self.extra = extra or {}
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        self.requests.append(request)
        start = int(request.url.params.get("page", "0"))
        body: dict[str, Any] = {"value": self.rows[start : start + 2], **self.extra}
        if start + 2 < len(self.rows):
            body["@odata.nextLink"] = str(request.url.copy_with(params={"page": start + 2}))
        return httpx.Response(200, content=json.dumps(body).encode())


def client(service: PagedService, settings: SalesSettings | FnoSettings) -> ApiClient:
    path = settings.api_path
    return ApiClient(settings, path, FAST, transport=httpx.MockTransport(service.handle))


async def pages(source: SnapshotSource, cursor: str | None = None) -> list[SnapshotPage]:
    return [page async for page in source.pages(cursor, 2, Capture.RECONCILE)]


async def test_dataverse_snapshots_page_by_primary_key_with_a_count() -> None:
    service = PagedService([row(n) for n in range(5)], {"@odata.count": 5})
    async with client(service, SalesSettings(base_url="http://sales")) as api:
        read = await pages(DataverseSnapshots(api, ACCOUNT))
    assert [len(p.events) for p in read] == [2, 2, 1]
    assert [p.total for p in read] == [5, 5, 5]
    assert read[-1].next_cursor is None
    assert read[0].next_cursor == "http://sales/api/data/v9.2/accounts?page=2"
    first = service.requests[0]
    assert first.url.path == "/api/data/v9.2/accounts"
    assert first.url.params["$count"] == "true"
    assert first.url.params["$orderby"] == "accountid asc"
    assert {r.headers["Prefer"] for r in service.requests} == {"odata.maxpagesize=2"}
    event = read[0].events[0]
    assert event.operation is Operation.SNAPSHOT
    assert event.source.capture is Capture.RECONCILE
    assert (event.source.record_version, event.source.business_key) == (100, "ACC-0")
    assert event.key == b"00000000-0000-0000-0000-000000000000"
    assert "@odata.etag" not in (event.after or {})


async def test_dataverse_snapshots_resume_from_a_cursor() -> None:
    service = PagedService([row(n) for n in range(5)])
    async with client(service, SalesSettings(base_url="http://sales")) as api:
        read = await pages(
            DataverseSnapshots(api, ACCOUNT), "http://sales/api/data/v9.2/accounts?page=4"
        )
    assert [e.source.business_key for p in read for e in p.events] == ["ACC-4"]
    assert read[0].total is None
    assert "$count" not in service.requests[0].url.params


async def test_a_capped_dataverse_count_is_unknown() -> None:
    extra = {"@odata.count": 5000, "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded": True}
    service = PagedService([row(1)], extra)
    async with client(service, SalesSettings(base_url="http://sales")) as api:
        (page,) = await pages(DataverseSnapshots(api, ACCOUNT))
    assert page.total is None


async def test_fno_targets_are_read_across_companies_filtered_and_selected() -> None:
    rows = [{"dataAreaId": "usmf", "CustomerAccount": f"C{n}"} for n in range(3)]
    service = PagedService(rows)
    companies = CompanySettings(map={"usmf": "*", "demf": "bu-2"})
    async with client(service, FnoSettings(base_url="http://fno")) as api:
        reader = FnoTargetRecords(api)
        got = [r async for r in reader.records(ACCOUNTS, target_columns(ACCOUNTS), companies, 2)]
    assert got == rows
    params = service.requests[0].url.params
    assert params["cross-company"] == "true"
    assert params["$filter"] == "dataAreaId eq 'demf' or dataAreaId eq 'usmf'"
    assert params["$select"].split(",")[:3] == ["dataAreaId", "CustomerAccount", "OrganizationName"]
    assert len(service.requests) == 2


def test_target_columns_are_keys_then_every_mapped_field_once() -> None:
    columns = target_columns(ACCOUNTS)
    assert columns.fields[:2] == ("dataAreaId", "CustomerAccount")
    assert len(columns.fields) == len(set(columns.fields)) == len(ACCOUNTS.fields) + 1
    assert columns.lookups == {}


async def test_fno_snapshots_page_the_mapped_companies_by_key_without_versions() -> None:
    rows = [
        {"@odata.etag": 'W/"x"', "dataAreaId": "usmf", "ProductNumber": f"P{n}", "Name": "Bolt"}
        for n in range(3)
    ]
    service = PagedService(rows, {"@odata.count": 3})
    async with client(service, FnoSettings(base_url="http://fno")) as api:
        read = await pages(FnoSnapshots(api, PRODUCT, CompanySettings()))
    assert [p.next_cursor is None for p in read] == [False, True]
    params = service.requests[0].url.params
    assert params["cross-company"] == "true"
    assert params["$filter"] == "dataAreaId eq 'usmf'"
    assert params["$orderby"] == "dataAreaId,ProductNumber"
    event = read[0].events[0]
    assert (event.source.system, event.source.record_id) == (System.FNO, "usmf|p0")
    assert (event.source.company, event.source.business_key) == ("usmf", "P0")
    assert event.source.record_version is None
    assert event.source.capture is Capture.RECONCILE
    assert event.after == {"dataAreaId": "usmf", "ProductNumber": "P0", "Name": "Bolt"}


async def test_readers_by_system() -> None:
    templates = load_templates()
    async with client(PagedService([]), FnoSettings(base_url="http://fno")) as api:
        clients = {System.SALES: api, System.FNO: api}
        companies = CompanySettings()
        assert isinstance(snapshot_source(ACCOUNT, clients, companies), DataverseSnapshots)
        assert isinstance(snapshot_source(PRODUCT, clients, companies), FnoSnapshots)
        assert isinstance(target_records(ACCOUNTS, clients), FnoTargetRecords)
        for flow in ("products", "orders-to-sales", "order-lines-to-sales", "invoices"):
            assert isinstance(target_records(templates[flow], clients), DataverseTargetRecords)
