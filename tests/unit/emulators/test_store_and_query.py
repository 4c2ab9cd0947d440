"""Record store contract, key/path parsing and query options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.emulators.common.errors import ApiError
from bridge.emulators.common.protocol import parse_prefer
from bridge.emulators.common.store import FIRST_ROW_ID, Op, RecordStore, WriteEvent
from bridge.emulators.fno.entities import FNO_ENTITIES
from bridge.emulators.odata.filter import FNO
from bridge.emulators.odata.keys import Segment, parse_key, split_path
from bridge.emulators.odata.query import order_rows, parse_expand, parse_query


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_every_write_takes_the_next_global_version() -> None:
    store = RecordStore(timedelta(days=7))
    first = store.write("a", ("1",), {"x": 1}, principal="p", changed=frozenset({"x"}), label="1")
    second = store.write("b", ("1",), {"x": 1}, principal="p", changed=frozenset({"x"}), label="1")
    third = store.write("a", ("1",), {"x": 2}, principal="q", changed=frozenset({"x"}), label="1")
    assert (first.version, second.version, third.version) == (1, 2, 3)
    assert third.created_by == "p"
    assert third.modified_by == "q"
    assert [c.op for c in store.changes_between("a", 0, 3)] == [Op.CREATE, Op.UPDATE]


def test_transaction_rolls_back_records_counters_and_events() -> None:
    store = RecordStore(timedelta(days=7))
    events: list[WriteEvent] = []
    store.subscribe(events.append)
    store.write("a", ("1",), {"x": 1}, principal="p", changed=frozenset(), label="1")

    def failing_change_set() -> None:
        with store.transaction():
            store.write("a", ("2",), {"x": 2}, principal="p", changed=frozenset(), label="2")
            store.delete("a", ("1",), principal="p", label="1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_change_set()
    assert store.get("a", ("1",)) is not None
    assert store.get("a", ("2",)) is None
    assert store.count("a", Op.CREATE) == 1
    assert store.count("a", Op.DELETE) == 0
    assert len(events) == 1
    assert [c.version for c in store.changes_between("a", 0, 100)] == [1]


def test_rollback_restores_order_indexes_stats_and_counters() -> None:
    store = RecordStore(timedelta(days=7))
    store.define_index("a", "by-x", lambda values: values.get("x"))
    for key in ("1", "2", "3"):
        store.write("a", (key,), {"x": key}, principal="p", changed=frozenset(), label=key)
    store.write("b", ("1",), {}, principal="p", changed=frozenset(), label="1")
    store.next_counter("seq")

    def failing_change_set() -> None:
        with store.transaction():
            store.delete("a", ("1",), principal="p", label="1")
            store.write("a", ("2",), {"x": "3"}, principal="q", changed=frozenset(), label="2")
            store.write("a", ("4",), {"x": "1"}, principal="q", changed=frozenset(), label="4")
            store.delete("a", ("4",), principal="q", label="4")
            store.next_counter("seq")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_change_set()
    assert [r.key for r in store.records("a")] == [("1",), ("2",), ("3",)]
    assert [r.key for r in store.find("a", "by-x", "1")] == [("1",)]
    assert [r.key for r in store.find("a", "by-x", "3")] == [("3",)]
    assert store.stats()["entities"]["a"]["totals"]["by_principal"] == {
        "p": {"creates": 3, "updates": 0, "deletes": 0}
    }
    assert store.next_counter("seq") == 2
    assert len(store.records("b")) == 1


def test_transaction_delivers_events_after_commit() -> None:
    store = RecordStore(timedelta(days=7))
    events: list[WriteEvent] = []
    store.subscribe(events.append)
    with store.transaction():
        store.write("a", ("1",), {}, principal="p", changed=frozenset(), label="1")
        assert events == []
    assert [e.op for e in events] == [Op.CREATE]


def test_stats_split_by_principal_and_uncounted_seeds() -> None:
    store = RecordStore(timedelta(days=7))
    store.write("a", ("1",), {}, principal="bridge", changed=frozenset(), label="k1")
    store.write("a", ("1",), {}, principal="user", changed=frozenset(), label="k1")
    store.write("a", ("2",), {}, principal="system", changed=frozenset(), label="k2", count=False)
    stats = store.stats()
    record = stats["entities"]["a"]["records"]["k1"]
    assert record["creates"] == 1
    assert record["updates"] == 1
    assert record["by_principal"]["bridge"] == {"creates": 1, "updates": 0, "deletes": 0}
    assert stats["totals"]["by_principal"]["user"]["updates"] == 1
    assert "k2" not in stats["entities"]["a"]["records"]
    assert store.count("a", Op.CREATE, "bridge") == 1
    assert store.count("a", Op.CREATE, "user") == 0


def test_token_expiry_by_floor_and_by_age() -> None:
    clock = Clock()
    store = RecordStore(timedelta(hours=1), clock)
    store.write("a", ("1",), {}, principal="p", changed=frozenset(), label="1")
    assert not store.is_expired(1, clock.now)
    clock.now += timedelta(hours=2)
    assert store.is_expired(1, clock.now - timedelta(hours=2))
    assert not store.is_expired(1, clock.now)
    store.expire_change_tracking()
    assert store.is_expired(1, clock.now)
    assert not store.is_expired(2, clock.now)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("accounts", [Segment("accounts")]),
        (
            "/accounts(accountnumber='A/1')/name",
            [Segment("accounts", "accountnumber='A/1'"), Segment("name")],
        ),
        ("WhoAmI()", [Segment("WhoAmI", "")]),
        ("accounts/$count", [Segment("accounts"), Segment("$count")]),
    ],
)
def test_split_path(path: str, segments: list[Segment]) -> None:
    assert split_path(path) == segments


def test_key_predicates() -> None:
    assert (
        parse_key("0E8E6A3D-1E2F-4B1A-9F6A-0D2B1F3C4A5B").single
        == "0e8e6a3d-1e2f-4b1a-9f6a-0d2b1f3c4a5b"
    )
    named = parse_key("dataAreaId='usmf',LineCreationSequenceNumber=2,Type=Ns.Enum'Customer'").named
    assert named == {"dataAreaId": "usmf", "LineCreationSequenceNumber": 2, "Type": "Customer"}
    with pytest.raises(ApiError):
        parse_key("dataAreaId=")
    with pytest.raises(ApiError):
        split_path("accounts(name='x'")


def test_query_options_are_validated() -> None:
    customers = FNO_ENTITIES.require("CustomersV3")
    options = parse_query(
        {
            "$select": "CustomerAccount,OrganizationName",
            "$top": "5",
            "$skip": "10",
            "$count": "true",
            "$orderby": "OrganizationName desc",
        },
        customers.fields.get,
        customers.qualified_type,
        FNO,
        allow_skip=True,
    )
    assert options.select == ("CustomerAccount", "OrganizationName")
    assert (options.top, options.skip, options.count) == (5, 10, True)
    assert options.orderby == (("OrganizationName", True),)
    for params in (
        {"$top": "-1"},
        {"$select": "Nope"},
        {"$orderby": "Nope"},
        {"$bogus": "1"},
        {"$count": "maybe"},
    ):
        with pytest.raises(ApiError):
            parse_query(
                params, customers.fields.get, customers.qualified_type, FNO, allow_skip=True
            )
    with pytest.raises(ApiError, match=r"\$skip is not supported"):
        parse_query(
            {"$skip": "1"}, customers.fields.get, customers.qualified_type, FNO, allow_skip=False
        )


def test_multi_key_order_with_nulls_first() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": None, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "a"}]
    ordered = order_rows(rows, [("a", False), ("b", True)], lambda row, name: row[name])
    assert [r["b"] for r in ordered] == ["y", "z", "x", "a"]


def test_expand_with_nested_options() -> None:
    items = parse_expand("CDSSalesOrderLines($select=A,B;$filter=A eq 'x'),Other")
    assert items[0].name == "CDSSalesOrderLines"
    assert items[0].options == {"$select": "A,B", "$filter": "A eq 'x'"}
    assert items[1].name == "Other"


def test_prefer_header_parsing() -> None:
    prefer = parse_prefer(
        [
            'odata.include-annotations="*",return=representation',
            "odata.maxpagesize=10, odata.track-changes",
        ]
    )
    assert prefer.return_representation
    assert prefer.max_page_size == 10
    assert prefer.track_changes
    assert prefer.wants_annotation("OData.Community.Display.V1.FormattedValue")
    only = parse_prefer(['odata.include-annotations="OData.Community.Display.V1.FormattedValue"'])
    assert not only.wants_annotation("Microsoft.Dynamics.CRM.lookuplogicalname")


def test_row_ids_are_kept_across_updates_and_logged_with_changes() -> None:
    store = RecordStore(timedelta(days=7))
    first = store.write("a", ("1",), {"x": 1}, principal="p", changed=frozenset(), label="1")
    second = store.write("a", ("2",), {"x": 1}, principal="p", changed=frozenset(), label="2")
    updated = store.write("a", ("1",), {"x": 2}, principal="p", changed=frozenset(), label="1")
    other = store.write("b", ("1",), {"x": 1}, principal="p", changed=frozenset(), label="1")
    assert (first.row_id, second.row_id) == (FIRST_ROW_ID, FIRST_ROW_ID + 1)
    assert updated.row_id == first.row_id
    assert other.row_id == FIRST_ROW_ID
    store.delete("a", ("1",), principal="p", label="1")
    again = store.write("a", ("1",), {"x": 3}, principal="p", changed=frozenset(), label="1")
    assert again.row_id == FIRST_ROW_ID + 2
    log = store.changes_between("a", 0, store.version)
    assert [(c.op, c.row_id) for c in log] == [
        (Op.CREATE, FIRST_ROW_ID),
        (Op.CREATE, FIRST_ROW_ID + 1),
        (Op.UPDATE, FIRST_ROW_ID),
        (Op.DELETE, FIRST_ROW_ID),
        (Op.CREATE, FIRST_ROW_ID + 2),
    ]
