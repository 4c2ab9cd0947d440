"""RemoteExecutionContext bodies → change events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bridge.contract.envelope import Capture, Operation, System
from bridge.dataverse.webhook import (
    SalesNotification,
    needs_fresh_read,
    notification_entity,
    notification_to_event,
    parse_notification,
)
from bridge.errors import InvalidNotification, NotCaptured
from tests.unit.notifications import ACCOUNT_ID, USER_ID, account_image, notification


def event_of(body: dict[str, Any]) -> Any:
    context = parse_notification(body)
    return notification_to_event(context, notification_entity(context))


def test_update_with_post_image_becomes_a_typed_event() -> None:
    event = event_of(
        notification("Update", pre=account_image(1000, "Old"), post=account_image(1001))
    )
    assert event.operation is Operation.UPDATE
    assert event.source.system is System.SALES
    assert event.source.record_id == ACCOUNT_ID
    assert event.source.record_version == 1001
    assert event.source.business_key == "ACC-01000-BVRCPS"
    assert event.source.changed_by == USER_ID
    assert event.source.capture is Capture.WEBHOOK
    assert event.after["creditlimit"] == 12.5
    assert event.after["customertypecode"] == 3
    assert event.after["_primarycontactid_value"] == "49b0be2e-d01c-ed11-b83e-000d3a572421"
    assert event.after["modifiedon"] == "2025-11-22T17:00:00Z"
    assert event.before["name"] == "Old"
    assert event.correlation_id == "b374239d-4233-41a9-8b17-a86cb4f737b5"


def test_delete_carries_the_pre_image_only() -> None:
    event = event_of(notification("Delete", pre=account_image(1001)))
    assert event.operation is Operation.DELETE
    assert event.after is None
    assert event.before["accountnumber"] == "ACC-01000-BVRCPS"


def test_same_version_has_the_same_event_id_whatever_the_message() -> None:
    created = event_of(notification("Create", post=account_image(1001)))
    updated = event_of(notification("Update", post=account_image(1001)))
    assert created.event_id == updated.event_id
    assert created.event_id != event_of(notification("Update", post=account_image(1002))).event_id


def test_body_without_versioned_post_image_needs_a_read() -> None:
    body = notification("Update", post={}, target={"name": "n"})
    body["PostEntityImages"] = []
    assert needs_fresh_read(parse_notification(body))
    assert not needs_fresh_read(parse_notification(notification("Update")))


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "text",
        {"MessageName": "Update"},
        {**notification(), "PrimaryEntityId": "not-a-guid"},
        {**notification(), "PrimaryEntityName": ""},
        {**notification(), "InputParameters": "nope"},
    ],
    ids=["empty", "list", "string", "partial", "bad-guid", "no-entity", "bad-params"],
)
def test_invalid_bodies_are_rejected(body: Any) -> None:
    with pytest.raises(InvalidNotification):
        event_of(body)


@pytest.mark.parametrize(
    "body",
    [notification(entity_name="systemuser"), {**notification(), "MessageName": "Assign"}],
    ids=["entity", "message"],
)
def test_not_captured_is_its_own_error(body: dict[str, Any]) -> None:
    with pytest.raises(NotCaptured):
        event_of(body)


def test_malformed_attribute_list_is_invalid() -> None:
    body = notification()
    body["PostEntityImages"][0]["value"]["Attributes"] = [{"no-key": 1}]
    with pytest.raises(InvalidNotification):
        event_of(body)


def _without_post_image(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "PostEntityImages": []}


@pytest.mark.parametrize(
    "body",
    [
        notification("Create", post=account_image(1001)),
        notification("Update", pre=account_image(1000, "Old"), post=account_image(1001)),
        notification("Delete", pre=account_image(1001)),
        _without_post_image(notification("Update", target={"name": "n"})),
        _without_post_image(notification("Update", pre=account_image(1000), target={"name": "n"})),
    ],
    ids=["create", "update", "delete", "target-only", "pre-and-target"],
)
def test_a_notification_read_once_gives_what_each_function_gives(body: dict[str, Any]) -> None:
    context = parse_notification(body)
    once = SalesNotification.of(context)
    assert once.needs_read == needs_fresh_read(context)
    expected = notification_to_event(context, notification_entity(context))
    assert replace(once.event(), published_at=expected.published_at) == expected
    fresh = {**account_image(1005), "accountid": ACCOUNT_ID}
    assert once.event(fresh).after == fresh
