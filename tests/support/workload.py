"""Workloads a test runs as a user of a source system, recorded in a :class:`Ledger`.

Each business key gets one script of one kind:

- ``created``: created once;
- ``updated``: created, then ``RAPID_UPDATES`` PATCHes sent at the same moment, so their
  versions race (two of them write the same column);
- ``deleted``: created, updated, deleted;
- ``recreated``: created, deleted, and a new record created with the same business key;
- ``restored``: created, deleted, and brought back with its old id and business key (the
  Dataverse recycle bin restores records with their GUID; F&O has no id besides the key,
  so its workload has no separate ``restored`` kind).

Scripts of different keys run concurrently; the writes of one key are in order except the
rapid updates.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from bridge.http.client import ApiClient
from tests.support.expectations import COMPANY
from tests.support.ledger import RECREATE, RESTORE, Ledger, Record
from tests.support.systems import CROSS_COMPANY, read_accounts, read_released_products

RAPID_UPDATES = 4
COSTS = {"created": 1, "updated": 1 + RAPID_UPDATES, "deleted": 3, "recreated": 3, "restored": 3}
SALES_KINDS = ("created", "updated", "deleted", "recreated", "restored")
FNO_KINDS = ("created", "updated", "deleted", "recreated")
REPRESENTATION = {"Prefer": "return=representation"}


def plan(changes: int, kinds: tuple[str, ...]) -> list[str]:
    """Kinds of keys, taken in turn, until their writes add up to at least ``changes``."""
    planned: list[str] = []
    for kind in itertools.cycle(kinds):
        if sum(COSTS[k] for k in planned) >= changes:
            return planned
        planned.append(kind)
    raise AssertionError("unreachable")


async def run_scripts(
    kinds: list[str],
    script: Callable[[int, str], Awaitable[None]],
    concurrency: int,
    seconds: float | None,
) -> None:
    """Run ``script(index, kind)`` for every planned key, ``concurrency`` keys at a time;
    with ``seconds``, key ``i`` starts no earlier than ``i / len(kinds) * seconds`` after the
    first, so the writes spread over that time and a fault can strike mid-stream."""
    limit = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(index: int, kind: str) -> None:
        if seconds:
            await asyncio.sleep(max(0.0, start + index / len(kinds) * seconds - loop.time()))
        async with limit:
            await script(index, kind)

    await asyncio.gather(*(one(i, k) for i, k in enumerate(kinds)))


class AccountWorkload:
    """Accounts written in Sales through the Dataverse Web API as a user."""

    def __init__(self, sales: ApiClient, ledger: Ledger, label: str) -> None:
        self.sales = sales
        self.ledger = ledger
        self.label = label

    async def run(
        self,
        changes: int,
        *,
        seconds: float | None = None,
        kinds: tuple[str, ...] = SALES_KINDS,
        concurrency: int = 8,
    ) -> None:
        """About ``changes`` writes, spread over ``kinds`` (and over ``seconds``, if given)."""
        await run_scripts(plan(changes, kinds), self._script, concurrency, seconds)

    async def refresh(self) -> None:
        """Record the live accounts as Sales holds them now (after the rapid updates)."""
        accounts = await read_accounts(self.sales)
        for key, history in self.ledger.keys.items():
            if history.live is not None:
                assert accounts[key]["accountid"] == history.live.record_id, key
                self.ledger.refreshed(key, accounts[key])

    async def _script(self, index: int, kind: str) -> None:
        body = {
            "name": f"{self.label} {index}",
            "telephone1": f"555-{index:04d}",
            "address1_city": f"City {index}",
            "creditlimit": 1000.0 + index,
        }
        account = await self._post(body)
        number, account_id = account["accountnumber"], account["accountid"]
        self.ledger.created(number, kind, account_id, account)
        if kind == "updated":
            await self._rapid_updates(account, index)
        elif kind == "deleted":
            self.ledger.updated(
                number, await self._patch(account_id, {"name": f"{body['name']} v2"})
            )
            await self._delete(number, account_id)
        elif kind in ("recreated", "restored"):
            await self._delete(number, account_id)
            again = {
                **body,
                "accountnumber": number,
                "name": f"{body['name']} {kind}",
                "telephone1": f"555-{index + 9000:04d}",
            }
            if kind == "restored":
                again["accountid"] = account_id
            record = await self._post(again)
            operation = RESTORE if kind == "restored" else RECREATE
            self.ledger.created(number, kind, record["accountid"], record, operation)

    async def _rapid_updates(self, account: Record, index: int) -> None:
        name = account["name"]
        patches: list[Record] = [
            {"name": f"{name} v1"},
            {"name": f"{name} v2", "telephone1": f"555-{index + 5000:04d}"},
            {"address1_city": f"Moved {index}"},
            {"creditlimit": 5000.0 + index},
        ]
        patches = patches[:RAPID_UPDATES]
        states = await asyncio.gather(*(self._patch(account["accountid"], p) for p in patches))
        for state in sorted(states, key=lambda s: int(s["versionnumber"])):
            self.ledger.updated(account["accountnumber"], state)

    async def _post(self, body: Record) -> Record:
        response = await self.sales.request("POST", "accounts", json=body, headers=REPRESENTATION)
        record: Record = response.json()
        return record

    async def _patch(self, account_id: str, body: Record) -> Record:
        response = await self.sales.request(
            "PATCH",
            f"accounts({account_id})",
            json=body,
            headers={**REPRESENTATION, "If-Match": "*"},
        )
        record: Record = response.json()
        return record

    async def _delete(self, number: str, account_id: str) -> None:
        await self.sales.request("DELETE", f"accounts({account_id})")
        self.ledger.deleted(number)


class ProductWorkload:
    """Released products written in F&O through its OData API as a user."""

    def __init__(self, fno: ApiClient, ledger: Ledger, label: str) -> None:
        self.fno = fno
        self.ledger = ledger
        self.label = label

    async def run(
        self, changes: int, *, seconds: float | None = None, concurrency: int = 8
    ) -> None:
        """About ``changes`` writes, spread over the kinds of :data:`FNO_KINDS` (and over
        ``seconds``, if given)."""
        await run_scripts(plan(changes, FNO_KINDS), self._script, concurrency, seconds)

    async def refresh(self) -> None:
        """Record the live products as F&O holds them now."""
        products = await read_released_products(self.fno)
        for key, history in self.ledger.keys.items():
            if history.live is not None:
                self.ledger.refreshed(key, products[key])

    async def _script(self, index: int, kind: str) -> None:
        number = f"{self.label}-{index:04d}"
        product = await self._post(number, f"{self.label} product {index}", 10.0 + index)
        self.ledger.created(number, kind, self._id(number), product)
        if kind == "updated":
            await self._rapid_updates(number, product, index)
        elif kind == "deleted":
            await self._patch(number, {"ProductName": f"{product['ProductName']} v2"})
            await self._delete(number)
        elif kind == "recreated":
            await self._delete(number)
            again = await self._post(number, f"{product['ProductName']} recreated", 500.0 + index)
            self.ledger.created(number, kind, self._id(number), again, RECREATE)

    async def _rapid_updates(self, number: str, product: Record, index: int) -> None:
        name = product["ProductName"]
        patches: list[Record] = [
            {"ProductName": f"{name} v1"},
            {"SalesPrice": 100.0 + index},
            {"ProductName": f"{name} v2", "SalesPrice": 200.0 + index},
            {"ProductName": f"{name} v3"},
        ]
        patches = patches[:RAPID_UPDATES]
        await asyncio.gather(*(self._patch(number, p) for p in patches))

    def _id(self, number: str) -> str:
        return f"{COMPANY}|{number}".lower()

    def _path(self, number: str) -> str:
        return f"CDSReleasedDistinctProducts(dataAreaId='{COMPANY}',ProductNumber='{number}')"

    async def _post(self, number: str, name: str, price: float) -> Record:
        body = {
            "dataAreaId": COMPANY,
            "ProductNumber": number,
            "ItemNumber": number,
            "ProductName": name,
            "SalesPrice": price,
            "SalesUnitSymbol": "ea",
        }
        response = await self.fno.request("POST", "CDSReleasedDistinctProducts", json=body)
        record: Record = response.json()
        return record

    async def _patch(self, number: str, body: Record) -> None:
        """F&O answers a PATCH with no body; the state recorded is the one the test meant
        (only concurrent updates are ambiguous, and their keys are refreshed from F&O)."""
        await self.fno.request("PATCH", self._path(number), json=body, params=CROSS_COMPANY)
        self.ledger.updated(number, {**self.ledger.keys[number].incarnations[-1].final, **body})

    async def _delete(self, number: str) -> None:
        await self.fno.request("DELETE", self._path(number), params=CROSS_COMPANY)
        self.ledger.deleted(number)
