"""The P2C solution's plug-ins and its Activate button, as Dataverse plug-in steps
(prospect-to-cash.md §5, §7.2, §10), plus the install function of all Sales behaviour.

- PreOperationContactCreate/Update: ``msdynce_iscompanyanaccount`` = ``parentcustomerid``
  points at an account (on update only when ``parentcustomerid`` is written, the step's
  filtering attribute).
- PostOperationQuote/Order/InvoiceCreate and …Update (``customerid``): a contact that is the
  ``customerid`` of a quote, order or invoice gets ``msdynce_isactivecustomer = true`` (a
  derived contact write, only when not already true). Users may also set the column.
- Order ``msdynce_processingstatus`` defaults to Draft (647390011) on create.
- Activation (JS ``ClickActivateButton``): an update that writes ``msdynce_processingstatus``
  Active (647390000) on a Draft order is refused with 400 ``0x80040265`` "Order cannot be
  activated. Only orders with Externally maintained products can be activated." unless
  ``msdynce_hasexternallymaintainedproductsonly`` is true and
  ``msdynce_ismaintainedexternally`` is not; an accepted activation sets
  ``msdynce_orderissubmitted = true`` on every line (derived writes). Other status changes
  (e.g. the bridge writing Confirmed or Invoiced) are not checked.

Derived writes are made as the principal of the triggering write (as a plug-in using the
context's ``UserId`` does), one level deeper (webhook ``Depth`` 2, …).
"""

from __future__ import annotations

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.plugins import PluginContext, Stage
from bridge.emulators.common.store import Op
from bridge.emulators.dataverse.lines import EXTERNAL_ONLY, DocumentLines, install_document_lines
from bridge.emulators.dataverse.tables import DataverseTables
from bridge.emulators.odata.values import LookupRef

DRAFT, ACTIVE = 647390011, 647390000
PROCESSING_STATUS = "msdynce_processingstatus"
PLUGIN_ERROR_CODE = "0x80040265"
ACTIVATION_REFUSED = (
    "Order cannot be activated. Only orders with Externally maintained products can be activated."
)
_CUSTOMER_DOCUMENTS = ("quote", "salesorder", "invoice")


def _company_is_account(context: PluginContext) -> None:
    if context.op is Op.UPDATE and "parentcustomerid" not in context.written:
        return
    parent = context.values.get("parentcustomerid")
    is_account = isinstance(parent, LookupRef) and parent.entity == "account"
    context.values["msdynce_iscompanyanaccount"] = is_account


def _draft_by_default(context: PluginContext) -> None:
    if context.values.get(PROCESSING_STATUS) is None:
        context.values[PROCESSING_STATUS] = DRAFT


def _is_activation(context: PluginContext) -> bool:
    return (
        context.op is Op.UPDATE
        and PROCESSING_STATUS in context.written
        and context.before.get(PROCESSING_STATUS) == DRAFT
        and context.values.get(PROCESSING_STATUS) == ACTIVE
    )


def _check_activation(context: PluginContext) -> None:
    if not _is_activation(context):
        return
    external_only = context.values.get(EXTERNAL_ONLY) is True
    if not external_only or context.values.get("msdynce_ismaintainedexternally") is True:
        raise ApiError(400, ACTIVATION_REFUSED, code=PLUGIN_ERROR_CODE)


class P2cPlugins:
    """The P2C steps that write other records."""

    def __init__(self, tables: DataverseTables, orders: DocumentLines) -> None:
        self.tables = tables
        self.orders = orders

    def install(self) -> None:
        """Register every P2C step."""
        register = self.tables.plugins.register
        writes = (Op.CREATE, Op.UPDATE)
        register("contact", Stage.PRE_OPERATION, _company_is_account, ops=writes)
        register("salesorder", Stage.PRE_OPERATION, _draft_by_default, ops=(Op.CREATE,))
        register("salesorder", Stage.PRE_OPERATION, _check_activation, ops=(Op.UPDATE,))
        register("salesorder", Stage.POST_OPERATION, self._submit_lines, ops=(Op.UPDATE,))
        for document in _CUSTOMER_DOCUMENTS:
            register(document, Stage.POST_OPERATION, self._activate_customer, ops=writes)

    def _activate_customer(self, context: PluginContext) -> None:
        if context.op is Op.UPDATE and "customerid" not in context.written:
            return
        customer = context.values.get("customerid")
        if not isinstance(customer, LookupRef) or customer.entity != "contact":
            return
        entity = self.tables.entity("contact")
        contact = self.tables.get(entity, customer.id)
        if contact is not None and contact.values.get("msdynce_isactivecustomer") is not True:
            self.tables.derived_update(context, entity, contact, {"msdynce_isactivecustomer": True})

    def _submit_lines(self, context: PluginContext) -> None:
        if not _is_activation(context):
            return
        for line in self.orders.lines(str(context.values["salesorderid"])):
            current = self.tables.store.get(self.orders.line_entity.name, line.key) or line
            if current.values.get("msdynce_orderissubmitted") is not True:
                self.tables.derived_update(
                    context, self.orders.line_entity, current, {"msdynce_orderissubmitted": True}
                )


def install_sales_behaviour(tables: DataverseTables) -> None:
    """Install the document steps, then the P2C steps (activation reads the header's
    externally-maintained flag the document step has just computed)."""
    documents = install_document_lines(tables)
    P2cPlugins(tables, documents["salesorder"]).install()
