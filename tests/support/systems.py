"""Reading both systems the way their users and administrators can: the Dataverse Web API
and the F&O OData API with the test's user identity, and the emulators' own admin
endpoints (``/_emulator/stats``: write counters per record and principal).

Nothing here imports bridge mapping code; the only bridge module used is the HTTP client,
which only sends requests.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bridge.emulators.common.settings import EmulatorSettings
from bridge.http.client import ApiClient
from tests.support.expectations import COMPANY, CreateCount
from tests.support.ledger import Record

HARNESS_LIMITS_TIME_SCALE = 0.01
"""The test stacks run with the documented limits enforced, on windows 100 times shorter:
every answer carries the rate-limit headers and a 429 could happen as with the real services,
but a 300 s window is 3 s and Retry-After a hundredth of the real one, so no test waits."""


def harness_emulator_settings(**overrides: Any) -> EmulatorSettings:
    """The emulator settings of the test stacks (see :data:`HARNESS_LIMITS_TIME_SCALE`)."""
    return EmulatorSettings(**{"limits_time_scale": HARNESS_LIMITS_TIME_SCALE, **overrides})


CROSS_COMPANY = {"cross-company": "true"}
ACCOUNT_FIELDS = "accountid,accountnumber,name,telephone1,address1_city,creditlimit,versionnumber"
CUSTOMER_FIELDS = (
    "dataAreaId,CustomerAccount,OrganizationName,PrimaryContactPhone,AddressCity,"
    "CreditLimit,IsExternallyMaintained,CustomerGroupId"
)
RELEASED_PRODUCT_FIELDS = "dataAreaId,ProductNumber,ProductName,SalesPrice,SalesUnitSymbol"
SALES_PRODUCT_FIELDS = "productid,productnumber,name,price,msdynce_ismaintainedexternally"


async def read_all(client: ApiClient, path: str, **params: str) -> list[Record]:
    """Every row of a collection, following ``@odata.nextLink``."""
    rows: list[Record] = []
    async for page in client.pages(path, params=params or None, page_size=5000):
        rows.extend(page.get("value", []))
    return rows


def _money(value: Any) -> float:
    return round(float(value or 0), 2)


async def read_customers(fno: ApiClient) -> dict[str, Record]:
    """F&O customers of the bridge's company, by CustomerAccount (as a user reads them)."""
    rows = await read_all(fno, "CustomersV3", **CROSS_COMPANY, **{"$select": CUSTOMER_FIELDS})
    customers = {}
    for row in rows:
        if str(row.get("dataAreaId", "")).lower() == COMPANY:
            customers[row["CustomerAccount"]] = {
                **row,
                "CreditLimit": _money(row.get("CreditLimit")),
            }
    return customers


async def read_accounts(sales: ApiClient) -> dict[str, Record]:
    """Sales accounts by account number, as a Sales user reads them."""
    rows = await read_all(sales, "accounts", **{"$select": ACCOUNT_FIELDS})
    return {row["accountnumber"]: row for row in rows if row.get("accountnumber")}


async def read_released_products(fno: ApiClient) -> dict[str, Record]:
    """Released products of the bridge's company, by ProductNumber."""
    rows = await read_all(
        fno, "CDSReleasedDistinctProducts", **CROSS_COMPANY, **{"$select": RELEASED_PRODUCT_FIELDS}
    )
    return {r["ProductNumber"]: r for r in rows if str(r["dataAreaId"]).lower() == COMPANY}


async def read_sales_products(sales: ApiClient) -> dict[str, Record]:
    """Sales products by product number, each with ``price_list_amount``: the amount of its
    price-list entry (a tuple when it has several, ``None`` when it has none)."""
    products = await read_all(sales, "products", **{"$select": SALES_PRODUCT_FIELDS})
    entries = await read_all(sales, "productpricelevels", **{"$select": "_productid_value,amount"})
    amounts: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        amounts[str(entry["_productid_value"])].append(_money(entry.get("amount")))
    result = {}
    for product in products:
        found = sorted(amounts.get(str(product["productid"]), []))
        amount: Any = found[0] if len(found) == 1 else (tuple(found) or None)
        result[product["productnumber"]] = {
            **product,
            "price": _money(product.get("price")),
            "price_list_amount": amount,
        }
    return result


async def emulator_stats(admin: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    """``GET /_emulator/stats`` of one emulator."""
    response = await admin.get(f"{base_url}/_emulator/stats")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def writes_by_label(
    stats: Mapping[str, Any], entity: str, principal: str
) -> dict[str, CreateCount]:
    """One principal's creates, updates and deletes per record label of one entity."""
    records = stats["entities"].get(entity, {}).get("records", {})
    counts = {}
    for label, record in records.items():
        mine = record["by_principal"].get(principal)
        if mine:
            counts[label] = CreateCount(mine["creates"], mine["updates"], mine["deletes"])
    return counts


def fno_key_value(label: str, name: str) -> str | None:
    """One key field of an F&O record label such as ``dataAreaId='usmf',CustomerAccount='A1'``."""
    match = re.search(rf"(?:^|,){re.escape(name)}='((?:[^']|'')*)'", label)
    return match.group(1).replace("''", "'") if match else None


def by_business_key(
    counts: Mapping[str, CreateCount], key_of: Mapping[str, str] | None = None, field: str = ""
) -> dict[str, CreateCount]:
    """Counts per business key: F&O labels parsed for ``field`` (other companies are kept
    under ``<company>/<key>`` so they show up as unexpected), Dataverse GUIDs through
    ``key_of`` (GUID → business key; an unknown GUID is kept as ``record <guid>``)."""
    result: dict[str, CreateCount] = defaultdict(CreateCount)
    for label, count in counts.items():
        if key_of is not None:
            key = key_of.get(label, f"record {label}")
        else:
            company = fno_key_value(label, "dataAreaId") or ""
            key = fno_key_value(label, field) or label
            key = key if company.lower() == COMPANY else f"{company}/{key}"
        total = result[key]
        total.creates += count.creates
        total.updates += count.updates
        total.deletes += count.deletes
    return dict(result)


async def register_webhook_copy(
    sales: ApiClient, bridge_url: str, key: str, name: str, url: str | None = None
) -> str:
    """Register a second Dataverse webhook with the same steps and images as the bridge's
    own (the endpoint whose URL starts with ``bridge_url``), calling ``url`` (default: the
    same URL, so Dataverse delivers every change twice) with the webhook ``key`` (Dataverse
    never returns a registered key). Returns the new endpoint id."""
    endpoints = await read_all(sales, "serviceendpoints")
    original = next(e for e in endpoints if str(e.get("url", "")).startswith(bridge_url))
    target = original["url"] if url is None else _with_base(original["url"], url)
    response = await sales.request(
        "POST",
        "serviceendpoints",
        json={
            "name": name,
            "contract": original["contract"],
            "url": target,
            "authtype": original["authtype"],
            "authvalue": key,
            "messageformat": original["messageformat"],
        },
        headers={"Prefer": "return=representation"},
    )
    endpoint_id = str(response.json()["serviceendpointid"])
    steps = await read_all(
        sales,
        "sdkmessageprocessingsteps",
        **{"$filter": f"_eventhandler_value eq {original['serviceendpointid']}"},
    )
    for step in steps:
        await _copy_step(sales, step, endpoint_id, name)
    return endpoint_id


def _with_base(original: str, base: str) -> str:
    """``original`` with the scheme and host of ``base`` (same path and query)."""
    old, new = urlsplit(original), urlsplit(base)
    return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))


async def _copy_step(sales: ApiClient, step: Record, endpoint_id: str, name: str) -> None:
    body: Record = {
        key: step[key]
        for key in ("mode", "rank", "stage", "supporteddeployment", "asyncautodelete")
        if step.get(key) is not None
    }
    if step.get("filteringattributes"):
        body["filteringattributes"] = step["filteringattributes"]
    body |= {
        "name": f"{name}: {step['name']}",
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
        "sdkmessageid@odata.bind": f"/sdkmessages({step['_sdkmessageid_value']})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({step['_sdkmessagefilterid_value']})",
    }
    response = await sales.request(
        "POST", "sdkmessageprocessingsteps", json=body, headers={"Prefer": "return=representation"}
    )
    new_step = response.json()["sdkmessageprocessingstepid"]
    images = await read_all(
        sales,
        "sdkmessageprocessingstepimages",
        **{"$filter": f"_sdkmessageprocessingstepid_value eq {step['sdkmessageprocessingstepid']}"},
    )
    for image in images:
        copy = {
            k: image[k]
            for k in ("name", "entityalias", "imagetype", "messagepropertyname", "attributes")
        }
        copy["sdkmessageprocessingstepid@odata.bind"] = f"/sdkmessageprocessingsteps({new_step})"
        await sales.request("POST", "sdkmessageprocessingstepimages", json=copy)


async def inject_faults(
    admin: httpx.AsyncClient, base_url: str, rules: list[Record], seconds: float
) -> None:
    """Add fault rules (``POST /_emulator/faults``) to one emulator for ``seconds``."""
    for rule in rules:
        response = await admin.post(
            f"{base_url}/_emulator/faults", json={**rule, "duration_seconds": seconds}
        )
        response.raise_for_status()


async def clear_faults(admin: httpx.AsyncClient, base_url: str) -> None:
    """Remove every fault rule of one emulator."""
    (await admin.delete(f"{base_url}/_emulator/faults")).raise_for_status()
