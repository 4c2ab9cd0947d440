"""What the demo does and waits for: steps of the prospect-to-cash story, then a stream of
account edits, each with a check that says when the other system shows the change."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.demo.actors import OrderProcessor, Salesperson
from bridge.fno.sink import same_value

Check = Callable[[], Awaitable[bool]]

COMPANIES = (
    "Fourth Coffee", "Contoso Pharmaceuticals", "Adventure Works Cycles", "Alpine Ski House",
    "Blue Yonder Airlines", "Coho Winery", "Fabrikam Residences", "Litware Inc.",
    "Lucerne Publishing", "Margie's Travel", "Northwind Traders", "Proseware Inc.",
    "Relecloud", "Southridge Video", "Tailspin Toys", "Trey Research", "Wide World Importers",
    "Woodgrove Bank", "Wingtip Toys", "City Power & Light", "Graphic Design Institute",
    "Humongous Insurance", "Consolidated Messenger", "School of Fine Art",
)  # fmt: skip
CITIES = (
    ("Redmond", "WA", "98052", "United States"), ("Seattle", "WA", "98101", "United States"),
    ("Toronto", "ON", "M5H 2N2", "Canada"), ("Munich", "BY", "80331", "Germany"),
    ("London", "", "EC1A 1BB", "United Kingdom"), ("Copenhagen", "", "1050", "Denmark"),
)  # fmt: skip


@dataclass
class Change:
    """One user action the demo waits to see in the other system."""

    subject: str
    what: str
    expected: str
    check: Check
    written_at: float = field(default_factory=time.monotonic)
    seen_at: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """Milliseconds from the action returning to the other system showing it."""
        return None if self.seen_at is None else (self.seen_at - self.written_at) * 1000


def fno_customer_has(
    fno: OrderProcessor, company: str, number: str, values: dict[str, Any]
) -> Check:
    """A check: F&O's customer ``number`` holds ``values``."""

    async def check() -> bool:
        record = await fno.get("CustomersV3", {"dataAreaId": company, "CustomerAccount": number})
        return record is not None and all(same_value(record.get(k), v) for k, v in values.items())

    return check


class AccountActivity:
    """Creates and updates accounts as the demo's salesperson."""

    def __init__(self, sales: Salesperson, fno: OrderProcessor, seed: int = 7) -> None:
        self._sales = sales
        self._fno = fno
        self._random = random.Random(seed)
        self._accounts: list[tuple[str, str]] = []

    async def create_account(self, index: int) -> Change:
        """Create one account with an address; Dataverse assigns the account number."""
        name = f"{self._random.choice(COMPANIES)} #{index + 1}"
        city, state, zip_code, country = self._random.choice(CITIES)
        record = await self._sales.create_account(
            name,
            telephone1=f"+1 555 {self._random.randint(1000, 9999)}",
            address1_line1=f"{self._random.randint(1, 999)} Main Street",
            address1_city=city,
            address1_stateorprovince=state,
            address1_postalcode=zip_code,
            address1_country=country,
            creditlimit=float(self._random.choice((5000, 10000, 25000, 50000))),
        )
        number = str(record["accountnumber"])
        self._accounts.append((str(record["accountid"]), number))
        expected = {"OrganizationName": name, "AddressCity": city}
        return Change(
            number,
            "account created",
            f"customer {name}, {city}",
            fno_customer_has(self._fno, self._fno.company, number, expected),
        )

    async def update_random_account(self) -> Change | None:
        """Edit the credit limit and phone of an account created earlier."""
        if not self._accounts:
            return None
        account_id, number = self._random.choice(self._accounts)
        limit = float(self._random.choice((7500, 15000, 30000, 75000)))
        phone = f"+1 555 {self._random.randint(1000, 9999)}"
        await self._sales.update(
            "accounts", account_id, {"creditlimit": limit, "telephone1": phone}
        )
        expected = {"CreditLimit": limit, "PrimaryContactPhone": phone}
        return Change(
            number,
            "account edited",
            f"credit limit {limit:.0f}, phone {phone}",
            fno_customer_has(self._fno, self._fno.company, number, expected),
        )
