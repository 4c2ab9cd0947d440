"""F&O entities as virtual tables: pure naming, key and value rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.emulators.common.store import FIRST_ROW_ID, RecordStore
from bridge.emulators.fno.entities import FNO_ENTITIES
from bridge.emulators.fno.virtual_entities import (
    OptionSets,
    rec_id_of,
    record_guid,
    virtual_table,
    virtual_tables,
)


@pytest.mark.parametrize(
    ("entity_id", "rec_id", "guid"),
    [
        (0x832, 5637145383, "00000832-0000-0000-2703-005001000000"),
        (0x3A08, FIRST_ROW_ID, "00003a08-0000-0000-0000-005001000000"),
        (0x3A08, FIRST_ROW_ID + 257, "00003a08-0000-0000-0101-005001000000"),
    ],
)
def test_guid_is_entity_id_then_little_endian_rec_id(
    entity_id: int, rec_id: int, guid: str
) -> None:
    assert record_guid(entity_id, rec_id) == guid
    assert rec_id_of(entity_id, guid) == rec_id
    assert rec_id_of(entity_id + 1, guid) is None
    assert rec_id_of(entity_id, "not-a-guid") is None


def test_every_entity_has_a_distinct_table_and_set() -> None:
    tables = virtual_tables(FNO_ENTITIES, OptionSets())
    assert len({t.entity.name for t in tables}) == len(FNO_ENTITIES)
    assert len({t.data_entity_id for t in tables}) == len(FNO_ENTITIES)
    customers = next(t for t in tables if t.fno.entity_set == "CustomersV3")
    assert customers.entity.name == "mserp_custcustomerv3entity"
    assert customers.entity.entity_set == "mserp_custcustomerv3entities"
    assert customers.entity.field("mserp_creditlimit") is not None


def test_option_values_follow_symbol_positions_and_new_symbols_are_appended() -> None:
    options = OptionSets()
    assert options.options("NoYes", ("No", "Yes")) == {200_000_000: "No", 200_000_001: "Yes"}
    assert options.value_of("NoYes", "yes") == 200_000_001
    assert options.value_of("Timezone", "") is None
    assert options.value_of("Timezone", "GMT") == 200_000_000
    assert options.value_of("Timezone", "CET") == 200_000_001


def test_cells_agree_with_rows() -> None:
    store = RecordStore(timedelta(days=10))
    table = virtual_table(FNO_ENTITIES.require("SalesInvoiceV2Lines"), OptionSets())
    values = {name: None for name in table.fno.fields}
    values.update(
        {
            "dataAreaId": "usmf",
            "InvoiceNumber": "CIV-000001",
            "LineCreationSequenceNumber": 2,
            "InvoiceDate": datetime(2026, 1, 5, 12, tzinfo=UTC),
            "LedgerVoucher": "ARI-000001",
            "LineAmount": 12.5,
            "ConfirmedShippingDate": datetime(1900, 1, 1, 12, tzinfo=UTC),
        }
    )
    record = store.write(
        "SalesInvoiceV2Lines", ("x",), values, principal="p", changed=frozenset(), label="x"
    )
    row = table.row(record, record.values)
    assert row["mserp_primaryfield"] == "CIV-000001 | 2 | 1/5/2026 | ARI-000001"
    assert row["mserp_confirmedshippingdate"] is None
    assert row["versionnumber"] == record.version
    for column, value in row.items():
        assert table.cell(record, record.values.get, column) == value
