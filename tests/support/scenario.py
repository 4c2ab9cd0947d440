"""A flow judged end to end after a fault: what the test wrote (its ledger) against what the
target shows through its API, and what the bridge wrote there (the emulator's counters per
principal). The verdict prints what converged and how fast, and fails with a per-key diff.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest

from bridge.config import Settings
from bridge.http.client import ApiClient
from tests.support.expectations import (
    ACCOUNTS_APPLY_DELETES,
    PRODUCTS_APPLY_DELETES,
    CreateCount,
    Expected,
    WriteVerdict,
    convergence_by_kind,
    customer_of_account,
    describe_mismatches,
    expected_states,
    judge_writes,
    sales_product_of_released_product,
)
from tests.support.kafka_probe import FlowTopics, LagProbe, event_trail
from tests.support.ledger import Ledger, Record
from tests.support.systems import (
    by_business_key,
    emulator_stats,
    read_customers,
    read_sales_products,
    writes_by_label,
)
from tests.support.waiting import Convergence, TargetReader, converge


class Urls(Protocol):
    sales_url: str
    fno_url: str


class Systems(Protocol):
    """The running emulators and the test's clients (``conftest.Stack`` is one)."""

    @property
    def emulators(self) -> Urls: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def sales_user(self) -> ApiClient: ...
    @property
    def fno_user(self) -> ApiClient: ...
    @property
    def admin(self) -> httpx.AsyncClient: ...


@dataclass(frozen=True)
class FlowUnderTest:
    """A flow as the test sees it: where its events are, how to read its target, what the
    target must show, and what the bridge wrote where (per principal, from the emulators'
    counters): its writes to the target per business key, and its writes back to the
    source entity (echoes, which must be none)."""

    name: str
    source_topic: str
    target: str
    read_target: TargetReader
    target_of: Callable[[Mapping[str, Any]], Record]
    apply_deletes: bool
    bridge_writes: Callable[[], Awaitable[dict[str, CreateCount]]]
    echoes: Callable[[], Awaitable[int]]
    shown_field: str


def _echoes(
    systems: Systems, url: str, entity: str, principal: str
) -> Callable[[], Awaitable[int]]:
    """How many writes ``principal`` made to ``entity`` of the emulator at ``url``."""

    async def count() -> int:
        stats = await emulator_stats(systems.admin, url)
        counts = writes_by_label(stats, entity, principal).values()
        return sum(c.creates + c.updates + c.deletes for c in counts)

    return count


def accounts_flow(systems: Systems) -> FlowUnderTest:
    """Accounts in Sales → customers in F&O (CustomersV3)."""

    async def writes() -> dict[str, CreateCount]:
        stats = await emulator_stats(systems.admin, systems.emulators.fno_url)
        principal = systems.settings.fno.client_id
        return by_business_key(
            writes_by_label(stats, "CustomersV3", principal), field="CustomerAccount"
        )

    return FlowUnderTest(
        "accounts",
        "sales.account",
        "F&O customers",
        lambda: read_customers(systems.fno_user),
        customer_of_account,
        ACCOUNTS_APPLY_DELETES,
        writes,
        _echoes(systems, systems.emulators.sales_url, "account", systems.settings.sales.client_id),
        "name",
    )


def products_flow(systems: Systems) -> FlowUnderTest:
    """Released products in F&O → products (and price-list entries) in Sales."""

    async def writes() -> dict[str, CreateCount]:
        stats = await emulator_stats(systems.admin, systems.emulators.sales_url)
        products = await read_sales_products(systems.sales_user)
        number_of = {str(p["productid"]): number for number, p in products.items()}
        principal = systems.settings.sales.client_id
        return by_business_key(writes_by_label(stats, "product", principal), number_of)

    return FlowUnderTest(
        "products",
        "fno.product",
        "Sales products",
        lambda: read_sales_products(systems.sales_user),
        sales_product_of_released_product,
        PRODUCTS_APPLY_DELETES,
        writes,
        _echoes(
            systems,
            systems.emulators.fno_url,
            "CDSReleasedDistinctProducts",
            systems.settings.fno.client_id,
        ),
        "ProductName",
    )


@dataclass
class Verdict:
    """The outcome of one fault for one flow."""

    title: str
    flow: FlowUnderTest
    ledger: Ledger
    convergence: Convergence
    writes: WriteVerdict
    seconds: float
    evidence: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.convergence.converged and not self.writes.problems

    def summary(self) -> str:
        changes = ", ".join(f"{op} {n}" for op, n in sorted(self.ledger.changes.items()))
        kinds = ", ".join(
            f"{k} {v}"
            for k, v in convergence_by_kind(self.ledger, self.convergence.mismatches).items()
        )
        totals = self.writes.totals
        return (
            f"{self.title}: {self.ledger.total} changes ({changes}) on {len(self.ledger.keys)} keys\n"
            f"  {self.convergence.reason} after {self.seconds:.1f} s; right in "
            f"{self.flow.target} by kind: {kinds}\n"
            f"  the bridge wrote {self.flow.target}: {totals['creates']} creates, "
            f"{totals['updates']} updates; "
            + (
                "creates per key as allowed, no echo"
                if not self.writes.problems
                else "COUNTERS WRONG"
            )
            + "".join(f"\n  {note}" for note in self.notes)
        )

    def check(self) -> None:
        """Print the summary; fail with every difference found."""
        print(self.summary())
        if self.ok:
            return
        parts = [self.summary()]
        if self.convergence.mismatches:
            parts.append(
                f"{self.flow.target} differs from what the test wrote (key (kind): field expected, "
                f"got):\n  {describe_mismatches(self.convergence.mismatches)}"
            )
        if self.writes.problems:
            parts.append("write counters:\n  " + "\n  ".join(self.writes.problems[:25]))
        if self.evidence:
            parts.append(
                f"what the test wrote and the change events on {self.flow.source_topic}, for "
                "some of these keys:\n  " + "\n  ".join(self.evidence)
            )
        pytest.fail("\n".join(parts), pytrace=False)


async def judge_flow(
    title: str,
    flow: FlowUnderTest,
    ledger: Ledger,
    settings: Settings,
    *,
    lossy_capture: bool,
    timeout: float,
    started: float,
) -> Verdict:
    """Wait for ``flow`` to converge on what ``ledger`` says was written, then count the
    bridge's writes. ``started``: the event loop time the workload began."""
    expected = expected_states(
        ledger, flow.target_of, apply_deletes=flow.apply_deletes, lossy_capture=lossy_capture
    )
    waited_from = asyncio.get_running_loop().time()
    convergence = await _converge(flow, expected, settings, timeout)
    writes = judge_writes(
        ledger,
        await flow.bridge_writes(),
        apply_deletes=flow.apply_deletes,
        lossy_capture=lossy_capture,
    )
    if echoes := await flow.echoes():
        writes.problems.append(f"the bridge wrote {echoes} times back to the source (echo)")
    seconds = waited_from - started + convergence.seconds
    verdict = Verdict(title, flow, ledger, convergence, writes, seconds)
    if not verdict.ok:
        keys = [m.key for m in convergence.mismatches] + writes.wrong_keys
        verdict.evidence = await evidence(flow, ledger, settings, keys)
    return verdict


async def _converge(
    flow: FlowUnderTest, expected: Mapping[str, Expected], settings: Settings, timeout: float
) -> Convergence:
    """:func:`converge`, with "settled" meaning the flow's consumer group has committed
    every event on its topics."""
    topics = FlowTopics.of(
        settings.kafka.topic_prefix,
        settings.flows.consumer_group_prefix,
        flow.name,
        flow.source_topic,
    )
    async with LagProbe(settings.kafka.bootstrap_servers, [topics]) as probe:

        async def settled() -> bool:
            return await probe.lag() == 0

        return await converge(flow.read_target, expected, settled, timeout=timeout)


def _examples(ledger: Ledger, keys: list[str], per_kind: int = 2) -> list[str]:
    """Up to ``per_kind`` of ``keys`` of each workload kind."""
    chosen: list[str] = []
    taken: Counter[str] = Counter()
    for key in dict.fromkeys(keys):
        history = ledger.keys.get(key)
        if history is not None and taken[history.kind] < per_kind:
            chosen.append(key)
            taken[history.kind] += 1
    return chosen


async def evidence(
    flow: FlowUnderTest, ledger: Ledger, settings: Settings, keys: list[str]
) -> list[str]:
    """For a few wrong keys: each incarnation the test wrote, and the change events the
    bridge published for it (so a report says where a change got lost)."""
    examples = _examples(ledger, keys)
    record_ids = [i.record_id for k in examples for i in ledger.keys[k].incarnations]
    topic = f"{settings.kafka.topic_prefix}.{flow.source_topic}"
    trail = await event_trail(settings.kafka.bootstrap_servers, topic, record_ids, flow.shown_field)
    lines = []
    for key in examples:
        history = ledger.keys[key]
        shown: set[str] = set()
        for number, life in enumerate(history.incarnations, start=1):
            values = [repr(s.get(flow.shown_field)) for s in life.states]
            wrote = " -> ".join(v for i, v in enumerate(values) if i == 0 or v != values[i - 1])
            ending = ", deleted" if life.deleted else ""
            record = life.record_id.lower()
            events = "; ".join(trail[record]) or "none"
            if record in shown:
                events = "the same record's, above"
            shown.add(record)
            lines.append(
                f"{key} ({history.kind}) record {number} {life.record_id}: test wrote {wrote}"
                f"{ending}; events published: {events}"
            )
    return lines
