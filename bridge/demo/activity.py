"""Realistic Sales activity for the demo: a user creating and editing accounts.

The user acts through the Dataverse Web API with its own app registration, exactly as a
person's app would; the bridge only sees the resulting webhooks and change tracking.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from bridge.http.client import ApiClient
from bridge.http.odata import entity_id_from_header

COMPANIES = (
    "Fourth Coffee",
    "Contoso Pharmaceuticals",
    "Adventure Works Cycles",
    "Alpine Ski House",
    "Blue Yonder Airlines",
    "Coho Winery",
    "Fabrikam Residences",
    "Litware Inc.",
    "Lucerne Publishing",
    "Margie's Travel",
    "Northwind Traders",
    "Proseware Inc.",
    "Relecloud",
    "Southridge Video",
    "Tailspin Toys",
    "Trey Research",
    "Wide World Importers",
    "Woodgrove Bank",
    "Wingtip Toys",
    "City Power & Light",
    "Graphic Design Institute",
    "Humongous Insurance",
    "Consolidated Messenger",
    "School of Fine Art",
)
CITIES = (
    ("Redmond", "WA", "98052", "United States"),
    ("Seattle", "WA", "98101", "United States"),
    ("Toronto", "ON", "M5H 2N2", "Canada"),
    ("Munich", "BY", "80331", "Germany"),
    ("London", "", "EC1A 1BB", "United Kingdom"),
    ("Copenhagen", "", "1050", "Denmark"),
)


@dataclass
class Change:
    """One user edit the demo waits to see in F&O."""

    account_number: str
    what: str
    expected: dict[str, Any]
    written_at: float = field(default_factory=time.monotonic)
    seen_at: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """Milliseconds from the Sales write returning to F&O showing the values."""
        return None if self.seen_at is None else (self.seen_at - self.written_at) * 1000


class SalesActivity:
    """Creates and updates accounts as the demo user."""

    def __init__(self, sales: ApiClient, seed: int = 7) -> None:
        self._sales = sales
        self._random = random.Random(seed)
        self._accounts: list[tuple[str, str, str]] = []

    async def create_account(self, index: int) -> Change:
        """Create one account with an address; Dataverse assigns the account number."""
        name = f"{self._random.choice(COMPANIES)} #{index + 1}"
        city, state, zip_code, country = self._random.choice(CITIES)
        body = {
            "name": name,
            "telephone1": f"+1 555 {self._random.randint(1000, 9999)}",
            "address1_line1": f"{self._random.randint(1, 999)} Main Street",
            "address1_city": city,
            "address1_stateorprovince": state,
            "address1_postalcode": zip_code,
            "address1_country": country,
            "creditlimit": float(self._random.choice((5000, 10000, 25000, 50000))),
        }
        response = await self._sales.request(
            "POST", "accounts", json=body, headers={"Prefer": "return=representation"}
        )
        record = response.json()
        account_id = record.get("accountid") or entity_id_from_header(
            response.headers.get("OData-EntityId", "")
        )
        number = str(record["accountnumber"])
        self._accounts.append((str(account_id), number, name))
        return Change(number, "create", {"OrganizationName": name, "AddressCity": city})

    async def update_random_account(self) -> Change | None:
        """Edit the credit limit and phone of an account created earlier."""
        if not self._accounts:
            return None
        account_id, number, _ = self._random.choice(self._accounts)
        limit = float(self._random.choice((7500, 15000, 30000, 75000)))
        phone = f"+1 555 {self._random.randint(1000, 9999)}"
        await self._sales.request(
            "PATCH", f"accounts({account_id})", json={"creditlimit": limit, "telephone1": phone}
        )
        return Change(number, "update", {"CreditLimit": limit, "PrimaryContactPhone": phone})
