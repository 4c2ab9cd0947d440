"""Sales documents (quote, order, invoice) and their lines: what Sales computes on its own
and what the P2C solution's line plug-ins add (prospect-to-cash.md §2, §6, §7.2, §10).

Standard Sales ("Use system pricing calculation", "Line item" discounts):

- A line created without ``sequencenumber`` gets the next integer of its header: one more than
  the highest of the header's other lines (starting at 1), misc-tax lines ignored (the
  bridge numbers its "Freight Tax" line 1000000), skipping numbers already taken.
- Line ``baseamount = quantity x priceperunit`` and ``extendedamount = baseamount -
  manualdiscountamount + tax``, on every line write (both columns are read-only for
  clients; empty when quantity or price is).
- Header ``totallineitemamount = Σ extendedamount``, ``totaltax = Σ tax`` and
  ``totalamount = totallineitemamount - discountamount + freightamount`` whenever the
  header has lines: on every header write, and by a derived header write after every line
  create, update or delete. A header without lines keeps the totals written to it.

P2C solution (PreOperationQuoteLine*/PreOperationOrderLine*):

- Header ``msdynce_hasexternallymaintainedproductsonly`` = the header has at least one
  counted line and every counted line has a product whose ``msdynce_ismaintainedexternally``
  is true (a write-in line counts and makes it false); order lines with ``msdynce_ismisctax``
  (the "Freight Tax" write-in line) are not counted. Recomputed on every header write and
  line create/update/delete; a product's later flag change is not propagated (the real
  product plug-ins only maintain price-list entries).
- Quote and order lines carry the header's value in
  ``msdynce_quotehasexternalmaintainedproductsonly`` /
  ``msdynce_orderhasexternalmaintainedproductsonly``: set on the line's own write, and by
  derived writes to the other lines when the header's value changes.

Amounts are summed as decimals and stored rounded to 4 places (Dataverse money precision).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.emulators.common.plugins import PluginContext, Stage
from bridge.emulators.common.store import Op, StoredRecord
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.odata.values import LookupRef

EXTERNAL_ONLY = "msdynce_hasexternallymaintainedproductsonly"
MISC_TAX = "msdynce_ismisctax"
PRODUCT_EXTERNAL = "msdynce_ismaintainedexternally"
_INDEX = "document-lines"
_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Document:
    """A header table, its line table, the line's header lookup and its copy of the flag."""

    header: str
    line: str
    parent: str
    line_flag: str | None


QUOTE = Document(
    "quote", "quotedetail", "quoteid", "msdynce_quotehasexternalmaintainedproductsonly"
)
ORDER = Document(
    "salesorder",
    "salesorderdetail",
    "salesorderid",
    "msdynce_orderhasexternalmaintainedproductsonly",
)
INVOICE = Document("invoice", "invoicedetail", "invoiceid", None)
DOCUMENTS = (QUOTE, ORDER, INVOICE)


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _money(value: Decimal) -> float:
    return float(value.quantize(_PLACES))


def line_amounts(values: Mapping[str, Any]) -> dict[str, float | None]:
    """``baseamount`` and ``extendedamount`` of a line (``None`` without quantity or price)."""
    quantity, price = values.get("quantity"), values.get("priceperunit")
    if quantity is None or price is None:
        return {"baseamount": None, "extendedamount": None}
    base = _amount(quantity) * _amount(price)
    extended = base - _amount(values.get("manualdiscountamount")) + _amount(values.get("tax"))
    return {"baseamount": _money(base), "extendedamount": _money(extended)}


def header_totals(
    lines: Iterable[Mapping[str, Any]], header: Mapping[str, Any]
) -> dict[str, float]:
    """The header totals of Sales' system pricing over ``lines``."""
    rows = list(lines)
    items = sum((_amount(row.get("extendedamount")) for row in rows), Decimal(0))
    tax = sum((_amount(row.get("tax")) for row in rows), Decimal(0))
    total = items - _amount(header.get("discountamount")) + _amount(header.get("freightamount"))
    return {
        "totallineitemamount": _money(items),
        "totaltax": _money(tax),
        "totalamount": _money(total),
    }


def line_number(taken: Iterable[tuple[int, bool]]) -> int:
    """The next ``sequencenumber`` given the ``(number, is misc tax)`` of existing lines."""
    pairs = list(taken)
    used = {number for number, _ in pairs}
    candidate = max((number for number, misc in pairs if not misc), default=0) + 1
    while candidate in used:
        candidate += 1
    return candidate


class DocumentLines:
    """The line and header steps of one kind of sales document."""

    def __init__(self, tables: DataverseTables, document: Document) -> None:
        self.tables = tables
        self.document = document
        self.header_entity = tables.entity(document.header)
        self.line_entity = tables.entity(document.line)

    def install(self) -> None:
        """Index lines by header and register the steps."""
        parent = self.document.parent
        self.tables.store.define_index(self.document.line, _INDEX, lambda v: _ref_id(v, parent))
        register = self.tables.plugins.register
        writes = (Op.CREATE, Op.UPDATE)
        register(self.document.line, Stage.PRE_OPERATION, self._number, ops=(Op.CREATE,))
        register(self.document.line, Stage.PRE_OPERATION, self._line, ops=writes)
        register(self.document.header, Stage.PRE_OPERATION, self._header, ops=writes)
        register(self.document.line, Stage.POST_OPERATION, self._sync_headers)

    def lines(self, header_id: str) -> list[StoredRecord]:
        """The lines of a header, by sequence number."""
        found = self.tables.store.find(self.document.line, _INDEX, header_id)
        return sorted(found, key=lambda r: (r.values.get("sequencenumber") or 0, r.key))

    def external_only(self, lines: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the counted ``lines`` exist and all have an externally maintained product."""
        counted = [line for line in lines if not (self._is_misc_tax(line))]
        return bool(counted) and all(self._external_product(line) for line in counted)

    def _is_misc_tax(self, line: Mapping[str, Any]) -> bool:
        return self.document is ORDER and line.get(MISC_TAX) is True

    def _external_product(self, line: Mapping[str, Any]) -> bool:
        ref = line.get("productid")
        if not isinstance(ref, LookupRef):
            return False
        product = self.tables.get(self.tables.entity("product"), ref.id)
        return product is not None and product.values.get(PRODUCT_EXTERNAL) is True

    def _number(self, context: PluginContext) -> None:
        header_id = _ref_id(context.values, self.document.parent)
        if context.values.get("sequencenumber") is not None or header_id is None:
            return
        taken = [
            (int(line.values.get("sequencenumber") or 0), self._is_misc_tax(line.values))
            for line in self.lines(header_id)
        ]
        context.values["sequencenumber"] = line_number(taken)

    def _line(self, context: PluginContext) -> None:
        context.values.update(line_amounts(context.values))
        header_id = _ref_id(context.values, self.document.parent)
        if self.document.line_flag is None or header_id is None:
            return
        me = context.values[self.line_entity.primary_id]
        others = [r.values for r in self.lines(header_id) if r.key[0] != me]
        context.values[self.document.line_flag] = self.external_only([*others, context.values])

    def _header(self, context: PluginContext) -> None:
        lines = [r.values for r in self.lines(context.values[self.header_entity.primary_id])]
        context.values[EXTERNAL_ONLY] = self.external_only(lines)
        if lines:
            context.values.update(header_totals(lines, context.values))

    def _sync_headers(self, context: PluginContext) -> None:
        header_ids = {
            _ref_id(context.values, self.document.parent),
            _ref_id(context.before, self.document.parent),
        }
        for header_id in sorted(h for h in header_ids if h is not None):
            header = self.tables.get(self.header_entity, header_id)
            if header is not None:
                self._sync_header(context, header)

    def _sync_header(self, context: PluginContext, header: StoredRecord) -> None:
        lines = self.lines(str(header.key[0]))
        rows = [line.values for line in lines]
        expected: dict[str, Any] = {EXTERNAL_ONLY: self.external_only(rows)}
        if rows:
            expected.update(header_totals(rows, header.values))
        changes = {k: v for k, v in expected.items() if header.values.get(k) != v}
        if changes:
            self.tables.derived_update(context, self.header_entity, header, changes)
        flag = self.document.line_flag
        if flag is None:
            return
        for line in lines:
            if line.values.get(flag) != expected[EXTERNAL_ONLY]:
                current = self.tables.store.get(self.document.line, line.key) or line
                self.tables.derived_update(
                    context, self.line_entity, current, {flag: expected[EXTERNAL_ONLY]}
                )


def _ref_id(values: Mapping[str, Any], attribute: str) -> str | None:
    ref = values.get(attribute)
    return ref.id if isinstance(ref, LookupRef) else None


def install_document_lines(tables: DataverseTables) -> dict[str, DocumentLines]:
    """Install the steps of every sales document; returns them by header table."""
    installed = {document.header: DocumentLines(tables, document) for document in DOCUMENTS}
    for lines in installed.values():
        lines.install()
    return installed
