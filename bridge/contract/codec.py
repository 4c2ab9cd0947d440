"""Avro encoding of change events, framed with Avro's single-object encoding.

Wire format of every message value (Avro specification, "Single object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the schema's canonical form | body

The schemas in ``schemas/`` are the source of truth; any consumer holding them can decode a
message by matching the fingerprint, without this code. Images are typed per entity; every
attribute outside the typed fields is kept JSON-encoded in the image's ``extra`` map.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import fastavro
import orjson
from fastavro.schema import fingerprint, to_parsing_canonical_form

from bridge.config import SCHEMAS_DIR
from bridge.contract.catalog import SourceEntity
from bridge.contract.envelope import Capture, ChangeEvent, Operation, Source, System
from bridge.errors import ConfigError, ContractError, UndecodableMessage

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
EXTRA = "extra"


@dataclass(frozen=True, slots=True)
class _FieldType:
    kind: str
    scale: int = 0
    branch: str | None = None
    """A nullable field's union branch for its values: named, so fastavro writes it without
    trying each branch of the union first (its "tuple notation")."""


_NULL = ("null", None)
_NAMED = frozenset({"record", "enum", "fixed", "error"})


@dataclass(frozen=True, slots=True)
class EnvelopeSchema:
    """One parsed envelope schema with its fingerprint and image field types."""

    name: str
    parsed: Any
    fingerprint: bytes
    image_fields: Mapping[str, _FieldType]
    image_type: str
    """The full name of the image record type, which selects the union branch of a present
    ``before``/``after`` (fastavro's tuple notation); without it fastavro validates the whole
    image against the branch first, which cost about a third of an event's encoding."""


def _image_record(parsed: Mapping[str, Any]) -> Mapping[str, Any]:
    before = next(f for f in parsed["fields"] if f["name"] == "before")
    return cast(Mapping[str, Any], next(t for t in before["type"] if isinstance(t, dict)))


def _image_field_types(record: Mapping[str, Any]) -> dict[str, _FieldType]:
    types: dict[str, _FieldType] = {}
    for image_field in record["fields"]:
        avro_type = image_field["type"]
        branch = None
        if isinstance(avro_type, list):
            avro_type = next(t for t in avro_type if t != "null")
            branch = _branch_name(avro_type)
        if isinstance(avro_type, dict):
            kind = avro_type.get("logicalType") or avro_type["type"]
            scale = int(avro_type.get("scale", 0))
            types[image_field["name"]] = _FieldType(kind, scale, branch)
        else:
            types[image_field["name"]] = _FieldType(avro_type, branch=branch)
    types.pop(EXTRA, None)
    return types


def _branch_name(avro_type: Any) -> str:
    """How fastavro names a union member: a named type by its name, any other by its type."""
    if isinstance(avro_type, str):
        return avro_type
    return str(avro_type["name"] if avro_type["type"] in _NAMED else avro_type["type"])


def load_schema(path: Path) -> EnvelopeSchema:
    """Parse one ``.avsc`` file and compute its CRC-64-AVRO fingerprint."""
    try:
        raw = json.loads(path.read_text())
        parsed = fastavro.parse_schema(raw)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigError(f"cannot load schema {path}: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    image = _image_record(cast(dict[str, Any], parsed))
    return EnvelopeSchema(
        name=path.stem,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        image_fields=_image_field_types(image),
        image_type=str(image["name"]),
    )


def _to_avro_value(name: str, value: Any, field_type: _FieldType) -> Any:
    if value is None:
        return None
    try:
        match field_type.kind:
            case "decimal":
                return Decimal(str(value)).quantize(Decimal(1).scaleb(-field_type.scale))
            case "int" | "long":
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError(value)
                return int(value)
            case "double" | "float":
                return float(value)
            case "boolean":
                if not isinstance(value, bool):
                    raise ValueError(value)
                return value
            case "string":
                if not isinstance(value, str):
                    raise ValueError(value)
                return value
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ContractError(f"attribute {name!r}: {value!r} is not a {field_type.kind}") from exc
    raise ContractError(f"attribute {name!r}: unsupported schema type {field_type.kind}")


def _from_avro_value(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def image_to_avro(image: Mapping[str, Any], fields: Mapping[str, _FieldType]) -> dict[str, Any]:
    """Split an image into typed fields and the JSON-encoded ``extra`` map, for fastavro:
    a nullable field's value is tagged with its union branch (``(branch, value)``)."""
    record: dict[str, Any] = {
        name: None if t.branch is None else _NULL for name, t in fields.items()
    }
    extra: dict[str, str] = {}
    for name, value in image.items():
        field = fields.get(name)
        if field is None:
            extra[name] = _json_text(value)
            continue
        avro = _to_avro_value(name, value, field)
        if field.branch is None:
            record[name] = avro
        elif avro is not None:
            record[name] = (field.branch, avro)
    record[EXTRA] = extra
    return record


# what orjson would encode otherwise than ``json.dumps(default=str)`` goes through ``str``
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _json_text(value: Any) -> str:
    """``value`` as JSON text with sorted keys (orjson; the standard encoder for what orjson
    refuses, such as integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=str, sort_keys=True)


def image_from_avro(record: Mapping[str, Any]) -> dict[str, Any]:
    """Join typed fields and ``extra`` back into one image; null and absent are the same."""
    image = {k: _from_avro_value(v) for k, v in record.items() if k != EXTRA and v is not None}
    for name, encoded in (record.get(EXTRA) or {}).items():
        image[name] = json.loads(encoded)
    return image


class EventCodec:
    """Encodes and decodes change events for every schema in a directory."""

    def __init__(self, schemas: Iterable[EnvelopeSchema]) -> None:
        self._by_name = {schema.name: schema for schema in schemas}
        self._by_fingerprint = {schema.fingerprint: schema for schema in self._by_name.values()}

    @classmethod
    def from_directory(cls, directory: Path = SCHEMAS_DIR) -> EventCodec:
        """Load every ``*.avsc`` file of ``directory``."""
        files = sorted(directory.glob("*.avsc"))
        if not files:
            raise ConfigError(f"no Avro schemas in {directory}")
        return cls(load_schema(path) for path in files)

    def schema_for(self, entity: SourceEntity) -> EnvelopeSchema:
        """The envelope schema of a source entity."""
        try:
            return self._by_name[entity.schema_file.removesuffix(".avsc")]
        except KeyError:
            raise ConfigError(f"no schema file {entity.schema_file}") from None

    def encode(
        self, event: ChangeEvent, entity: SourceEntity, published_at: datetime | None = None
    ) -> bytes:
        """Encode one event with its entity's schema, single-object framed; with
        ``published_at``, as if the event were :meth:`~ChangeEvent.stamped` with it."""
        schema = self.schema_for(entity)
        datum = _event_to_datum(event, schema, published_at or event.published_at)
        body = io.BytesIO()
        body.write(MAGIC)
        body.write(schema.fingerprint)
        fastavro.schemaless_writer(body, schema.parsed, datum)
        return body.getvalue()

    def decode(self, payload: bytes) -> ChangeEvent:
        """Decode one single-object framed event; raise :class:`UndecodableMessage` if foreign."""
        if len(payload) < HEADER_SIZE or payload[:2] != MAGIC:
            raise UndecodableMessage("not an Avro single-object encoded message")
        schema = self._by_fingerprint.get(payload[2:HEADER_SIZE])
        if schema is None:
            raise UndecodableMessage(f"unknown schema fingerprint {payload[2:10].hex()}")
        try:
            datum = fastavro.schemaless_reader(io.BytesIO(payload[HEADER_SIZE:]), schema.parsed)
        except Exception as exc:  # fastavro raises a variety of errors on corrupt bodies
            raise UndecodableMessage(f"corrupt Avro body: {exc.__class__.__name__}") from exc
        return _event_from_datum(cast(dict[str, Any], datum))


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _moment(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def _event_to_datum(
    event: ChangeEvent, schema: EnvelopeSchema, published_at: datetime
) -> dict[str, Any]:
    source = event.source

    def image(value: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
        if value is None:
            return None
        return schema.image_type, image_to_avro(value, schema.image_fields)

    return {
        "event_id": event.event_id,
        "correlation_id": event.correlation_id,
        "operation": event.operation.value,
        "source": {
            "system": source.system.value,
            "entity": source.entity,
            "record_id": source.record_id,
            "business_key": source.business_key,
            "company": source.company,
            "record_version": source.record_version,
            "change_time": _millis(source.change_time),
            "changed_by": source.changed_by,
            "capture": source.capture.value,
        },
        "before": image(event.before),
        "after": image(event.after),
        "published_at": _millis(published_at),
    }


def _event_from_datum(datum: Mapping[str, Any]) -> ChangeEvent:
    raw_source = datum["source"]
    source = Source(
        system=System(raw_source["system"]),
        entity=raw_source["entity"],
        record_id=raw_source["record_id"],
        business_key=raw_source["business_key"],
        company=raw_source["company"],
        record_version=raw_source["record_version"],
        change_time=_moment(raw_source["change_time"]),
        changed_by=raw_source["changed_by"],
        capture=Capture(raw_source["capture"]),
    )
    return ChangeEvent(
        event_id=datum["event_id"],
        correlation_id=datum["correlation_id"],
        operation=Operation(datum["operation"]),
        source=source,
        before=None if datum["before"] is None else image_from_avro(datum["before"]),
        after=None if datum["after"] is None else image_from_avro(datum["after"]),
        published_at=_moment(datum["published_at"]),
    )
