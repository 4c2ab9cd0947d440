"""Named business rules of the prospect-to-cash templates that a field map cannot express.

Each rule is pure: it reads the source image, may adjust the mapped values in place and may
return further writes. Templates name the rules they use in ``rules``.

- ``line_discount_to_fno`` (§7.3, Sales → F&O): Sales keeps one discount amount per line
  ("Line item" method); F&O keeps a per-unit line discount. The line discount is the amount
  divided by the quantity, rounded to cents; the rounding remainder goes to the line's
  sales charges, so quantity x discount - charges gives the Sales amount back exactly.
- ``line_discount_to_sales`` (§7.3, F&O → Sales): the inverse.
- ``freight_tax_line`` (§7.3, F&O → Sales order headers): header-level tax (tax on
  freight) has no place in Sales, so it becomes one write-in line "Freight Tax" with the
  tax as its price and ``msdynce_ismisctax`` set; the header keeps it in
  ``msdynce_misctax``. The line's sequence number is :data:`FREIGHT_TAX_SEQUENCE`. The
  line carries the tax amount, so when the header tax becomes zero an existing line is
  zeroed (the sync is upsert-only, §13 invariant 7, so it is not deleted), and an order
  that has no header tax gets no line (``UPDATE_IF_EXISTS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bridge.errors import ConfigError, MappingError
from bridge.mapping.template import BindCandidate
from bridge.mapping.writes import BindRef, MappingContext, TargetWrite, WriteKind, blank

FREIGHT_TAX_SEQUENCE = 1_000_000
FREIGHT_TAX_NAME = "Freight Tax"
CENT = Decimal("0.01")

Rule = Callable[[Mapping[str, Any], dict[str, Any], MappingContext], list[TargetWrite]]


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value or 0))
    except ArithmeticError as exc:
        raise MappingError(f"{value!r} is not an amount") from exc


def line_discount_to_fno(
    image: Mapping[str, Any], values: dict[str, Any], _context: MappingContext
) -> list[TargetWrite]:
    """Sales line discount amount → F&O per-unit line discount plus rounding charge."""
    quantity = _money(image.get("quantity"))
    total = _money(image.get("manualdiscountamount"))
    if quantity == 0 or total == 0:
        values["LineDiscountAmount"] = 0.0
        values["TotalChargesAmount"] = 0.0
        return []
    per_unit = (total / quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    values["LineDiscountAmount"] = float(per_unit)
    values["TotalChargesAmount"] = float(per_unit * quantity - total)
    return []


def line_discount_to_sales(
    image: Mapping[str, Any], values: dict[str, Any], _context: MappingContext
) -> list[TargetWrite]:
    """F&O per-unit line discount and charge → Sales line discount amount."""
    quantity = _money(image.get("OrderedSalesQuantity", image.get("InvoicedQuantity")))
    per_unit = _money(image.get("LineDiscountAmount"))
    charges = _money(image.get("TotalChargesAmount"))
    values["manualdiscountamount"] = float((quantity * per_unit - charges).quantize(CENT))
    return []


def freight_tax_line(
    image: Mapping[str, Any], values: dict[str, Any], _context: MappingContext
) -> list[TargetWrite]:
    """Header tax of an F&O order → ``msdynce_misctax`` plus one "Freight Tax" write-in line."""
    tax = _money(image.get("OrderHeaderTaxAmount"))
    values["msdynce_misctax"] = float(tax)
    order = image.get("SalesOrderNumber")
    if blank(order):
        return []
    header = BindRef(
        order, (BindCandidate(nav="salesorderid", entity_set="salesorders", match="ordernumber"),)
    )
    line = {
        "productdescription": FREIGHT_TAX_NAME,
        "isproductoverridden": True,
        "ispriceoverridden": True,
        "quantity": 1.0,
        "priceperunit": float(tax),
        "msdynce_ismisctax": True,
    }
    key = {"salesorderid": header, "sequencenumber": FREIGHT_TAX_SEQUENCE}
    kind = WriteKind.UPDATE_IF_EXISTS if tax == 0 else WriteKind.UPSERT
    return [TargetWrite(kind, "salesorderdetails", key, line)]


RULES: dict[str, Rule] = {
    "line_discount_to_fno": line_discount_to_fno,
    "line_discount_to_sales": line_discount_to_sales,
    "freight_tax_line": freight_tax_line,
}


def apply_rules(
    names: Sequence[str], image: Mapping[str, Any], values: dict[str, Any], context: MappingContext
) -> list[TargetWrite]:
    """Run the named rules in order; return the writes they add."""
    writes: list[TargetWrite] = []
    for name in names:
        rule = RULES.get(name)
        if rule is None:
            raise ConfigError(f"unknown rule {name!r}; known: {sorted(RULES)}")
        writes.extend(rule(image, values, context))
    return writes
