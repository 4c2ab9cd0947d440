"""The event contract: every schema round-trips, framing follows Avro single-object encoding."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro.schema import fingerprint

from bridge.config import SCHEMAS_DIR
from bridge.contract.catalog import SOURCE_ENTITIES, SourceEntity
from bridge.contract.codec import MAGIC, EventCodec
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source
from bridge.errors import ContractError, UndecodableMessage

CODEC = EventCodec.from_directory()
SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.avsc"))
SAMPLES = {"string": "text ü", "int": 42, "long": 2**40, "boolean": True, "double": 1234.5}


def sample_image(entity: SourceEntity) -> dict[str, Any]:
    schema = CODEC.schema_for(entity)
    image = {name: SAMPLES[t.kind] for name, t in schema.image_fields.items()}
    image["not_in_schema"] = {"nested": [1, "two", None]}
    image["another_extra"] = "kept"
    return image


def event_for(entity: SourceEntity, operation: Operation = Operation.UPDATE) -> ChangeEvent:
    source = Source(
        system=entity.system,
        entity=entity.entity,
        record_id="6d81597f-0f9f-e711-8122-000d3aa2331c",
        change_time=datetime(2026, 11, 22, 17, 0, 0, 123000, tzinfo=UTC),
        capture=Capture.WEBHOOK,
        business_key="K-1",
        company="usmf",
        record_version=99,
        changed_by="75c2dd85-e89e-e711-8122-000d3aa2331c",
    )
    image = sample_image(entity)
    return ChangeEvent.create(source, operation, before=image, after=image, correlation_id="c-1")


def test_every_catalog_entity_has_a_schema_file() -> None:
    names = {path.name for path in SCHEMA_FILES}
    assert {entity.schema_file for entity in SOURCE_ENTITIES} <= names


@pytest.mark.parametrize("entity", SOURCE_ENTITIES, ids=lambda e: e.schema_file)
@pytest.mark.parametrize("operation", list(Operation))
def test_round_trip(entity: SourceEntity, operation: Operation) -> None:
    event = event_for(entity, operation)
    decoded = CODEC.decode(CODEC.encode(event, entity))
    assert decoded == event


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_frame_is_single_object_encoding(path: Path) -> None:
    entity = next(e for e in SOURCE_ENTITIES if e.schema_file == path.name)
    payload = CODEC.encode(event_for(entity), entity)
    assert payload[:2] == MAGIC
    independent = avro.schema.parse(path.read_text())
    assert payload[2:10] == independent.fingerprint("CRC-64-AVRO")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_independent_decoder_reads_body(path: Path) -> None:
    entity = next(e for e in SOURCE_ENTITIES if e.schema_file == path.name)
    payload = CODEC.encode(event_for(entity), entity)
    schema = avro.schema.parse(path.read_text())
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(payload[10:])))
    assert datum["source"]["record_version"] == 99
    assert json.loads(datum["after"]["extra"]["another_extra"]) == "kept"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_common_envelope_is_identical_in_every_schema(path: Path) -> None:
    reference = json.loads(SCHEMA_FILES[0].read_text())
    schema = json.loads(path.read_text())
    common = ("event_id", "correlation_id", "operation", "source", "published_at")
    fields = {f["name"]: f for f in schema["fields"]}
    for name in common:
        assert fields[name] == next(f for f in reference["fields"] if f["name"] == name)


def test_null_fingerprint_matches_the_avro_specification() -> None:
    # Avro's Java SchemaNormalization gives 0x63dd24e7cc258f8a for "null", little-endian here.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (0x63DD24E7CC258F8A).to_bytes(
        8, "little"
    )


@pytest.mark.parametrize(
    "payload",
    [b"", b"{}", b"\xc3\x01", b"\xc3\x01" + b"\x00" * 8 + b"body", b"\x00\x00\x00\x00\x01avro"],
    ids=["empty", "json", "short", "unknown-fingerprint", "confluent-framing"],
)
def test_foreign_messages_are_undecodable(payload: bytes) -> None:
    with pytest.raises(UndecodableMessage):
        CODEC.decode(payload)


def test_corrupt_body_is_undecodable() -> None:
    entity = SOURCE_ENTITIES[0]
    payload = CODEC.encode(event_for(entity), entity)
    with pytest.raises(UndecodableMessage, match="corrupt"):
        CODEC.decode(payload[:20])


def test_value_of_the_wrong_type_is_a_contract_error() -> None:
    entity = SOURCE_ENTITIES[0]
    event = event_for(entity)
    typed = next(n for n, t in CODEC.schema_for(entity).image_fields.items() if t.kind == "int")
    bad = ChangeEvent.create(event.source, Operation.UPDATE, after={typed: "not a number"})
    with pytest.raises(ContractError, match=typed):
        CODEC.encode(bad, entity)


@pytest.mark.parametrize(
    "value",
    [2**70, -(2**64), "é ✓", {"b": 1, "a": [1.5, None, True]}, [], 1e300, "x" * 5000],
    ids=["beyond-64-bits", "below-64-bits", "unicode", "nested", "empty", "huge-float", "long"],
)
def test_untyped_attributes_survive_whatever_json_they_hold(value: Any) -> None:
    entity = SOURCE_ENTITIES[0]
    event = event_for(entity)
    event = ChangeEvent.create(
        event.source, event.operation, after={**(event.after or {}), "untyped": value}
    )
    assert CODEC.decode(CODEC.encode(event, entity)).after["untyped"] == value


def test_encoding_with_a_publish_time_equals_encoding_the_stamped_event() -> None:
    entity = SOURCE_ENTITIES[0]
    event = event_for(entity)
    moment = datetime(2026, 11, 30, 8, 0, 0, 250000, tzinfo=UTC)
    assert CODEC.encode(event, entity, moment) == CODEC.encode(event.stamped(moment), entity)
    assert CODEC.decode(CODEC.encode(event, entity, moment)).published_at == moment
