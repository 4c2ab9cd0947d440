"""Reads from the Dataverse Web API: single records and change-tracking pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.contract.catalog import SourceEntity
from bridge.dataverse.records import normalize_web_api_record
from bridge.errors import NotFound, TargetRejected
from bridge.http.client import ApiClient
from bridge.http.odata import odata_literal

EXPIRED_VERSION_STAMP = "0x80044352"


class DeltaTokenExpired(TargetRejected):
    """The stored delta token is older than the change-tracking retention: resync fully."""


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """One page of a change-tracking response."""

    changed: list[dict[str, Any]] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    delta_link: str | None = None


class DataverseReader:
    """Read access to captured Dataverse entities."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def read(self, entity: SourceEntity, record_id: str) -> dict[str, Any] | None:
        """The current record, or ``None`` if it no longer exists."""
        try:
            raw = await self.client.get_json(f"{entity.entity_set}({record_id})")
        except NotFound:
            return None
        return normalize_web_api_record(raw)

    async def children(
        self, entity: SourceEntity, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Every record of ``entity`` whose columns equal ``match`` (e.g. a quote's lines)."""
        clauses = " and ".join(f"{name} eq {_literal(value)}" for name, value in match.items())
        rows: list[dict[str, Any]] = []
        async for page in self.client.pages(
            entity.entity_set, params={"$filter": clauses}, page_size=500
        ):
            rows.extend(normalize_web_api_record(row) for row in page.get("value", []))
        return rows

    async def whoami(self) -> str:
        """The systemuserid the bridge acts as (``WhoAmI``)."""
        body = await self.client.get_json("WhoAmI")
        return str(body["UserId"]).lower()

    async def changes(
        self, entity_set: str, delta_link: str | None, page_size: int
    ) -> AsyncIterator[DeltaPage]:
        """Pages of changes of ``entity_set`` (a table, or an F&O virtual table) since
        ``delta_link``; with ``None``, every record (initial sync).

        The last page carries the new delta link. Raises :class:`DeltaTokenExpired` when the
        link is too old.
        """
        prefer = f"odata.track-changes,odata.maxpagesize={page_size}"
        url: str | None = delta_link or entity_set
        while url is not None:
            try:
                body = await self.client.get_json(url, headers={"Prefer": prefer})
            except TargetRejected as exc:
                if exc.code == EXPIRED_VERSION_STAMP:
                    raise DeltaTokenExpired(str(exc), status=exc.status, code=exc.code) from None
                raise
            yield _delta_page(body)
            url = body.get("@odata.nextLink")


def _literal(value: Any) -> str:
    """GUIDs are bare in Dataverse filters; everything else is an OData literal."""
    text = str(value)
    if len(text) == 36 and text.count("-") == 4:
        return text
    return odata_literal(value)


def _delta_page(body: dict[str, Any]) -> DeltaPage:
    page = DeltaPage(delta_link=body.get("@odata.deltaLink"))
    for row in body.get("value", []):
        if str(row.get("@odata.context", "")).endswith("$deletedEntity"):
            page.deleted_ids.append(str(row["id"]).lower())
        else:
            page.changed.append(normalize_web_api_record(row))
    return page
