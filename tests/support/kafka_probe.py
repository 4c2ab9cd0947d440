"""Looking at the bridge's Kafka topics from outside, with names the README documents:
change topics ``<prefix>.<system>.<entity>``, ``<prefix>.retry.<flow>``,
``<prefix>.dlq.<flow>`` (headers ``dlq.*``) and consumer groups ``<group prefix>.<flow>``.

Values are decoded with the Apache ``avro`` library and the schemas in ``schemas/``, not
with the project's codec.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import avro.io
import avro.schema
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class FlowTopics:
    """A flow's consumer group and the topics it consumes."""

    group: str
    topics: tuple[str, ...]

    @classmethod
    def of(cls, topic_prefix: str, group_prefix: str, flow: str, source_topic: str) -> FlowTopics:
        return cls(
            f"{group_prefix}.{flow}",
            (f"{topic_prefix}.{source_topic}", f"{topic_prefix}.retry.{flow}"),
        )


class LagProbe:
    """How many events on the flows' topics their groups have not committed yet."""

    def __init__(self, bootstrap: str, flows: Iterable[FlowTopics]) -> None:
        self._flows = list(flows)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> Self:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def lag(self) -> int | None:
        """Uncommitted events in total, or ``None`` when the broker cannot tell right now."""
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                return sum([await self._flow_lag(flow) for flow in self._flows])
        except (KafkaError, OSError, TimeoutError):
            return None

    async def _flow_lag(self, flow: FlowTopics) -> int:
        committed = await self._admin.list_consumer_group_offsets(flow.group)
        tps = await partitions(self._admin, flow.topics)
        if not tps:
            return 0
        ends = await self._consumer.end_offsets(tps)
        starts = await self._consumer.beginning_offsets(tps)
        lag = 0
        for tp in tps:
            done = committed[tp].offset if tp in committed else starts[tp]
            lag += max(0, ends[tp] - done)
        return lag


async def partitions(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the ``topics`` that exist."""
    described = await admin.describe_topics(list(topics))
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    ]


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record on ``topic`` up to its end offsets now (raw aiokafka records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tps = await partitions(admin, [topic])
    finally:
        await admin.close()
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records_of_tp in batch.values():
                records.extend(records_of_tp)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


def dead_letter_stage(record: Any) -> dict[str, str]:
    """The ``dlq.*`` headers of a dead letter, without the prefix."""
    return {
        name.removeprefix("dlq."): value.decode(errors="replace")
        for name, value in record.headers or ()
        if name.startswith("dlq.")
    }


def avro_schemas() -> dict[bytes, avro.schema.Schema]:
    """The schemas of ``schemas/`` by CRC-64-AVRO fingerprint."""
    schemas = [avro.schema.parse(p.read_text()) for p in sorted(SCHEMAS_DIR.glob("*.avsc"))]
    return {s.fingerprint("CRC-64-AVRO"): s for s in schemas}


def decode_change_event(value: bytes, schemas: dict[bytes, avro.schema.Schema]) -> dict[str, Any]:
    """One Avro single-object datum (``C3 01`` + fingerprint + body) as a dict."""
    assert value[:2] == b"\xc3\x01", f"not an Avro single-object datum: {value[:10]!r}"
    schema = schemas[value[2:10]]
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    assert isinstance(datum, dict)
    return datum


def _image_value(image: dict[str, Any] | None, field: str) -> Any:
    if not image:
        return None
    if field in image:
        return image[field]
    extra = image.get("extra") or {}
    return json.loads(extra[field]) if field in extra else None


def describe_event(datum: dict[str, Any], field: str) -> str:
    """``UPDATE v123 WEBHOOK name='x'``: what one change event says."""
    source = datum["source"]
    image = datum["after"] or datum["before"]
    value = _image_value(image, field)
    shown = f" {field}={value!r}" if value is not None else ""
    return f"{datum['operation']} v{source['record_version']} {source['capture']}{shown}"


async def event_trail(
    bootstrap: str, topic: str, record_ids: Iterable[str], field: str
) -> dict[str, list[str]]:
    """The change events on ``topic`` of each record id, in partition order (one record's
    events share a partition), described by :func:`describe_event`."""
    wanted = {r.lower() for r in record_ids}
    schemas = avro_schemas()
    trail: dict[str, list[str]] = {r: [] for r in wanted}
    for record in sorted(await read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset)):
        try:
            datum = decode_change_event(record.value, schemas)
        except (AssertionError, KeyError, ValueError):
            continue  # a foreign message
        record_id = str(datum["source"]["record_id"]).lower()
        if record_id in wanted:
            trail[record_id].append(describe_event(datum, field))
    return trail


async def published_event_ids(bootstrap: str, topic: str) -> Counter[str]:
    """How often each ``event_id`` is on ``topic`` (one event id = one record version)."""
    schemas = avro_schemas()
    records = await read_topic(bootstrap, topic)
    return Counter(decode_change_event(r.value, schemas)["event_id"] for r in records)
