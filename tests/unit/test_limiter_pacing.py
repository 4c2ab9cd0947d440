"""The limiter's pacer: after the first 429 each registration sends no more operations per
second than it learned the server admits, so a run at a throttling ceiling is rarely
throttled again.

Every test runs on looptime's virtual event-loop clock: sleeps, pauses and the fake
service's sliding window take no wall time, and the counts below do not depend on how
loaded the machine is."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest

from bridge.config import ApiSettings, FnoSettings, Registration, SalesSettings
from bridge.errors import Throttled
from bridge.http.batch import BatchRequest, batch_operations
from bridge.http.client import ApiClient
from bridge.http.limiter import AdaptiveLimiter, LimiterSettings
from bridge.http.retry import RetryPolicy

pytestmark = pytest.mark.looptime

POLICY = RetryPolicy(max_attempts=6, initial_backoff=0.01, max_backoff=0.1)
CAPACITY = 300
"""Operations the fake F&O admits in any sliding second (the throttled bench's figure)."""


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class ResourceLimitedService:
    """A fake F&O throttling like the emulator's ``ResourceThrottle`` (spec B.3): it admits a
    request while the operations admitted in the last second are below ``capacity`` (a
    request weighs the operations named in its ``X-Operations`` test header), else answers
    429 with a whole-second ``Retry-After``; an admitted request takes ``latency``."""

    capacity: int = CAPACITY
    latency: float = 0.05
    admitted: list[tuple[float, int]] = field(default_factory=list)
    refused: int = 0
    _window: deque[tuple[float, int]] = field(default_factory=deque)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            client_id = parse_qs(request.content.decode())["client_id"][0]
            token = {"token_type": "Bearer", "expires_in": 3599, "access_token": client_id}
            return httpx.Response(200, json=token)
        at = now()
        while self._window and self._window[0][0] <= at - 1.0:
            self._window.popleft()
        if sum(cost for _, cost in self._window) >= self.capacity:
            self.refused += 1
            message = "…due to system experiencing high resource utilization."
            body = {"error": {"code": "", "message": message}}
            return httpx.Response(429, json=body, headers={"Retry-After": "1"})
        cost = int(request.headers.get("X-Operations", "1"))
        self._window.append((at, cost))
        self.admitted.append((at, cost))
        await asyncio.sleep(self.latency)
        return httpx.Response(200, json={"value": []})

    def operations_between(self, start: float, end: float) -> int:
        return sum(cost for at, cost in self.admitted if start <= at < end)

    def busiest_second(self) -> int:
        """The most operations admitted in any sliding second."""
        starts = [at for at, _ in self.admitted]
        return max(self.operations_between(at, at + 1.0) for at in starts)


def api_client(service: ResourceLimitedService, settings: ApiSettings | None = None) -> ApiClient:
    settings = settings or FnoSettings(concurrency_initial=8)
    return ApiClient(settings, "/data", POLICY, transport=httpx.MockTransport(service))


async def send(api: ApiClient, operations: int) -> None:
    headers = {"X-Operations": str(operations)}
    await api.request("POST", "$batch", content=b"-", headers=headers, operations=operations)


async def run_for(api: ApiClient, seconds: float, workers: int, operations: int) -> int:
    """Keep ``workers`` callers sending requests of ``operations`` each until ``seconds``
    have passed; the number of requests that failed (retries exhausted)."""
    failed = 0
    end = now() + seconds

    async def worker() -> None:
        nonlocal failed
        while now() < end:
            try:
                await send(api, operations)
            except Throttled:
                failed += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    return failed


async def test_a_run_at_the_ceiling_gets_at_least_90_percent_of_it_with_few_429s() -> None:
    # like the bridge's apply, the callers offer a third more than the service admits
    # (4 callers x 25 operations per 250 ms) and cannot catch up in a burst after a pause
    service = ResourceLimitedService(latency=0.25)
    async with api_client(service) as api:
        failed = await run_for(api, 60.0, workers=4, operations=25)
    steady = service.operations_between(10.0, 60.0) / 50.0
    assert failed == 0
    assert steady >= 0.9 * CAPACITY, (steady, service.refused)
    assert service.refused <= 10, service.refused


@pytest.mark.parametrize("registrations", [2, 4])
async def test_registrations_sharing_one_ceiling_each_learn_their_share(
    registrations: int,
) -> None:
    # F&O throttles all callers of a server together (spec B.3): each registration learns
    # the share it was admitted
    extra = [Registration(client_id=f"r{n}", client_secret="s") for n in range(registrations - 1)]
    service = ResourceLimitedService(latency=0.25)
    async with api_client(service, FnoSettings(extra_registrations=extra)) as api:
        failed = await run_for(api, 120.0, workers=2 + 2 * registrations, operations=25)
    steady = service.operations_between(10.0, 120.0) / 110.0
    assert failed == 0
    assert steady >= 0.85 * CAPACITY, (steady, service.refused)
    assert service.refused <= 20, service.refused
    assert all(r.limiter.rate is not None for r in api.registrations)


async def test_before_the_first_429_nothing_is_paced() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(initial=1))
    started = now()
    for _ in range(100):
        async with limiter.slot(cost=200) as report:
            report.headers = {}
    assert limiter.rate is None
    assert now() == started  # 20,000 operations, not one moment waited


async def test_a_429_sets_the_rate_to_a_fraction_of_what_was_admitted_in_the_last_second() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(rate_fraction=0.9, initial=8))
    await asyncio.sleep(5.0)
    for cost in (100, 60, 40):  # 200 operations admitted just before the 429
        async with limiter.slot(cost) as report:
            report.headers = {}
    await asyncio.sleep(0.5)
    await throttle(limiter, retry_after=1.0)
    assert limiter.rate == pytest.approx(0.9 * 200)


async def test_operations_admitted_more_than_a_second_before_the_429_do_not_count() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(rate_fraction=1.0))
    async with limiter.slot(1_000) as report:
        report.headers = {}
    await asyncio.sleep(1.5)
    async with limiter.slot(50) as report:
        report.headers = {}
    await throttle(limiter, retry_after=1.0)
    assert limiter.rate == pytest.approx(50)


async def test_paced_requests_start_apart_by_their_cost_at_the_rate() -> None:
    limiter = await paced(rate=100.0, retry_after=1.0)
    resumed = now() + 1.0  # the Retry-After
    costs = (50, 20, 30, 1)
    starts = await asyncio.gather(*(start_of(limiter, cost) for cost in costs))
    ordered = sorted(zip(starts, costs, strict=True))
    assert ordered[0][0] == pytest.approx(resumed)
    for (at, cost), (next_at, _) in itertools.pairwise(ordered):
        assert next_at - at == pytest.approx(cost / 100.0)


async def test_a_request_cancelled_while_waiting_takes_nothing_from_the_window_or_rate() -> None:
    limiter = await paced(rate=100.0, retry_after=0.0)
    first = now()
    assert await start_of(limiter, 100) == first  # books the next second
    waiting = asyncio.create_task(start_of(limiter, 100))
    await asyncio.sleep(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.in_flight == 0
    # the cancelled request's turn went to the next one, nothing was booked for it
    assert await start_of(limiter, 1) == pytest.approx(first + 1.0)


async def test_one_throttling_episode_narrows_the_rate_once() -> None:
    limiter = AdaptiveLimiter(LimiterSettings(rate_fraction=1.0, decrease=0.5, initial=20))
    for _ in range(4):
        async with limiter.slot(50) as report:
            report.headers = {}

    async def answered_429_later() -> None:
        async with limiter.slot(10):
            await asyncio.sleep(0.2)
            raise Throttled("429", retry_after=1.0)

    results = await asyncio.gather(
        *(answered_429_later() for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, Throttled) for r in results)
    # narrowed once, when the first 429 came: the 200 operations admitted before and the
    # 7 requests still running then (not known to be refused yet); each later 429 of the
    # episode would have taken 10 less
    assert limiter.rate == pytest.approx(200 + 7 * 10)
    assert limiter.limit == 10


async def test_the_rate_grows_by_its_step_per_second_of_paced_running() -> None:
    limiter = await paced(rate=100.0, retry_after=0.0, increase=0.01)
    for _ in range(100):  # 100 requests of 10 operations: about 10 s at 100 to 110/s
        async with limiter.slot(10) as report:
            report.headers = {}
    assert limiter.rate == pytest.approx(100 + 1.0 * 10, rel=0.02)


async def test_a_429_right_after_a_pause_lowers_the_rate_by_at_most_half() -> None:
    limiter = await paced(rate=100.0, retry_after=1.0)
    await asyncio.sleep(1.0)
    await throttle(limiter, retry_after=1.0)  # nothing admitted since the pause
    assert limiter.rate == pytest.approx(50)


async def test_a_429_with_nothing_admitted_teaches_no_rate() -> None:
    limiter = AdaptiveLimiter()
    await throttle(limiter, retry_after=1.0)
    assert limiter.rate is None


async def test_the_rate_is_forgotten_a_while_after_the_last_429() -> None:
    limiter = await paced(rate=10.0, retry_after=0.0, memory=30.0)
    await asyncio.sleep(31.0)
    started = now()
    for _ in range(10):
        async with limiter.slot(100) as report:
            report.headers = {}
    assert limiter.rate is None
    assert now() == started


@pytest.mark.parametrize(
    ("settings", "expected_rate"),
    [(FnoSettings(), 0.95 * 3 * 90), (SalesSettings(), 0.95 * 3)],
    ids=["fno weighs operations", "dataverse counts requests"],
)
async def test_a_request_costs_its_operations_where_the_service_counts_them(
    settings: ApiSettings, expected_rate: float
) -> None:
    service = ResourceLimitedService(capacity=270, latency=0.0)
    async with api_client(service, settings) as api:
        for _ in range(3):
            await send(api, operations=90)
        await send(api, operations=90)  # the window is full: 429, then retried
    assert service.refused == 1
    assert api.registrations[0].limiter.rate == pytest.approx(expected_rate, rel=0.01)


async def test_each_registration_learns_its_own_rate() -> None:
    calls: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            client_id = parse_qs(request.content.decode())["client_id"][0]
            return httpx.Response(200, json={"expires_in": 3599, "access_token": client_id})
        calls.append(principal := request.headers["Authorization"].removeprefix("Bearer "))
        if principal == "bridge-local" and len(calls) == 4:
            return httpx.Response(429, json={"error": {}}, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"value": []})

    settings = FnoSettings(
        extra_registrations=[Registration(client_id="bridge-2", client_secret="s")]
    )
    async with ApiClient(settings, "/data", POLICY, transport=httpx.MockTransport(answer)) as api:
        for _ in range(4):
            await api.request("POST", "$batch", content=b"-", operations=10, registration=0)
        await api.request("POST", "$batch", content=b"-", operations=10, registration=1)
    local, other = (r.limiter for r in api.registrations)
    assert local.rate == pytest.approx(0.95 * 30, rel=0.01)
    assert other.rate is None


def test_a_batch_weighs_as_many_operations_as_its_change_sets_hold() -> None:
    one = BatchRequest("POST", "http://f/data/CustomersV3", {})
    assert batch_operations([[one], [one, one], [one]]) == 4


async def throttle(limiter: AdaptiveLimiter, retry_after: float) -> None:
    with pytest.raises(Throttled):
        async with limiter.slot():
            raise Throttled("429", retry_after=retry_after)


async def paced(
    rate: float, retry_after: float, increase: float = 0.0, memory: float = 60.0
) -> AdaptiveLimiter:
    """A limiter that learned ``rate`` from a 429 with ``retry_after``, just now."""
    settings = LimiterSettings(rate_fraction=1.0, rate_increase=increase, rate_memory=memory)
    limiter = AdaptiveLimiter(settings)
    async with limiter.slot(int(rate)) as report:
        report.headers = {}
    await throttle(limiter, retry_after)
    assert limiter.rate == pytest.approx(rate)
    return limiter


async def start_of(limiter: AdaptiveLimiter, cost: int) -> float:
    async with limiter.slot(cost) as report:
        report.headers = {}
        return now()
