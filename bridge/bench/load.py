"""Load generation: webhook bodies as the Dataverse emulator posts them, accounts seeded in
bulk, change events encoded as the bridge encodes them, and the raw Kafka producer and
consumer the ingest and replay figures are compared with."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bridge.bench.processes import BenchError, free_port
from bridge.bench.stack import Stack
from bridge.config import KafkaSettings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.codec import EventCodec
from bridge.contract.envelope import System
from bridge.dataverse.webhook import notification_to_event, parse_notification
from bridge.http.client import ApiClient
from bridge.http.retry import RetryPolicy
from bridge.kafka.clients import start_client, stop_client
from bridge.kafka.ops import KafkaTopics
from bridge.setup import run_setup

ACCOUNT: SourceEntity = source_entity(System.SALES, "account")
BATCH_SIZE = 1000
Message = tuple[bytes, bytes]


@dataclass(frozen=True)
class Notification:
    """A webhook body the emulator posted, to be re-stamped for other records."""

    body: dict[str, Any]
    record_id: str
    query: str

    def for_record(self, record_id: str, number: str, version: int) -> dict[str, Any]:
        """The same notification about another record (id, account number, version)."""
        values = {"accountid": record_id, "accountnumber": number, "versionnumber": version}
        values["name"] = f"Bench {number}"
        body: dict[str, Any] = _restamp(self.body, self.record_id, record_id, values)
        return body


def _restamp(node: Any, old_id: str, new_id: str, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"key", "value"} and node["key"] in values:
            return {"key": node["key"], "value": values[node["key"]]}
        return {k: _restamp(v, old_id, new_id, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_restamp(v, old_id, new_id, values) for v in node]
    return new_id if node == old_id else node


async def capture_notification(stack: Stack) -> Notification:
    """Register a webhook on the emulated Dataverse pointing here, create one account as
    the salesperson, and keep the body the emulator posts (the bridge's own registration,
    images included, as ``bridge setup`` makes it)."""
    received: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()

    async def keep(request: web.Request) -> web.Response:
        await received.put((await request.json(), request.query_string))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/webhooks/dataverse", keep)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        webhook = stack.settings.webhook.model_copy(
            update={"public_url": f"http://127.0.0.1:{port}"}
        )
        await run_setup(stack.settings.model_copy(update={"webhook": webhook}))
        async with stack.user_client("sales") as sales:
            created = await sales.request(
                "POST",
                "accounts",
                json={"name": "Template", "accountnumber": "T000000", "creditlimit": 1000.0},
                headers={"Prefer": "return=representation"},
            )
        record_id = created.json()["accountid"]
        body, query = await asyncio.wait_for(received.get(), stack.wait_seconds)
    finally:
        await runner.cleanup()
    return Notification(body, record_id, query)


def encode_events(
    template: Notification, records: Iterable[tuple[str, str, int]], codec: EventCodec
) -> list[Message]:
    """(key, Avro value) of the change event the receiver publishes for each record."""
    now = datetime.now(UTC)
    messages = []
    for record_id, number, version in records:
        context = parse_notification(template.for_record(record_id, number, version))
        event = notification_to_event(context, ACCOUNT).stamped(now)
        messages.append((event.key, codec.encode(event, ACCOUNT)))
    return messages


def synthetic_records(prefix: str, count: int) -> list[tuple[str, str, int]]:
    """Records that exist nowhere but in their notifications (ingest needs no source read)."""
    return [(str(uuid.uuid4()), f"{prefix}{i:07d}", 1_000 + i) for i in range(count)]


class BatchWriter:
    """Creates many records with OData ``$batch`` (one request per ``BATCH_SIZE`` records)."""

    def __init__(self, client: ApiClient, http: httpx.AsyncClient) -> None:
        self._client = client
        self._http = http

    async def create(self, entity_set: str, bodies: Sequence[dict[str, Any]]) -> int:
        """POST every body in one ``$batch``; return how many parts succeeded."""
        boundary = f"batch_{uuid.uuid4().hex}"
        path = httpx.URL(self._client.url(entity_set)).path
        parts = [
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n\r\n"
            f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
            f"{json.dumps(body)}\r\n"
            for body in bodies
        ]
        token = await self._client.tokens.token()
        response = await self._http.post(
            self._client.url("$batch"),
            content="".join(parts) + f"--{boundary}--\r\n",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/mixed; boundary={boundary}",
            },
        )
        if response.status_code != 200:
            raise BenchError(f"$batch answered {response.status_code}: {response.text[:300]}")
        return response.text.count("HTTP/1.1 20")


async def seed_accounts(stack: Stack, prefix: str, count: int) -> list[tuple[str, str, int]]:
    """Create ``count`` accounts in the emulated Sales as the salesperson, in batches; return
    (id, account number, version) of each, read back from the API."""
    async with stack.user_client("sales") as sales, httpx.AsyncClient(timeout=120) as http:
        writer = BatchWriter(sales, http)
        for start in range(0, count, BATCH_SIZE):
            bodies = [
                {"name": f"Bench {prefix}{i:07d}", "accountnumber": f"{prefix}{i:07d}"}
                | {"creditlimit": 1000.0}
                for i in range(start, min(count, start + BATCH_SIZE))
            ]
            created = await writer.create("accounts", bodies)
            if created != len(bodies):
                raise BenchError(f"seeding accounts: {created} of {len(bodies)} created")
        records = []
        params = {
            "$select": "accountid,accountnumber,versionnumber",
            "$filter": f"startswith(accountnumber,'{prefix}')",
        }
        async for page in sales.pages("accounts", params=params, page_size=5000):
            records += [
                (r["accountid"], r["accountnumber"], int(r["versionnumber"])) for r in page["value"]
            ]
    if len(records) != count:
        raise BenchError(f"seeded {count} accounts but Sales lists {len(records)}")
    return records


def producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """A producer with the bridge's publisher settings (acks=all, idempotent, its linger)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        request_timeout_ms=settings.request_timeout_ms,
    )


async def produce(settings: KafkaSettings, topic: str, messages: Sequence[Message]) -> float:
    """Send every message and wait for all acknowledgements; return the seconds taken."""
    client = producer(settings)
    await start_client(client)
    try:
        started = time.perf_counter()
        for offset in range(0, len(messages), 10_000):
            futures = [
                await client.send(topic, value, key=key)
                for key, value in messages[offset : offset + 10_000]
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await stop_client(client)


async def consume(
    settings: KafkaSettings, topic: str, count: int, wait_seconds: float
) -> tuple[list[Message], float]:
    """Read the first ``count`` messages of ``topic`` (all partitions, from the start) with a
    plain consumer; return them and the seconds taken from the first fetch."""
    client = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await start_client(client)
    try:
        async with KafkaTopics(settings, RetryPolicy()) as topics:
            partitions = [TopicPartition(topic, p) for p in await topics.end_offsets(topic)]
        client.assign(partitions)
        await client.seek_to_beginning(*partitions)
        messages: list[Message] = []
        started = time.perf_counter()
        deadline = started + wait_seconds
        while len(messages) < count and time.perf_counter() < deadline:
            batches = await client.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                messages += [(r.key or b"", r.value or b"") for r in records]
        return messages[:count], time.perf_counter() - started
    finally:
        await stop_client(client)
