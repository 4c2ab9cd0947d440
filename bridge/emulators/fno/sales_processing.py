"""Sales order processing, exposed as OData actions on ``CDSSalesOrderHeaders``.

Real F&O does these in the UI and in batch jobs; the emulator offers them through the API so
that tests and the demo can drive them. Bound actions::

    POST /data/CDSSalesOrderHeaders(dataAreaId='usmf',SalesOrderNumber='000001')
         /Microsoft.Dynamics.DataEntities.<Action>            body {} or none

answer 200 with the order header as updated (plus ``ETag``); 404 when the order does not
exist or is in another company without ``cross-company=true``; 400 (F&O error shape,
``innererror.type`` ``Microsoft.Dynamics.Ax.Xpp.ErrorException``) when the order's
processing status does not allow the action or it has no lines:

=================== ======================= ================================================
action              allowed from            effect (header and every line)
=================== ======================= ================================================
``Confirm``         Active                  processing status Confirmed; confirmed shipping
                                            / receipt dates = the requested ones, else today
``CalculateTotals`` any status, lines       the "Calculate sales totals" job for the order
                    optional                (:mod:`bridge.emulators.fno.sales_totals`),
                                            ``AreTotalsUpdated``/``AreTotalsCalculated`` Yes
``PostPackingSlip`` Confirmed, Picked       processing status and ``SalesOrderStatus`` /
                                            ``SalesOrderLineStatus`` Delivered
``PostInvoice``     Confirmed, Delivered    one invoice (:mod:`bridge.emulators.fno.invoicing`)
                                            then status Invoiced
=================== ======================= ================================================

Unbound: ``POST /data/Microsoft.Dynamics.DataEntities.CalculateSalesTotals`` runs the job for
every order whose ``AreTotalsUpdated`` is No, in the caller's default company (every company
with ``cross-company=true``), and answers 200 ``{"value": <orders calculated>}``.

Every action runs in one store transaction, writes as the caller, and writes only what
changes. The totals job tags its writes (:data:`~bridge.emulators.fno.sales.TOTALS_TAG`) so
they do not mark the totals stale; every other action's writes do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.protocol import ApiRequest, ApiResponse, json_response
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.fno.actions import ActionRegistry
from bridge.emulators.fno.invoicing import create_invoice, posting_date
from bridge.emulators.fno.json import context_url, fno_etag, record_json
from bridge.emulators.fno.sales import HEADERS, TOTALS_TAG, YES, SalesOrders
from bridge.emulators.fno.sales_totals import LineInput, OrderTotals, decimal, order_totals
from bridge.emulators.odata.entities import EntityDef

XPP_ERROR_TYPE = "Microsoft.Dynamics.Ax.Xpp.ErrorException"
STATUS = "SalesOrderProcessingStatus"
_TOTALS = frozenset({TOTALS_TAG})


def not_allowed(order: Mapping[str, Any], action: str, allowed: tuple[str, ...]) -> ApiError:
    """400: the order's processing status does not allow ``action``."""
    message = (
        f"Sales order {order['SalesOrderNumber']} cannot be processed by {action}: its "
        f"processing status is {order[STATUS]}; {action} needs {' or '.join(allowed)}."
    )
    return ApiError(400, message, error_type=XPP_ERROR_TYPE)


def _differing(values: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if values.get(k) != v}


class SalesOrderProcessing:
    """The sales order actions of one F&O emulator."""

    def __init__(self, orders: SalesOrders, default_company: str) -> None:
        self.orders = orders
        self.tables = orders.tables
        self.default_company = default_company.casefold()

    def register(self, actions: ActionRegistry) -> None:
        """Offer the actions on ``CDSSalesOrderHeaders`` and the unbound totals job."""
        headers = self.orders.headers
        actions.bind(headers, "Confirm", self.confirm)
        actions.bind(headers, "CalculateTotals", self.calculate_totals)
        actions.bind(headers, "PostPackingSlip", self.post_packing_slip)
        actions.bind(headers, "PostInvoice", self.post_invoice)
        actions.unbound("CalculateSalesTotals", self.calculate_sales_totals)

    def confirm(self, request: ApiRequest, entity: EntityDef, order: StoredRecord) -> ApiResponse:
        """Active -> Confirmed, with confirmed dates."""
        principal = request.principal.client_id
        with self.tables.store.transaction():
            lines = self._lines(order, "Confirm", ("Active",))
            today = posting_date(self.tables.store.now())
            ship = order.values.get("RequestedShippingDate") or today
            receipt = order.values.get("RequestedReceiptDate") or ship
            dates = {"ConfirmedShippingDate": ship, "ConfirmedReceiptDate": receipt}
            updated = self._write(order, {STATUS: "Confirmed", **dates}, principal)
            for line in lines:
                line_dates = {
                    "ConfirmedShippingDate": line.values.get("RequestedShippingDate") or ship,
                    "ConfirmedReceiptDate": line.values.get("RequestedReceiptDate") or receipt,
                }
                self._write_line(line, {STATUS: "Confirmed", **line_dates}, principal)
        return self._answer(request, entity, updated)

    def calculate_totals(
        self, request: ApiRequest, entity: EntityDef, order: StoredRecord
    ) -> ApiResponse:
        """The totals job for one order."""
        with self.tables.store.transaction():
            updated = self.calculate(order, request.principal.client_id)
        return self._answer(request, entity, updated)

    def post_packing_slip(
        self, request: ApiRequest, entity: EntityDef, order: StoredRecord
    ) -> ApiResponse:
        """Confirmed/Picked -> Delivered."""
        principal = request.principal.client_id
        with self.tables.store.transaction():
            lines = self._lines(order, "PostPackingSlip", ("Confirmed", "Picked"))
            updated = self._deliver_or_invoice(order, lines, "Delivered", principal)
        return self._answer(request, entity, updated)

    def post_invoice(
        self, request: ApiRequest, entity: EntityDef, order: StoredRecord
    ) -> ApiResponse:
        """Confirmed/Delivered -> one invoice, then Invoiced."""
        principal = request.principal.client_id
        with self.tables.store.transaction():
            lines = self._lines(order, "PostInvoice", ("Confirmed", "Delivered"))
            create_invoice(self.tables, order, lines, self.totals(order, lines), principal)
            current = self.tables.store.get(HEADERS, order.key) or order
            fresh = self.orders.lines_of(current.values)
            updated = self._deliver_or_invoice(current, fresh, "Invoiced", principal)
        return self._answer(request, entity, updated)

    def calculate_sales_totals(self, request: ApiRequest) -> ApiResponse:
        """The batch job: every stale order of the company (or of all companies)."""
        everywhere = request.query.get("cross-company", "").lower() == "true"
        stale = [
            order
            for order in self.tables.store.records(HEADERS)
            if order.values.get("AreTotalsUpdated") != YES
            and (everywhere or order.values.get("dataAreaId") == self.default_company)
        ]
        for order in stale:
            with self.tables.store.transaction():
                self.calculate(order, request.principal.client_id)
        context = f"{request.service_root}$metadata#Edm.Int32"
        return json_response({"@odata.context": context, "value": len(stale)})

    def totals(self, order: StoredRecord, lines: list[StoredRecord]) -> OrderTotals:
        """The calculated totals of an order."""
        inputs = [LineInput.of(line.values) for line in lines]
        return order_totals(inputs, decimal(order.values.get("OrderTotalChargesAmount")))

    def calculate(self, order: StoredRecord, principal: str) -> StoredRecord:
        """Write the calculated totals: header first, then lines; returns the header."""
        lines = self.orders.lines_of(order.values)
        totals = self.totals(order, lines)
        header = {
            "OrderTotalChargesAmount": float(totals.charges),
            "OrderHeaderTaxAmount": float(totals.header_tax),
            "OrderTotalTaxAmount": float(totals.tax),
            # the header's own (end) discount, which the emulator does not model; the line
            # discounts are already in the line amounts and in OrderTotalDiscountAmount
            "TotalDiscountAmount": 0.0,
            "OrderTotalDiscountAmount": float(totals.discount),
            "OrderTotalAmount": float(totals.amount),
            "AreTotalsUpdated": YES,
        }
        updated = self._write(order, header, principal, _TOTALS)
        for line, calculated in zip(lines, totals.lines, strict=True):
            amounts = {
                "LineAmount": float(calculated.amount),
                "TotalTaxAmount": float(calculated.tax),
                "TotalDiscountAmount": float(calculated.discount),
                "AreTotalsCalculated": YES,
            }
            self._write_line(line, amounts, principal, _TOTALS)
        return updated

    def _lines(
        self, order: StoredRecord, action: str, allowed: tuple[str, ...]
    ) -> list[StoredRecord]:
        if order.values.get(STATUS) not in allowed:
            raise not_allowed(order.values, action, allowed)
        lines = self.orders.lines_of(order.values)
        if not lines:
            message = f"Sales order {order.values['SalesOrderNumber']} has no lines to process by {action}."
            raise ApiError(400, message, error_type=XPP_ERROR_TYPE)
        return lines

    def _deliver_or_invoice(
        self, order: StoredRecord, lines: list[StoredRecord], status: str, principal: str
    ) -> StoredRecord:
        updated = self._write(order, {STATUS: status, "SalesOrderStatus": status}, principal)
        for line in lines:
            self._write_line(line, {STATUS: status, "SalesOrderLineStatus": status}, principal)
        return updated

    def _write(
        self,
        order: StoredRecord,
        wanted: Mapping[str, Any],
        principal: str,
        tags: frozenset[str] = frozenset(),
    ) -> StoredRecord:
        current = self.tables.store.get(HEADERS, order.key) or order
        changes = _differing(current.values, wanted)
        if not changes:
            return current
        return self.tables.modify(self.orders.headers, current, changes, principal, tags=tags)

    def _write_line(
        self,
        line: StoredRecord,
        wanted: Mapping[str, Any],
        principal: str,
        tags: frozenset[str] = frozenset(),
    ) -> None:
        current = self.tables.store.get(self.orders.lines.name, line.key) or line
        changes = _differing(current.values, wanted)
        if changes:
            self.tables.modify(self.orders.lines, current, changes, principal, tags=tags)

    def _answer(self, request: ApiRequest, entity: EntityDef, order: StoredRecord) -> ApiResponse:
        current = self.tables.store.get(HEADERS, order.key) or order
        body: dict[str, Any] = {
            "@odata.context": context_url(request.service_root, entity, None, True)
        }
        body.update(record_json(entity, current, None, self.tables.view(entity, current)))
        return json_response(body, headers={"ETag": fno_etag(current.version)})
