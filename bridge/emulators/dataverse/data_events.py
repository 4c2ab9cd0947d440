"""F&O data events, raised in Dataverse on the F&O virtual tables (dynamics-apis.md B.4).

With the Power Platform integration (both emulators in one :class:`~bridge.emulators.
server.Emulators`), every committed F&O write (OData create/update/delete, the sales order
actions, postings, derived writes) raises ``OnExternalCreated`` / ``OnExternalUpdated`` /
``OnExternalDeleted`` on the record's virtual table ``mserp_<entity>``. The Dataverse
webhook machinery delivers it to every enabled step registered for that message and table
(asynchronous PostOperation only; a step with a ``LegalEntity`` configuration only for those
companies), as a ``RemoteExecutionContext``:

- ``Target`` (an ``Entity`` of the virtual table): Created = every column with a value;
  Updated = the columns whose value changed, plus the primary id and ``versionnumber``;
  Deleted = the primary id only. Null date-time columns are left out. ``Target.RowVersion`` is
  the change's ``SysRowVersion`` (the delete's own version for Deleted).
- Pre/post images as registered: the row before / after the change.
- ``InitiatingUserId``/``UserId``: the ``systemuserid`` of the Dataverse user with the same
  Entra object id as the F&O user who made the change (the bridge's writes come out as the
  bridge); ``OperationCreatedOn``: the time of the change.

A registered, enabled step is the activation: all legal entities, per message and table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.emulators.common.store import Op, WriteEvent
from bridge.emulators.dataverse.virtual_tables import VirtualTables
from bridge.emulators.dataverse.webhooks import Notification, WebhookNotifier
from bridge.emulators.fno.virtual_entities import VERSION_NUMBER, VirtualTable
from bridge.emulators.odata.entities import FieldKind

MESSAGES = {
    Op.CREATE: "OnExternalCreated",
    Op.UPDATE: "OnExternalUpdated",
    Op.DELETE: "OnExternalDeleted",
}


def data_event_target(
    table: VirtualTable,
    op: Op,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``Target`` attributes of a data event (see the module docstring)."""
    if op is Op.DELETE or after is None:
        assert before is not None
        return {table.primary_id: before[table.primary_id]}
    if op is Op.CREATE or before is None:
        target = {k: v for k, v in after.items() if v is not None}
    else:
        always = {table.primary_id, VERSION_NUMBER}
        target = {k: v for k, v in after.items() if k in always or v != before.get(k)}
    return {k: v for k, v in target.items() if not _null_moment(table, k, v)}


def _null_moment(table: VirtualTable, name: str, value: Any) -> bool:
    field = table.entity.field(name)
    return value is None and field is not None and field.kind is FieldKind.DATETIME


class DataEvents:
    """F&O store listener raising data events through the Dataverse webhook notifier."""

    def __init__(self, virtual: VirtualTables, notifier: WebhookNotifier) -> None:
        self.virtual = virtual
        self.notifier = notifier

    def on_write(self, event: WriteEvent) -> None:
        """Raise the data event of one committed F&O write."""
        source = self.virtual.for_fno(event.entity)
        record = event.after or event.before
        message = MESSAGES[event.op]
        if (
            source is None
            or record is None
            or not self.notifier.listens(message, source.entity.name)
        ):
            return
        table = source.table
        before = source.row(event.before) if event.before else None
        after = source.row(event.after) if event.after else None
        target = data_event_target(table, event.op, before, after)
        self.notifier.notify(
            Notification(
                entity=table.entity,
                message=message,
                record_id=table.record_id(record.row_id),
                target=target,
                before=before,
                after=after,
                changed=frozenset(target),
                principal=event.principal,
                depth=event.depth,
                created_on=event.after.modified_at if event.after else source.store.now(),
                company=str(record.values.get("dataAreaId") or ""),
                row_version=event.version,
            )
        )
