"""Response classification, the retry policy and the authenticated client (MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bridge.config import FnoSettings
from bridge.errors import (
    AlreadyExists,
    FlowBlocked,
    NotFound,
    PreconditionFailed,
    TargetRejected,
    TargetUnavailable,
    Throttled,
)
from bridge.http.client import ApiClient
from bridge.http.responses import classify_response, retry_after_seconds
from bridge.http.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request(
        "PATCH", "http://fno/data/CustomersV3(dataAreaId='usmf',CustomerAccount='A')"
    )
    content = json.dumps(body).encode() if body is not None else b""
    return httpx.Response(status, content=content, headers=headers, request=request)


FNO_DUPLICATE = {
    "error": {
        "code": "",
        "message": "An error has occurred.",
        "innererror": {"message": "Write failed for table row ... The record already exists.."},
    }
}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"code": "", "message": "no"}}, FlowBlocked),
        (403, None, FlowBlocked),
        (404, {"error": {"code": "0x80040217", "message": "Does Not Exist"}}, NotFound),
        (
            412,
            {"error": {"code": "", "message": "The version of the existing record doesn't match"}},
            PreconditionFailed,
        ),
        (
            412,
            {"error": {"code": "", "message": "A record with matching key values already exists."}},
            AlreadyExists,
        ),
        (429, {"error": {"code": "0x80072322", "message": "limit"}}, Throttled),
        (500, FNO_DUPLICATE, AlreadyExists),
        (500, {"error": {"code": "", "message": "boom"}}, TargetUnavailable),
        (503, None, TargetUnavailable),
        (400, {"error": {"code": "0x80044331", "message": "validation"}}, TargetRejected),
        (405, None, TargetRejected),
        (413, None, TargetRejected),
    ],
)
def test_classification(status: int, body: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        classify_response(response(status, body))


@pytest.mark.parametrize("status", [200, 201, 204, 304])
def test_success(status: int) -> None:
    classify_response(response(status))


def test_rejected_error_keeps_code_and_status() -> None:
    with pytest.raises(TargetRejected) as info:
        classify_response(response(400, {"error": {"code": "0x80044331", "message": "too long"}}))
    assert info.value.status == 400
    assert info.value.code == "0x80044331"
    assert "too long" in str(info.value)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(response(429, headers={"Retry-After": header})) == seconds


def test_retry_after_wins_over_backoff_but_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 500.0) == 10
    assert 0 < policy.delay(5, None) <= policy.max_backoff


Handler = Callable[[httpx.Request], httpx.Response]


def api(handler: Handler, policy: RetryPolicy = FAST) -> ApiClient:
    def routed(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            form = dict(x.split("=") for x in request.content.decode().split("&"))
            assert form["grant_type"] == "client_credentials"
            return httpx.Response(
                200,
                json={
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "access_token": "tok-" + str(routed.tokens),
                },
            )  # type: ignore[attr-defined]
        return handler(request)

    routed.tokens = 0  # type: ignore[attr-defined]
    return ApiClient(FnoSettings(), "/data", policy, transport=httpx.MockTransport(routed))


async def test_throttling_is_retried_with_retry_after() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Authorization"])
        if len(calls) < 3:
            return httpx.Response(
                429, headers={"Retry-After": "0"}, json={"error": {"message": "slow down"}}
            )
        return httpx.Response(200, json={"value": []})

    async with api(handler) as client:
        assert (await client.get_json("CustomersV3")) == {"value": []}
    assert len(calls) == 3
    assert all(c == "Bearer tok-0" for c in calls)


async def test_retries_are_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    async with api(handler) as client:
        with pytest.raises(TargetUnavailable):
            await client.get_json("CustomersV3")


async def test_connection_errors_are_retried_then_raised_as_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with api(handler) as client:
        with pytest.raises(TargetUnavailable, match="ConnectError"):
            await client.get_json("CustomersV3")


async def test_401_gets_one_fresh_token_then_blocks_the_flow() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(401, json={"error": {"code": "", "message": "expired"}})

    async with api(handler) as client:
        with pytest.raises(FlowBlocked):
            await client.get_json("CustomersV3")
    assert len(seen) == 2


async def test_4xx_is_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"code": "", "message": "bad"}})

    async with api(handler) as client:
        with pytest.raises(TargetRejected):
            await client.request("POST", "CustomersV3", json={})
    assert calls == 1


async def test_refused_credentials_block_without_leaking_the_secret() -> None:
    def routed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_client", "error_description": "AADSTS7000215"}
        )

    client = ApiClient(FnoSettings(), "/data", FAST, transport=httpx.MockTransport(routed))
    async with client:
        with pytest.raises(FlowBlocked) as info:
            await client.get_json("CustomersV3")
    assert "invalid_client" in str(info.value)
    assert FnoSettings().client_secret.get_secret_value() not in str(info.value)
