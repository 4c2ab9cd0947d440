"""OAuth2 client-credentials token endpoint and bearer checks on both emulators."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.emulators.common.auth import TokenIssuer
from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.principals import NAMESPACE, PrincipalDirectory
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.emulators.fno.app import FnoEmulator
from tests.unit.emulators.support import API, TENANT, FnoHarness, SalesHarness


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def _token(client: TestClient[Any, Any], **form: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/{TENANT}/oauth2/v2.0/token", data=form)
    return response.status, await response.json()


GOOD = {
    "client_id": "bridge-local",
    "client_secret": "bridge-local-secret",
    "grant_type": "client_credentials",
    "scope": "https://org.crm.dynamics.com/.default",
}


async def test_token_has_the_documented_shape_and_claims(sales: SalesHarness) -> None:
    status, body = await _token(sales.client, **GOOD)
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    claims = _claims(body["access_token"])
    assert claims["aud"] == "https://org.crm.dynamics.com"
    assert claims["tid"] == TENANT
    assert claims["appid"] == "bridge-local"
    assert claims["oid"] == str(uuid.uuid5(NAMESPACE, "oid/bridge-local"))
    assert claims["exp"] - claims["iat"] == 3599


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"client_secret": "wrong"}, "invalid_client", 7000215),
        ({"client_id": "stranger"}, "invalid_client", 700016),
        ({"grant_type": "password"}, "unsupported_grant_type", 70003),
        ({"scope": "https://org.crm.dynamics.com/user_impersonation"}, "invalid_scope", 70011),
        ({"scope": ""}, "invalid_scope", 70011),
    ],
)
async def test_token_errors(
    sales: SalesHarness, changes: dict[str, str], error: str, code: int
) -> None:
    status, body = await _token(sales.client, **{**GOOD, **changes})
    assert status == 400
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")


async def test_unknown_tenant_and_basic_auth(sales: SalesHarness) -> None:
    response = await sales.client.post("/other/oauth2/v2.0/token", data=GOOD)
    assert response.status == 400
    assert (await response.json())["error_codes"] == [90002]
    basic = base64.b64encode(b"p2c-user:p2c-user-secret").decode()
    response = await sales.client.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": "x/.default"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert _claims((await response.json())["access_token"])["appid"] == "p2c-user"


async def test_v1_endpoint_uses_resource(fno: FnoHarness) -> None:
    form = {**GOOD, "resource": "https://env.operations.dynamics.com/"}
    del form["scope"]
    response = await fno.client.post(f"/{TENANT}/oauth2/token", data=form)
    assert (
        _claims((await response.json())["access_token"])["aud"]
        == "https://env.operations.dynamics.com"
    )


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not.a.token", "Basic abc"])
async def test_dataverse_requires_a_bearer_token(
    sales: SalesHarness, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await sales.client.get(f"{API}/accounts", headers=headers)
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(
        f"Bearer authorization_uri=http://{response.url.host}:{response.url.port}/{TENANT}/oauth2/authorize"
    )
    body = await response.json()
    assert set(body["error"]) == {"code", "message"}


async def test_fno_401_uses_the_fno_error_shape(fno: FnoHarness) -> None:
    response = await fno.client.get("/data/CustomersV3")
    assert response.status == 401
    body = await response.json()
    assert body["error"]["message"] == "An error has occurred."
    assert "innererror" in body["error"]


async def test_tokens_are_per_emulator(sales: SalesHarness, fno: FnoHarness) -> None:
    response = await fno.client.get("/data/CustomersV3", headers=sales.bridge)
    assert response.status == 401


async def test_forged_token_is_rejected(sales: SalesHarness) -> None:
    token = sales.bridge["Authorization"].split()[1]
    header, _payload, signature = token.split(".")
    claims = _claims(token)
    claims["appid"] = "p2c-user"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await sales.client.get(
        f"{API}/accounts", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"}
    )
    assert response.status == 401


async def test_expired_token_is_rejected() -> None:
    settings = EmulatorSettings(token_lifetime_seconds=1)
    issuer = TokenIssuer(PrincipalDirectory(settings), TENANT, 1)
    principal = PrincipalDirectory(settings).get("bridge-local")
    assert principal is not None
    token = issuer.issue(principal, "aud")
    assert issuer.verify(token) == principal
    await asyncio.sleep(1.1)
    with pytest.raises(Exception, match="ExpiredAuthTicket"):
        issuer.verify(token)


async def test_token_endpoint_and_admin_need_no_token() -> None:
    for emulator in (DataverseEmulator(EmulatorSettings()), FnoEmulator(EmulatorSettings())):
        async with TestClient(TestServer(emulator.app)) as client:
            assert (await client.get("/_emulator/health")).status == 200


def test_api_error_is_a_bridge_error() -> None:
    from bridge.errors import BridgeError

    assert issubclass(ApiError, BridgeError)
