"""The admin API's handlers through aiohttp's test client: status, pause and resume, jobs,
the token rule, metrics and health. No Kafka: the pause store and the probes are fakes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bridge.admin.controls import FlowControls, pause_key
from bridge.admin.guard import refuse_unprotected_admin
from bridge.admin.jobs import JobRunner
from bridge.admin.monitor import FlowMonitor
from bridge.admin.server import AdminContext, build_app
from bridge.config import AdminSettings, FlowSettings, Settings
from bridge.errors import ConfigError, PublishFailed
from bridge.security import is_loopback_host
from tests.unit.admin.test_monitor import event

FLOWS = ["accounts", "contacts"]


class Stored:
    """The state topic as the controls write to it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.failing = False

    async def put(self, key: str, value: Any) -> None:
        if self.failing:
            raise PublishFailed("broker down")
        self.values[key] = value


class Probe:
    def __init__(self, ok: bool, detail: str) -> None:
        self.result = (ok, detail)

    async def check(self) -> tuple[bool, str]:
        return self.result


def context(token: str | None = None, **probes: Probe) -> tuple[AdminContext, Stored]:
    settings = Settings(
        flows=FlowSettings(enabled=FLOWS),
        admin=AdminSettings(token=SecretStr(token) if token else None),
    )
    controls = FlowControls({name: FlowMonitor(name) for name in FLOWS})
    stored = Stored()
    controls.connect(stored.put)
    ctx = AdminContext(
        settings=settings,
        role="all",
        flows=FLOWS,
        controls=controls,
        jobs=JobRunner(settings),
        probes=probes,
    )
    return ctx, stored


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[Any, Any], AdminContext, Stored]]:
    ctx, stored = context()
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield client, ctx, stored
        await ctx.jobs.close()


async def test_status_lists_every_flow_with_what_its_engine_reported(api: Any) -> None:
    client, ctx, _ = api
    monitor = ctx.controls.monitors["accounts"]
    monitor.running_here = True
    monitor.applied(event("A-1", 0))
    monitor.dead_lettered("map", ValueError("no value map entry for 'Österreich'"))
    response = await client.get("/api/status")
    assert response.status == 200
    body = await response.json()
    flows = {f["name"]: f for f in body["flows"]}
    assert set(flows) == set(FLOWS)
    assert flows["accounts"]["state"] == "running"
    assert flows["accounts"]["applied_total"] == 1
    assert flows["accounts"]["last_applied"]["record"] == "A-1"
    assert flows["accounts"]["dead_letters"]["by_reason"][0]["stage"] == "map"
    assert flows["contacts"]["state"] == "idle"
    assert body["capture"]["webhook"]["enabled"] is True


async def test_pause_and_resume_are_stored_for_every_process(api: Any) -> None:
    client, ctx, stored = api
    response = await client.post("/api/flows/accounts/pause")
    assert response.status == 200
    assert (await response.json())["state"] == "paused"
    assert stored.values[pause_key("accounts")]["paused"] is True
    assert ctx.controls.is_paused("accounts")
    flows = {f["name"]: f for f in (await (await client.get("/api/status")).json())["flows"]}
    assert flows["accounts"]["state"] == "paused"
    response = await client.post("/api/flows/accounts/resume")
    assert (await response.json())["paused"] is False
    assert stored.values[pause_key("accounts")] is None
    assert not ctx.controls.is_paused("accounts")


async def test_a_pause_written_by_another_process_applies_here() -> None:
    ctx, _ = context()
    ctx.controls.follow(pause_key("contacts"), {"paused": True, "at": "2026-01-01T00:00:00Z"})
    await _settle()
    assert ctx.controls.monitors["contacts"].state() == "paused"
    ctx.controls.follow(pause_key("contacts"), None)
    await _settle()
    assert not ctx.controls.is_paused("contacts")


async def _settle() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)


async def test_unknown_flow_and_unstored_pause_are_clear_errors(api: Any) -> None:
    client, _, stored = api
    response = await client.post("/api/flows/nope/pause")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_flow"
    stored.failing = True
    response = await client.post("/api/flows/accounts/pause")
    assert response.status == 503
    assert "broker down" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "JSON object"),
        (b'["accounts"]', "expected"),
        (b'{"kind": "backfill", "flow": "nope"}', "unknown flow 'nope'"),
        (b'{"kind": "explode", "flow": "accounts"}', "unknown job kind"),
    ],
)
async def test_bad_job_requests_start_nothing(api: Any, body: bytes, message: str) -> None:
    client, ctx, _ = api
    response = await client.post("/api/jobs", data=body)
    assert response.status == 400
    assert message in (await response.json())["error"]["message"]
    assert ctx.jobs.jobs == {}


async def test_a_job_is_started_and_followed(api: Any) -> None:
    client, _, _ = api
    # replay of a time that is not one fails inside the job, before any Kafka call
    response = await client.post(
        "/api/jobs", json={"kind": "replay", "flow": "accounts", "from": "yesterday"}
    )
    assert response.status == 202
    job_id = (await response.json())["id"]
    for _ in range(100):
        job = await (await client.get(f"/api/jobs/{job_id}")).json()
        if job["state"] != "running":
            break
        await _settle()
    assert job["state"] == "failed"
    assert "yesterday" in job["summary"]
    assert [j["id"] for j in await (await client.get("/api/jobs")).json()] == [job_id]
    assert (await client.get("/api/jobs/999")).status == 404


async def test_a_token_guards_the_api_and_metrics_but_not_the_page_or_probes() -> None:
    ctx, _ = context(token="s3cret-admin")
    async with TestClient(TestServer(build_app(ctx))) as client:
        for path in ("/api/status", "/api/series", "/metrics"):
            assert (await client.get(path)).status == 401
            wrong = {"Authorization": "Bearer guess"}
            assert (await client.get(path, headers=wrong)).status == 401
            right = {"Authorization": "Bearer s3cret-admin"}
            assert (await client.get(path, headers=right)).status == 200
        assert (await client.post("/api/flows/accounts/pause")).status == 401
        assert not ctx.controls.is_paused("accounts")
        page = await client.get("/")
        assert page.status == 200
        assert "s3cret-admin" not in await page.text()
        assert (await client.get("/healthz")).status == 200


async def test_readiness_names_what_is_not_ready() -> None:
    ctx, _ = context(sales=Probe(True, "ok"), fno=Probe(False, "token endpoint unreachable"))
    async with TestClient(TestServer(build_app(ctx))) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["checks"]["fno"] == {"ok": False, "detail": "token endpoint unreachable"}
        assert body["checks"]["sales"]["ok"] is True
        ctx.probes["fno"].result = (True, "ok")  # type: ignore[attr-defined]
        assert (await client.get("/readyz")).status == 200
        assert (await (await client.get("/healthz")).json()) == {"status": "alive"}


async def test_metrics_expose_what_the_flows_did(api: Any) -> None:
    client, ctx, _ = api
    monitor = ctx.controls.monitors["contacts"]
    monitor.applied(event("C-1", 0))
    monitor.skipped(event("C-1", 0), "version 42 already applied")
    monitor.dead_lettered("apply", ValueError("refused"))
    response = await client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'bridge_events_applied_total{flow="contacts"}' in text
    assert 'bridge_events_skipped_total{flow="contacts",reason="version N already applied"}' in text
    assert (
        'bridge_events_dead_lettered_total{error="ValueError",flow="contacts",stage="apply"}'
        in text
    )
    assert 'bridge_apply_latency_seconds_count{flow="contacts"}' in text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("bridge.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_the_admin_api_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="BRIDGE_ADMIN__TOKEN"):
        refuse_unprotected_admin(AdminSettings(host="0.0.0.0"))
    with pytest.raises(ConfigError):
        refuse_unprotected_admin(AdminSettings(host="0.0.0.0", token=SecretStr("  ")))
    refuse_unprotected_admin(AdminSettings(host="0.0.0.0", token=SecretStr("t")))
    refuse_unprotected_admin(AdminSettings(host="127.0.0.1"))


def test_bridge_run_refuses_to_start_with_an_open_admin_api() -> None:
    env = {"BRIDGE_ADMIN__HOST": "0.0.0.0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "run"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "BRIDGE_ADMIN__TOKEN" in lines[0]
