"""The F&O sales totals formulas ("Calculate sales totals", prospect-to-cash.md §1.2, §7.3).

Pure functions, no store. Per line, with the per-unit line discount and the signed line
charges of §7.3 (the bridge puts the rounding remainder of a Sales discount into the charges):

- ``LineAmount = round(OrderedSalesQuantity * (SalesPrice - LineDiscountAmount) +
  TotalChargesAmount)``
- ``TotalTaxAmount = round(8 % * LineAmount)``
- line ``TotalDiscountAmount = round(OrderedSalesQuantity * LineDiscountAmount)``
- Sales-side discount (invoice ``LineTotalDiscountAmount``) =
  ``round(OrderedSalesQuantity * LineDiscountAmount - TotalChargesAmount)``, so that
  ``quantity * price - Sales discount = LineAmount`` (Sales qty 3, discount 10.00 = F&O line
  discount 3.33 and charges -0.01).

Per order, with the header charges ``OrderTotalChargesAmount`` (the "tax on freight" base):

- ``OrderHeaderTaxAmount = round(8 % * OrderTotalChargesAmount)``
- ``OrderTotalTaxAmount = sum(line TotalTaxAmount) + OrderHeaderTaxAmount``
- ``OrderTotalDiscountAmount = sum(line TotalDiscountAmount)``; the header's own ``TotalDiscountAmount``
  (an end discount) is not modelled and stays 0, as on invoices
  (informational: the discounts are already inside the line amounts)
- ``OrderTotalAmount = sum(LineAmount) + OrderTotalChargesAmount + OrderTotalTaxAmount``

``LineDiscountPercentage`` and multiline discounts are not applied. Amounts are rounded half
up to cents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

TAX_RATE = Decimal("0.08")
_CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """``value`` rounded half up to cents."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def decimal(value: Any) -> Decimal:
    """A stored number as a decimal (``None`` = 0)."""
    return Decimal(str(value)) if value is not None else Decimal(0)


@dataclass(frozen=True)
class LineInput:
    """What the totals of one line depend on."""

    quantity: Decimal
    price: Decimal
    discount: Decimal
    charges: Decimal

    @classmethod
    def of(cls, values: Mapping[str, Any], quantity: str = "OrderedSalesQuantity") -> LineInput:
        """The inputs of an order line (``quantity`` names the quantity field)."""
        return cls(
            quantity=decimal(values.get(quantity)),
            price=decimal(values.get("SalesPrice")),
            discount=decimal(values.get("LineDiscountAmount")),
            charges=decimal(values.get("TotalChargesAmount")),
        )


@dataclass(frozen=True)
class LineTotals:
    """The calculated amounts of one line."""

    amount: Decimal
    tax: Decimal
    discount: Decimal
    sales_discount: Decimal


@dataclass(frozen=True)
class OrderTotals:
    """The calculated amounts of an order, lines in input order."""

    lines: tuple[LineTotals, ...]
    charges: Decimal
    header_tax: Decimal
    tax: Decimal
    discount: Decimal
    amount: Decimal


def line_amount(line: LineInput) -> Decimal:
    """``LineAmount`` of a line."""
    return cents(line.quantity * (line.price - line.discount) + line.charges)


def line_totals(line: LineInput) -> LineTotals:
    """Every calculated amount of a line."""
    amount = line_amount(line)
    return LineTotals(
        amount=amount,
        tax=cents(amount * TAX_RATE),
        discount=cents(line.quantity * line.discount),
        sales_discount=cents(line.quantity * line.discount - line.charges),
    )


def order_totals(lines: Sequence[LineInput], charges: Decimal) -> OrderTotals:
    """The totals of an order with ``lines`` and header ``charges``."""
    calculated = tuple(line_totals(line) for line in lines)
    header_charges = cents(charges)
    header_tax = cents(header_charges * TAX_RATE)
    tax = sum((line.tax for line in calculated), Decimal(0)) + header_tax
    amounts = sum((line.amount for line in calculated), Decimal(0))
    return OrderTotals(
        lines=calculated,
        charges=header_charges,
        header_tax=header_tax,
        tax=tax,
        discount=sum((line.discount for line in calculated), Decimal(0)),
        amount=amounts + header_charges + tax,
    )
