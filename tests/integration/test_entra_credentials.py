"""Entra ID client credentials through MSAL, against the Dataverse emulator over real TLS.

MSAL accepts only https authorities, so each test creates a CA, serves the emulator with a
certificate of that CA on loopback and tells the bridge (``ca_file``) and MSAL to trust it.
The bridge's own ApiClient then calls the API with the token MSAL obtained. The emulator's
token requests are counted from its ``token_issued`` log events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from bridge.config import SalesSettings
from bridge.emulators.common.settings import EmulatorSettings
from bridge.emulators.dataverse.app import DataverseEmulator
from bridge.errors import ConfigError, FlowBlocked, TargetUnavailable
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.http.tokens import TokenProvider
from bridge.sources.receiver import bound_port
from bridge.tls import client_context, server_context
from tests.integration.conftest import free_port
from tests.support.tls import Issued, TestCA
from tests.support.waiting import eventually

TENANT = "emulated-tenant"
CLIENT_ID = "bridge-local"
SECRET = "bridge-local-secret"


@dataclass
class TlsEmulator:
    """The Dataverse emulator on https://127.0.0.1:<port> with a certificate of ``ca``."""

    emulator: DataverseEmulator
    url: str
    ca: TestCA

    def settings(self, **fields: Any) -> SalesSettings:
        """Bridge settings for this emulator, trusting the test CA."""
        return SalesSettings(base_url=self.url, ca_file=self.ca.cert, **fields)

    def trust(self, issued: Issued) -> None:
        """Upload a client certificate to the bridge's app registration."""
        self.emulator.issuer.trust_certificate(CLIENT_ID, issued.cert_pem)


@pytest.fixture
async def tls_emulator(tmp_path: Path) -> AsyncIterator[TlsEmulator]:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("emulator", server=True)
    emulator = DataverseEmulator(EmulatorSettings(token_lifetime_seconds=3599))
    runner = web.AppRunner(emulator.app, access_log=None)
    await runner.setup()
    try:
        tls = server_context(server.cert, server.key)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        yield TlsEmulator(emulator, f"https://127.0.0.1:{bound_port(runner, 0)}", ca)
    finally:
        await runner.cleanup()


def issued_tokens(logs: list[dict[str, Any]]) -> int:
    return sum(1 for entry in logs if entry["event"] == "token_issued")


async def who_am_i(settings: SalesSettings) -> dict[str, Any]:
    """WhoAmI through the bridge's ApiClient: token from MSAL, API over TLS."""
    async with ApiClient(settings, settings.api_path, RetryPolicy(max_attempts=1)) as client:
        return await client.get_json("WhoAmI")


async def test_secret_through_msal_is_cached_and_calls_the_api(tls_emulator: TlsEmulator) -> None:
    settings = tls_emulator.settings()
    with capture_logs() as logs:
        async with httpx.AsyncClient() as http:
            provider = TokenProvider(settings, http)
            first = await provider.token()
            assert await provider.token() == first  # from the cache
            assert issued_tokens(logs) == 1
            provider.invalidate()
            second = await provider.token()
            assert second != first  # MSAL's cache was emptied too: a new token
            assert issued_tokens(logs) == 2
            claims = await provider.claims()
    assert claims["appid"] == CLIENT_ID and claims["tid"] == TENANT
    assert claims["aud"] == tls_emulator.url
    answer = await who_am_i(settings)
    principal = tls_emulator.emulator.directory.get(CLIENT_ID)
    assert principal is not None and answer["UserId"] == principal.systemuser_id


async def test_a_short_lived_token_is_replaced_before_it_expires(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("emulator", server=True)
    emulator = DataverseEmulator(EmulatorSettings(token_lifetime_seconds=2))
    runner = web.AppRunner(emulator.app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(
            runner, "127.0.0.1", 0, ssl_context=server_context(server.cert, server.key)
        ).start()
        settings = SalesSettings(
            base_url=f"https://127.0.0.1:{bound_port(runner, 0)}", ca_file=ca.cert
        )
        async with httpx.AsyncClient() as http:
            provider = TokenProvider(settings, http)
            first = await provider.token()
            await asyncio.sleep(1.2)  # past half its lifetime, still valid
            second = await provider.token()
    finally:
        await runner.cleanup()
    assert second != first
    assert emulator.issuer.verify(second).client_id == CLIENT_ID


@pytest.mark.parametrize("form", ["pem-with-certificate", "pem-with-thumbprint", "pfx"])
async def test_certificate_credentials_sign_an_assertion_the_emulator_verifies(
    tls_emulator: TlsEmulator, form: str
) -> None:
    issued = tls_emulator.ca.issue("bridge-app")
    tls_emulator.trust(issued)
    fields: dict[str, Any] = {"client_secret": SecretStr("not-used-with-a-certificate")}
    if form == "pem-with-certificate":
        fields["client_certificate_file"] = issued.bundle
    elif form == "pem-with-thumbprint":
        fields |= {
            "client_certificate_file": issued.key,
            "client_certificate_thumbprint": issued.sha1_thumbprint,
        }
    else:
        fields |= {
            "client_certificate_file": issued.pfx,
            "client_certificate_password": SecretStr(issued.pfx_password),
        }
    answer = await who_am_i(tls_emulator.settings(**fields))
    assert answer["UserId"]


async def test_an_untrusted_certificate_is_refused(tls_emulator: TlsEmulator) -> None:
    tls_emulator.trust(tls_emulator.ca.issue("uploaded"))
    other = tls_emulator.ca.issue("not-uploaded")
    settings = tls_emulator.settings(client_certificate_file=other.bundle)
    async with httpx.AsyncClient() as http:
        with pytest.raises(FlowBlocked) as refused:
            await TokenProvider(settings, http).token()
    assert "invalid_client (AADSTS700027)" in str(refused.value)


async def test_a_wrong_secret_is_refused_without_showing_it(tls_emulator: TlsEmulator) -> None:
    wrong = "wr0ng-s3cret-value"
    settings = tls_emulator.settings(client_secret=SecretStr(wrong))
    with capture_logs() as logs:
        async with httpx.AsyncClient() as http:
            with pytest.raises(FlowBlocked) as refused:
                await TokenProvider(settings, http).token()
    assert "invalid_client (AADSTS7000215)" in str(refused.value)
    assert wrong not in str(refused.value) and wrong not in repr(logs)


async def test_an_authority_whose_certificate_is_not_trusted_is_unavailable(
    tls_emulator: TlsEmulator,
) -> None:
    settings = SalesSettings(base_url=tls_emulator.url)  # no ca_file: the system's CAs
    async with httpx.AsyncClient() as http:
        with pytest.raises(TargetUnavailable, match="SSLError"):
            await TokenProvider(settings, http).token()


async def test_a_missing_certificate_file_is_a_config_error(tls_emulator: TlsEmulator) -> None:
    settings = tls_emulator.settings(client_certificate_file=Path("/nonexistent/app.pem"))
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match=r"/nonexistent/app\.pem"):
            TokenProvider(settings, http)


async def test_msal_with_instance_discovery_and_the_v1_metadata(
    tls_emulator: TlsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSAL's own requests, with authority validation on: instance discovery at the
    emulator, then its OpenID metadata, then the token endpoint it names. (MSAL blocks, so
    it runs in a thread while the emulator serves on this loop.)"""
    # requests would let these override MSAL's verify= (see bridge.http.tokens)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    def acquire() -> dict[str, Any]:
        app = msal.ConfidentialClientApplication(
            CLIENT_ID,
            client_credential=SECRET,
            authority=f"{tls_emulator.url}/{TENANT}",
            instance_discovery=f"{tls_emulator.url}/common/discovery/instance",
            verify=str(tls_emulator.ca.cert),
        )
        result: dict[str, Any] = app.acquire_token_for_client(
            scopes=[f"{tls_emulator.url}/.default"]
        )
        app.http_client.close()
        return result

    with capture_logs() as logs:
        result = await asyncio.to_thread(acquire)
    assert "access_token" in result, result
    assert tls_emulator.emulator.issuer.verify(result["access_token"]).client_id == CLIENT_ID
    paths = [e["path"] for e in logs if e["event"] == "emulator_request"]
    assert paths == [
        "/common/discovery/instance",
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        f"/{TENANT}/oauth2/v2.0/token",
    ]
    async with httpx.AsyncClient(verify=client_context(tls_emulator.ca.cert)) as http:
        v1 = await http.get(f"{tls_emulator.url}/{TENANT}/.well-known/openid-configuration")
        unknown = await http.get(
            f"{tls_emulator.url}/other-tenant/v2.0/.well-known/openid-configuration"
        )
        foreign = await http.get(
            f"{tls_emulator.url}/common/discovery/instance",
            params={"authorization_endpoint": "https://elsewhere.example/t/oauth2/v2.0/authorize"},
        )
    assert v1.json()["token_endpoint"] == f"{tls_emulator.url}/{TENANT}/oauth2/token"
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_tenant"
    assert foreign.json()["error"] == "invalid_instance"


async def test_bridge_emulate_serves_https_that_msal_and_the_bridge_accept(tmp_path: Path) -> None:
    """``bridge emulate`` itself over TLS: what a newcomer runs to try MSAL locally."""
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("emulator", server=True)
    sales_port, fno_port = free_port(), free_port()
    env = {
        **os.environ,
        "BRIDGE_EMULATOR__TLS_CERTFILE": str(server.cert),
        "BRIDGE_EMULATOR__TLS_KEYFILE": str(server.key),
    }
    ports = ["--sales-port", str(sales_port), "--fno-port", str(fno_port)]
    process = start_emulate(ports, env, tmp_path / "emulate.log")
    try:
        url = f"https://127.0.0.1:{sales_port}"
        verify = client_context(ca.cert)

        async def answers() -> bool:
            async with httpx.AsyncClient(verify=verify) as http:
                try:
                    await http.get(f"{url}/api/data/v9.2/")
                except httpx.TransportError:
                    assert process.poll() is None, (tmp_path / "emulate.log").read_text()
                    return False
                return True

        await eventually(answers, interval=0.2)
        answer = await who_am_i(SalesSettings(base_url=url, ca_file=ca.cert))
        assert answer["UserId"]
        async with httpx.AsyncClient() as http:  # plain HTTP is not served
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{fno_port}/data/")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()  # by its pid: never leave it running, even when the test fails
            process.wait(timeout=15)
    assert process.returncode == 0


def start_emulate(ports: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``bridge emulate`` as a child process (the caller stops it by its pid)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "emulate", *ports], env=env, stdout=log, stderr=log
        )


def test_bridge_emulate_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    env = {**os.environ, "BRIDGE_EMULATOR__TLS_CERTFILE": str(tmp_path / "cert.pem")}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "emulate", "--sales-port", "0", "--fno-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TLS_CERTFILE and __TLS_KEYFILE go together" in done.stderr
    assert "Traceback" not in done.stderr
