"""Paged reads of a flow's target records, for reconcile. Reads only; sinks write."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from bridge.config import CompanySettings
from bridge.contract.envelope import System
from bridge.errors import ConfigError
from bridge.fno.sink import CROSS_COMPANY
from bridge.http.client import ApiClient
from bridge.mapping.template import Template
from bridge.ops.snapshots import company_filter


class TargetRecords(Protocol):
    """Every record of a template's target entity set in the companies that take part."""

    def records(
        self, template: Template, companies: CompanySettings, page_size: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The records, with at least the key fields and every mapped field."""
        ...


def selected_fields(template: Template) -> list[str]:
    """The target fields reconcile needs: keys, the company field and every mapped field."""
    names = [*template.target.key]
    if template.target.company_field:
        names.append(template.target.company_field)
    names += [rule.target for rule in template.fields]
    return list(dict.fromkeys(names))


class FnoTargetRecords:
    """Pages through an F&O entity set across companies, filtered to the mapped ones."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def records(
        self, template: Template, companies: CompanySettings, page_size: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The records of ``template``'s entity set (see :class:`TargetRecords`)."""
        params = {**CROSS_COMPANY, "$select": ",".join(selected_fields(template))}
        company_field = template.target.company_field
        if company_field and companies.map:
            params["$filter"] = company_filter(company_field, companies)
        pages = self._client.pages(template.target.entity_set, params=params, page_size=page_size)
        async for body in pages:
            for row in body.get("value", []):
                yield row


def target_records(template: Template, clients: Mapping[System, ApiClient]) -> TargetRecords:
    """The target reader of ``template``'s target system; raises :class:`ConfigError` for a
    target reconcile cannot compare yet (flows into Sales: their keys and lookups name
    records by GUID, which needs the Dataverse sink's resolution)."""
    if template.target.system is System.FNO:
        return FnoTargetRecords(clients[System.FNO])
    raise ConfigError(
        f"reconcile of flow {template.name} is not supported yet: it writes to "
        f"{template.target.system.lower()}; only flows into F&O can be reconciled"
    )
