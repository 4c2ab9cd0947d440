"""Reads and writes of many records in few calls, for both systems' sinks.

:class:`BatchedReads` turns the reads-before-writes in flight at one moment into one
``$filter`` query per entity set (``(k1 eq 'a' and k2 eq 'b') or ...``) and gives each
caller the row of its own key. :class:`BatchedWrites` sends the writes in flight at one
moment as one ``$batch``, each caller's requests in their own change set (so they succeed
or fail together, and one failing change set fails only its caller). Every request keeps
its conditional headers (``If-Match`` of the ETag just read, ``If-None-Match: *``), so the
read-compare-write keeps its guarantees. A lone request is sent as it is.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from bridge.config import BulkSettings
from bridge.errors import NotFound, TargetRejected
from bridge.http.batch import BatchRequest, batch_operations, decode_batch, encode_batch
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal
from bridge.http.responses import classify_response
from bridge.sinks.coalescer import Coalescer

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Address:
    """Where one target record is: its entity set, the key properties a query filters on
    (lookups as ``_<name>_value`` GUIDs), and its keyed path."""

    entity_set: str
    key: Mapping[str, Any]
    path: str

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether ``row`` is this record (string keys compare case-insensitively, as the
        services' SQL collation does)."""
        return all(_same_key(row.get(name), value) for name, value in self.key.items())


def _same_key(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(stored, str):
        return stored.lower() == wanted.lower()
    return bool(stored == wanted)


class BatchedReads:
    """Reads by key, gathered into one query per entity set."""

    def __init__(
        self,
        client: ApiClient,
        settings: BulkSettings,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._params = dict(params or {})
        self._coalescer: Coalescer[Address, dict[str, Any] | None] = Coalescer(
            self._query,
            window=settings.window_seconds,
            max_items=settings.max_reads,
            name="reads",
        )

    async def read(self, address: Address) -> dict[str, Any] | None:
        """The record at ``address``, or ``None`` when it does not exist."""
        return await self._coalescer.submit(address.entity_set, address)

    async def aclose(self) -> None:
        """Wait for the queries in flight."""
        await self._coalescer.aclose()

    async def _query(
        self, entity_set: Hashable, addresses: list[Address]
    ) -> Sequence[dict[str, Any] | BaseException | None]:
        if len(addresses) == 1 or not all(a.key for a in addresses):
            return [await self._one(a) for a in addresses]
        clause = " or ".join(_key_clause(a.key) for a in addresses)
        params = {**self._params, "$filter": clause}
        try:
            rows = (await self._client.get_json(str(entity_set), params=params)).get("value", [])
        except TargetRejected as exc:
            # a key the service cannot filter on (a typed value quoted as text): read each
            log.info("batched_read_refused", entity_set=entity_set, error=str(exc))
            return [await self._one(a) for a in addresses]
        return [next((r for r in rows if a.matches(r)), None) for a in addresses]

    async def _one(self, address: Address) -> dict[str, Any] | BaseException | None:
        try:
            return await self._client.get_json(address.path, params=self._params or None)
        except NotFound:
            return None
        except Exception as exc:
            return exc


def _key_clause(key: Mapping[str, Any]) -> str:
    return "(" + " and ".join(f"{name} eq {odata_literal(v)}" for name, v in key.items()) + ")"


class BatchedWrites:
    """Writes gathered into one ``$batch``, one change set per caller."""

    def __init__(
        self, client: ApiClient, settings: BulkSettings, *, continue_on_error: bool
    ) -> None:
        self._client = client
        self._headers = {"Prefer": "odata.continue-on-error"} if continue_on_error else {}
        self._coalescer: Coalescer[list[BatchRequest], list[httpx.Response]] = Coalescer(
            self._send,
            window=settings.window_seconds,
            max_items=settings.max_writes,
            name="writes",
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> BatchRequest:
        """One request of a change set (not sent yet)."""
        url = httpx.URL(self._client.url(path), params=params or None)
        return BatchRequest(method, str(url), json, dict(headers or {}))

    async def write(self, *requests: BatchRequest) -> list[httpx.Response]:
        """Send ``requests`` as one change set with whatever else is in flight; their
        responses, or the classified error of the change set."""
        responses = await self._coalescer.submit("$batch", list(requests))
        for response in responses:
            classify_response(response)
        return responses

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        await self._coalescer.aclose()

    async def _send(
        self, _: Hashable, change_sets: list[list[BatchRequest]]
    ) -> Sequence[list[httpx.Response] | BaseException]:
        if len(change_sets) == 1 and len(change_sets[0]) == 1:
            return [[await self._plain(change_sets[0][0])]]
        body, content_type = encode_batch(change_sets)
        response = await self._client.request(
            "POST",
            "$batch",
            content=body,
            headers={**self._headers, "Content-Type": content_type},
            operations=batch_operations(change_sets),
        )
        return decode_batch(response, change_sets)

    async def _plain(self, request: BatchRequest) -> httpx.Response:
        """A lone request, sent as it is (its error is raised for its one caller)."""
        return await self._client.request(
            request.method, request.url, json=request.json, headers=request.headers
        )
