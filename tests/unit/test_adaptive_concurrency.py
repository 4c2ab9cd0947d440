"""The adaptive window per registration (AIMD) and the spread over several registrations,
against an httpx.MockTransport that throttles like Dataverse (429 + Retry-After,
x-ms-dop-hint)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import httpx
import pytest

from bridge.config import Registration, SalesSettings
from bridge.errors import Throttled
from bridge.http.client import ApiClient
from bridge.http.limiter import AdaptiveLimiter, LimiterSettings
from bridge.http.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.01)
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Service:
    """A fake Dataverse: tokens per client id, and a request log per principal with the
    number of requests in flight at each arrival."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.in_flight = 0
        self.peak = 0
        self.arrivals: list[tuple[float, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            client_id = parse_qs(request.content.decode())["client_id"][0]
            token = {"token_type": "Bearer", "expires_in": 3599, "access_token": client_id}
            return httpx.Response(200, json=token)
        principal = request.headers["Authorization"].removeprefix("Bearer ")
        self.arrivals.append((time.monotonic(), principal))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.answer(request)
        finally:
            self.in_flight -= 1

    def per_principal(self) -> Counter[str]:
        return Counter(principal for _, principal in self.arrivals)


def client(service: Service, *extra: str, initial: int = 8) -> ApiClient:
    settings = SalesSettings(
        concurrency_initial=initial,
        extra_registrations=[Registration(client_id=c, client_secret=f"{c}-secret") for c in extra],
    )
    return ApiClient(settings, settings.api_path, POLICY, transport=httpx.MockTransport(service))


def ok(headers: dict[str, str] | None = None, delay: float = 0.01) -> Handler:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(delay)
        return httpx.Response(200, json={"value": []}, headers=headers)

    return answer


async def test_the_dop_hint_caps_the_window() -> None:
    service = Service(ok({"x-ms-dop-hint": "3"}))
    async with client(service, initial=8) as api:
        await api.get_json("accounts")  # learns the hint
        await asyncio.gather(*(api.get_json("accounts") for _ in range(30)))
    assert service.peak == 3
    assert api.registrations[0].limiter.limit == 3


async def test_a_429_halves_the_window_and_holds_requests_back_for_retry_after() -> None:
    throttled_at: list[float] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        if not throttled_at:
            throttled_at.append(time.monotonic())
            body = {"error": {"code": "0x80072322", "message": "Number of requests exceeded"}}
            return httpx.Response(429, json=body, headers={"Retry-After": "0.3"})
        await asyncio.sleep(0.01)
        return httpx.Response(200, json={"value": []})

    service = Service(answer)
    async with client(service, initial=8) as api:
        await api.get_json("accounts")
        assert api.registrations[0].limiter.limit == 4
        await asyncio.gather(*(api.get_json("accounts") for _ in range(12)))
    # nothing reached the service while the Retry-After was pending
    after = [at for at, _ in service.arrivals[1:]]
    assert min(after) >= throttled_at[0] + 0.29
    assert service.peak <= 5  # the narrowed window, widened by at most one so far


async def test_successes_widen_the_window_additively_up_to_the_maximum() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(initial=2, maximum=4))
    for _ in range(2):
        async with limiter.slot() as report:
            report.headers = {}
    assert limiter.limit == 2  # +1/2 per success: one full window adds one request
    for _ in range(20):
        async with limiter.slot() as report:
            report.headers = {}
    assert limiter.limit == 4


async def test_requests_in_flight_during_one_throttling_episode_narrow_it_once() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(initial=8, default_pause=0.0))

    async def throttled() -> None:
        async with limiter.slot():
            await asyncio.sleep(0.01)
            raise Throttled("429", retry_after=0.0)

    results = await asyncio.gather(*(throttled() for _ in range(8)), return_exceptions=True)
    assert all(isinstance(r, Throttled) for r in results)
    assert limiter.limit == 4


async def test_requests_spread_over_every_registration() -> None:
    service = Service(ok(delay=0.02))
    async with client(service, "bridge-2", "bridge-3", initial=2) as api:
        await asyncio.gather(*(api.get_json("accounts") for _ in range(30)))
    counts = service.per_principal()
    assert set(counts) == {"bridge-local", "bridge-2", "bridge-3"}
    assert all(n >= 5 for n in counts.values()), counts


async def test_a_throttled_registration_hands_its_traffic_to_the_others() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer bridge-local":
            return httpx.Response(
                429, json={"error": {"code": "0x80072322"}}, headers={"Retry-After": "5"}
            )
        return httpx.Response(200, json={"value": []})

    service = Service(answer)
    started = time.monotonic()
    async with client(service, "bridge-2", initial=1) as api:
        results = await asyncio.gather(*(api.get_json("accounts") for _ in range(10)))
    assert len(results) == 10
    assert time.monotonic() - started < 4, "a request waited out the throttled one's pause"
    assert service.per_principal()["bridge-local"] == 1


async def test_a_request_can_be_pinned_to_one_registration() -> None:
    service = Service(ok())
    async with client(service, "bridge-2") as api:
        await api.get_json("WhoAmI", registration=1)
    assert service.per_principal() == Counter({"bridge-2": 1})


@pytest.mark.parametrize("registrations", [[], ["a", "b"]])
def test_each_registration_has_its_own_credentials(registrations: list[str]) -> None:
    settings = SalesSettings(
        extra_registrations=[Registration(client_id=c, client_secret="s") for c in registrations]
    )
    each = settings.registrations()
    assert [s.client_id for s in each] == ["bridge-local", *registrations]
    assert each[0].client_secret.get_secret_value() == "bridge-local-secret"
    assert all(s.client_secret.get_secret_value() == "s" for s in each[1:])
