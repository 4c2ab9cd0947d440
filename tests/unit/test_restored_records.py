"""A record deleted and then created again with the same key (a Dataverse record restored with
its GUID, an F&O product released again) reaches its topic again, whichever path captured it;
what preceded the delete does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bridge.config import PollerSettings, WebhookSettings
from bridge.contract.catalog import SourceEntity, source_entity
from bridge.contract.envelope import Operation, System
from bridge.dataverse.delta_poller import DeltaPoller
from bridge.dataverse.reader import DeltaPage
from bridge.sources.receiver import DATAVERSE_PATH, WebhookReceiver
from tests.unit.fakes import MemoryPublisher, StaticReader
from tests.unit.notifications import ACCOUNT_ID, account_image, notification
from tests.unit.ops.fakes import MemoryState

KEY = "k3y-for-tests"
PRODUCT = {"dataAreaId": "usmf", "ProductNumber": "P-1", "SalesUnitSymbol": "ea"}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[TestClient[Any, Any]]:
    settings = WebhookSettings(key=SecretStr(KEY))
    fno_reader = StaticReader(PRODUCT)
    receiver = WebhookReceiver(settings, publisher, StaticReader(None), fno_reader)  # type: ignore[arg-type]
    async with TestClient(TestServer(receiver.application())) as test_client:
        yield test_client


async def posted(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> int:
    response = await client.post(f"{path}?code={KEY}", json=body)
    assert response.status == 200, await response.text()
    return int((await response.json())["published"])


async def test_a_restored_dataverse_record_is_published_again(
    client: TestClient[Any, Any], publisher: MemoryPublisher
) -> None:
    bodies = [
        notification("Create", post=account_image(1001)),
        notification("Delete", pre=account_image(1001)),
        notification("Create", post=account_image(1005, name="Restored")),  # same GUID
        notification("Update", post=account_image(1001)),  # a late retry from before
        notification("Delete", pre=account_image(1001)),  # a late retry of the delete
    ]
    assert [await posted(client, DATAVERSE_PATH, b) for b in bodies] == [1, 1, 1, 0, 0]
    assert [(e.operation, e.source.record_version) for e in publisher.events] == [
        (Operation.CREATE, 1001),
        (Operation.DELETE, 1001),
        (Operation.CREATE, 1005),
    ]


VIRTUAL_TABLE = "mserp_ecoresreleaseddistinctproductcdsentity"
PRODUCT_COLUMNS = {"mserp_dataareaid": "usmf", "mserp_productnumber": "P-1"}


def data_event(message: str, row_version: int) -> dict[str, Any]:
    """An F&O data event on the product's virtual table, with its key in the images."""
    image = PRODUCT_COLUMNS if message == "OnExternalDeleted" else {**PRODUCT_COLUMNS}
    body = notification(
        message,
        post=None if message == "OnExternalDeleted" else image,
        pre=image if message != "OnExternalCreated" else None,
        target={"RowVersion": str(row_version)},
        entity_name=VIRTUAL_TABLE,
    )
    target = body["InputParameters"][0]["value"]
    target["RowVersion"] = str(row_version)
    return body


async def test_an_fno_product_released_again_is_published_again(
    client: TestClient[Any, Any], publisher: MemoryPublisher
) -> None:
    events = [
        data_event("OnExternalCreated", 10),
        data_event("OnExternalDeleted", 11),
        data_event("OnExternalDeleted", 11),  # Dataverse delivers at least once
        data_event("OnExternalCreated", 12),
        data_event("OnExternalUpdated", 10),  # a late retry from before the delete
    ]
    assert [await posted(client, DATAVERSE_PATH, e) for e in events] == [1, 1, 0, 1, 0]
    assert [e.operation for e in publisher.events] == [
        Operation.CREATE,
        Operation.DELETE,
        Operation.CREATE,
    ]


class PagedChanges:
    """A change-tracking reader that answers each poll with the next list of pages."""

    def __init__(self, *polls: list[DeltaPage]) -> None:
        self.polls = list(polls)

    async def changes(
        self, entity: SourceEntity, delta_link: str | None, page_size: int
    ) -> AsyncIterator[DeltaPage]:
        for page in self.polls.pop(0):
            yield page


async def test_change_tracking_publishes_a_restored_record_again(
    publisher: MemoryPublisher,
) -> None:
    account = source_entity(System.SALES, "account")
    record = {"accountid": ACCOUNT_ID, "name": "Fourth Coffee", "versionnumber": 1001}
    restored = {**record, "name": "Restored", "versionnumber": 1005}
    link = DeltaPage(delta_link="link")
    deleted, recreated = [DeltaPage(deleted_ids=[ACCOUNT_ID]), link], [DeltaPage([restored]), link]
    # Each page read twice, as after a crash between publishing and storing the link.
    reader = PagedChanges([DeltaPage([record]), link], deleted, deleted, recreated, recreated)
    poller = DeltaPoller(PollerSettings(), account, reader, publisher, MemoryState())  # type: ignore[arg-type]
    assert [await poller.poll_once() for _ in range(5)] == [1, 1, 0, 1, 0]
    assert [(e.operation, e.source.record_version) for e in publisher.events] == [
        (Operation.SNAPSHOT, 1001),
        (Operation.DELETE, None),
        (Operation.UPDATE, 1005),
    ]
