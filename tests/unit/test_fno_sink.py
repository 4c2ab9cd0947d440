"""F&O writes are idempotent: read, then create, patch the differences, or do nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bridge.config import FnoSettings
from bridge.fno.sink import FnoSink, changed_fields, same_value
from bridge.http.client import ApiClient
from bridge.http.odata import key_path, odata_literal
from bridge.http.retry import RetryPolicy
from bridge.mapping.engine import TargetWrite, WriteKind
from bridge.sinks.base import ApplyOutcome

KEY = {"dataAreaId": "usmf", "CustomerAccount": "A-1"}
PATH = "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='A-1')"


class FakeFno:
    """CustomersV3 with one record slot, ETags and F&O's empty-string convention."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None
        self.version = 0
        self.calls: list[str] = []
        self.conflict_next_patch = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        self.calls.append(request.method)
        if request.method == "GET":
            if self.record is None:
                return httpx.Response(404, json={"error": {"message": "not found"}})
            return httpx.Response(200, json={**self.record, "@odata.etag": f'W/"{self.version}"'})
        if request.method == "POST":
            self.record = {"SalesMemo": "", **json.loads(request.content)}
            self.version += 1
            return httpx.Response(201, json=self.record)
        if request.method == "PATCH":
            if self.conflict_next_patch or request.headers.get("If-Match") != f'W/"{self.version}"':
                self.conflict_next_patch = False
                self.version += 1
                return httpx.Response(412, json={"error": {"message": "version mismatch"}})
            assert self.record is not None
            self.record.update(json.loads(request.content))
            self.version += 1
            return httpx.Response(204)
        if request.method == "DELETE":
            self.record = None
            return httpx.Response(204)
        return httpx.Response(405)


@pytest.fixture
def fno() -> FakeFno:
    return FakeFno()


def upsert(**body: Any) -> TargetWrite:
    return TargetWrite(WriteKind.UPSERT, "CustomersV3", KEY, {**KEY, **body})


async def apply(fno: FakeFno, *writes: TargetWrite) -> list[ApplyOutcome]:
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.001)
    transport = httpx.MockTransport(fno.handle)
    async with ApiClient(FnoSettings(), "/data", policy, transport=transport) as client:
        sink = FnoSink(client)
        return [await sink.apply(write) for write in writes]


async def test_create_then_identical_write_changes_nothing(fno: FakeFno) -> None:
    outcomes = await apply(
        fno, upsert(OrganizationName="Fourth"), upsert(OrganizationName="Fourth")
    )
    assert outcomes == [ApplyOutcome.CREATED, ApplyOutcome.UNCHANGED]
    assert fno.calls == ["GET", "POST", "GET"]


async def test_update_patches_only_the_differences_with_if_match(fno: FakeFno) -> None:
    await apply(fno, upsert(OrganizationName="Fourth", CustomerGroupId="10"))
    assert await apply(fno, upsert(OrganizationName="Fifth", CustomerGroupId="10")) == [
        ApplyOutcome.UPDATED
    ]
    assert fno.record is not None
    assert fno.record["OrganizationName"] == "Fifth"


async def test_stale_etag_is_reread_and_retried(fno: FakeFno) -> None:
    await apply(fno, upsert(OrganizationName="Fourth"))
    fno.conflict_next_patch = True
    assert await apply(fno, upsert(OrganizationName="Fifth")) == [ApplyOutcome.UPDATED]
    assert fno.calls[-4:] == ["GET", "PATCH", "GET", "PATCH"]


async def test_delete_of_missing_record_is_a_no_op(fno: FakeFno) -> None:
    delete = TargetWrite(WriteKind.DELETE, "CustomersV3", KEY)
    assert await apply(fno, delete) == [ApplyOutcome.UNCHANGED]
    await apply(fno, upsert(OrganizationName="x"))
    assert await apply(fno, delete) == [ApplyOutcome.DELETED]


@pytest.mark.parametrize(
    ("stored", "wanted", "same"),
    [
        ("", None, True),
        (None, "", True),
        ("", "x", False),
        (0, 0.0, True),
        (10, 10.5, False),
        ("Yes", "Yes", True),
    ],
)
def test_same_value(stored: Any, wanted: Any, same: bool) -> None:
    assert same_value(stored, wanted) is same


def test_changed_fields_never_include_the_key() -> None:
    write = upsert(OrganizationName="New")
    assert changed_fields({"CustomerAccount": "other", "OrganizationName": "Old"}, write) == {
        "OrganizationName": "New"
    }


@pytest.mark.parametrize(("value", "literal"), [("O'Neil", "'O''Neil'"), (5, "5"), (True, "true")])
def test_odata_literals(value: Any, literal: str) -> None:
    assert odata_literal(value) == literal


def test_key_path_has_every_key_field() -> None:
    assert key_path("CustomersV3", KEY) == "CustomersV3(dataAreaId='usmf',CustomerAccount='A-1')"
    assert PATH.endswith(key_path("CustomersV3", KEY))
