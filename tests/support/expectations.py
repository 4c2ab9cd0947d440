"""What the target must show for what the test wrote, written out independently of the
bridge: field correspondences are copied by hand from the spec
(``shared/spec/prospect-to-cash.md``, cited per field), never computed by bridge code (no
template, no ``map_event``, no reconcile). Pure functions; no I/O.

Deletes: both flows tested here are upsert-only. The spec says "The sync is upsert-only.
[INF] Deletes are not propagated." (§13, invariant 7) and "Writes are upserts" (§1.1), and
``bridge/templates/accounts.json`` and ``products.json`` say ``"apply_deletes": false``. So a
record deleted in the source stays in the target, as it was last synchronised, and a key
deleted and created again is created in the target once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.ledger import KeyHistory, Ledger, Record

ACCOUNTS_APPLY_DELETES = False  # spec §13 invariant 7; accounts.json "apply_deletes": false
PRODUCTS_APPLY_DELETES = False  # spec §13 invariant 7; products.json "apply_deletes": false
COMPANY = "usmf"  # the default company Sales records go to (README: BRIDGE_FNO__DEFAULT_COMPANY)


def _text(value: Any) -> str:
    """F&O stores an empty string where Sales has null."""
    return "" if value is None else str(value)


def _money(value: Any) -> float:
    return round(float(value or 0), 2)


def customer_of_account(account: Mapping[str, Any]) -> Record:
    """The F&O customer (CustomersV3) an account must become.

    - CustomerAccount = accountnumber: §4 "Match key: Sales Account Number (accountnumber)",
      §12 "CUSTOMERACCOUNT = accountnumber";
    - OrganizationName = name, Address* = address1_*: §13 Customer table ("name | name |
      OrganizationName", "address ... | address1_* | Address*");
    - CreditLimit = creditlimit: §12 "CREDITLIMIT = creditlimit";
    - PrimaryContactPhone = telephone1: §4 [3P] "PrimaryContactEmail/Phone";
    - IsExternallyMaintained = Yes: §4 "Flags set in F&O ... set to Yes";
    - CustomerGroupId = 10: §4 "Template default 10".
    """
    return {
        "CustomerAccount": account["accountnumber"],
        "OrganizationName": account["name"],
        "PrimaryContactPhone": _text(account.get("telephone1")),
        "AddressCity": _text(account.get("address1_city")),
        "CreditLimit": _money(account.get("creditlimit")),
        "IsExternallyMaintained": "Yes",
        "CustomerGroupId": "10",
    }


def sales_product_of_released_product(product: Mapping[str, Any]) -> Record:
    """The Sales product (and its price-list entry) a released F&O product must become.

    - productnumber = ProductNumber: §3 "Match key: Product number";
    - name = ProductName: §3 [DW] "PRODUCTNAME→name", §13 Product "name";
    - price = SalesPrice, and the price list's amount = SalesPrice: §3 "The product sales
      price from [F&O] is used as the price on the price list", [DW] "SALESPRICE→price";
    - msdynce_ismaintainedexternally = true: §3 "Set to Yes by default on import".
    """
    return {
        "productnumber": product["ProductNumber"],
        "name": product["ProductName"],
        "price": _money(product.get("SalesPrice")),
        "price_list_amount": _money(product.get("SalesPrice")),
        "msdynce_ismaintainedexternally": True,
    }


@dataclass(frozen=True)
class Expected:
    """The target record of one key: one of ``acceptable`` (none if it must be absent)."""

    key: str
    kind: str
    acceptable: tuple[Record, ...]
    may_be_absent: bool = False


def expected_state(
    history: KeyHistory,
    target_of: Callable[[Mapping[str, Any]], Record],
    *,
    apply_deletes: bool,
    lossy_capture: bool,
) -> Expected:
    """What the target must hold for ``history``.

    A live key: the target of its live record as the source holds it now. A deleted key:
    absent if deletes are applied; otherwise the target of its last state, or absent if it
    was deleted before the bridge applied its creation. With
    ``lossy_capture`` (webhooks could not be delivered, so change tracking caught up, and it
    cannot see the updates of a record deleted meanwhile, nor a record created and deleted
    meanwhile) a deleted key may hold any state it had, or be absent.
    """
    if history.live is not None:
        return Expected(history.key, history.kind, (target_of(history.live.final),))
    if apply_deletes:
        return Expected(history.key, history.kind, ())
    if not lossy_capture:
        # the engine confirms a record's first change against the source, so a record
        # deleted before its creation was applied is never created (docs/architecture.md,
        # "Business keys that move between records"): absent, or its last state
        last = history.incarnations[-1].final
        return Expected(history.key, history.kind, (target_of(last),), may_be_absent=True)
    states = [target_of(s) for inc in history.incarnations for s in inc.states]
    return Expected(history.key, history.kind, tuple(states), may_be_absent=True)


def expected_states(
    ledger: Ledger,
    target_of: Callable[[Mapping[str, Any]], Record],
    *,
    apply_deletes: bool,
    lossy_capture: bool,
) -> dict[str, Expected]:
    """:func:`expected_state` of every key of the ledger."""
    return {
        key: expected_state(
            history, target_of, apply_deletes=apply_deletes, lossy_capture=lossy_capture
        )
        for key, history in ledger.keys.items()
    }


def expected_creates(history: KeyHistory, *, apply_deletes: bool, lossy_capture: bool) -> set[int]:
    """How often the bridge may have created the target of one key.

    Without applied deletes the target is never removed, so every incarnation after the
    first finds it and updates it: exactly one create. With applied deletes each
    incarnation may need its own create. A key that no longer lives may never have been
    created (deleted before its creation was applied, or unseen while capture was lossy).
    """
    most = len(history.incarnations) if apply_deletes else 1
    least = 0 if history.live is None else 1
    return set(range(least, most + 1))


@dataclass
class Mismatch:
    """One key whose target differs from what the test expects."""

    key: str
    kind: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key} ({self.kind}): {self.problem}"


def _field_diff(wanted: Record, actual: Record) -> str:
    parts = [
        f"{name} expected {value!r} got {actual.get(name, '<missing>')!r}"
        for name, value in wanted.items()
        if actual.get(name) != value
    ]
    return "; ".join(parts)


def judge_key(expected: Expected, actual: Record | None) -> Mismatch | None:
    """The mismatch of one key, or ``None`` when the target is as expected."""
    if actual is None:
        if expected.may_be_absent or not expected.acceptable:
            return None
        return Mismatch(expected.key, expected.kind, "missing in the target")
    if not expected.acceptable:
        return Mismatch(expected.key, expected.kind, f"present but must be absent: {actual}")
    wanted = {name: actual.get(name) for name in expected.acceptable[0]}
    if any(wanted == candidate for candidate in expected.acceptable):
        return None
    closest = expected.acceptable[-1]
    note = (
        ""
        if len(expected.acceptable) == 1
        else f" (or {len(expected.acceptable) - 1} earlier states)"
    )
    return Mismatch(expected.key, expected.kind, _field_diff(closest, actual) + note)


def judge(expected: Mapping[str, Expected], actual: Mapping[str, Record]) -> list[Mismatch]:
    """Every key whose target record is not what the test expects."""
    found = (judge_key(e, actual.get(key)) for key, e in expected.items())
    return sorted((m for m in found if m is not None), key=lambda m: (m.kind, m.key))


@dataclass
class CreateCount:
    """The bridge's writes to the target of one business key."""

    creates: int = 0
    updates: int = 0
    deletes: int = 0


@dataclass
class WriteVerdict:
    """Problems in the write counters, and totals for the report."""

    problems: list[str] = field(default_factory=list)
    wrong_keys: list[str] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)

    def add(self, key: str, problem: str) -> None:
        self.wrong_keys.append(key)
        self.problems.append(f"{key}: {problem}")


def judge_writes(
    ledger: Ledger,
    writes: Mapping[str, CreateCount],
    *,
    apply_deletes: bool,
    lossy_capture: bool,
) -> WriteVerdict:
    """Compare the bridge's creates and deletes per business key with what the workload
    allows: no key created more often than :func:`expected_creates`, no delete unless deletes
    are applied, and no target record for a key the test never wrote."""
    verdict = WriteVerdict()
    for key, counts in writes.items():
        verdict.totals.update(creates=counts.creates, updates=counts.updates)
        if key not in ledger.keys:
            verdict.add(key, "the bridge wrote a record the test never wrote")
    for key, history in sorted(ledger.keys.items()):
        counts = writes.get(key, CreateCount())
        allowed = expected_creates(
            history, apply_deletes=apply_deletes, lossy_capture=lossy_capture
        )
        if counts.creates not in allowed:
            expected = " or ".join(map(str, sorted(allowed)))
            verdict.add(
                key,
                f"({history.kind}) created {counts.creates} times by the bridge, "
                f"expected {expected}",
            )
        if counts.deletes and not apply_deletes:
            verdict.add(
                key,
                f"({history.kind}) deleted {counts.deletes} times by the bridge, "
                "but this flow does not apply deletes",
            )
    return verdict


def convergence_by_kind(ledger: Ledger, mismatches: list[Mismatch]) -> dict[str, str]:
    """``{"updated": "20/20", ...}``: keys of each kind whose target is right."""
    wrong = Counter(m.kind for m in mismatches)
    return {
        kind: f"{count - wrong[kind]}/{count}" for kind, count in sorted(ledger.kinds().items())
    }


def describe_mismatches(mismatches: list[Mismatch], limit: int = 25) -> str:
    """A readable diff, per key, of expected and actual target records."""
    lines = [str(m) for m in mismatches[:limit]]
    if len(mismatches) > limit:
        lines.append(f"... and {len(mismatches) - limit} more")
    return "\n  ".join(lines)
