"""Dataverse webhook bodies shaped like the documented RemoteExecutionContext sample."""

from __future__ import annotations

from typing import Any

ACCOUNT_ID = "6d81597f-0f9f-e711-8122-000d3aa2331c"
USER_ID = "75c2dd85-e89e-e711-8122-000d3aa2331c"
ENTITY_TYPE = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"


def attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def entity(values: dict[str, Any], logical_name: str = "account") -> dict[str, Any]:
    return {
        "__type": ENTITY_TYPE,
        "Attributes": attributes(values),
        "EntityState": None,
        "FormattedValues": [],
        "Id": ACCOUNT_ID,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "RelatedEntities": [],
        "RowVersion": None,
    }


def account_image(version: int = 1001, name: str = "Fourth Coffee") -> dict[str, Any]:
    return {
        "accountid": ACCOUNT_ID,
        "name": name,
        "accountnumber": "ACC-01000-BVRCPS",
        "versionnumber": version,
        "modifiedon": "/Date(1763830800000)/",
        "creditlimit": {
            "__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Value": 12.5,
        },
        "customertypecode": {
            "__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Value": 3,
        },
        "primarycontactid": {
            "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Id": "49B0BE2E-D01C-ED11-B83E-000D3A572421",
            "LogicalName": "contact",
            "Name": None,
            "KeyAttributes": [],
            "RowVersion": None,
        },
    }


def notification(
    message: str = "Update",
    *,
    post: dict[str, Any] | None = None,
    pre: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    entity_name: str = "account",
) -> dict[str, Any]:
    post = account_image() if post is None and message != "Delete" else post
    return {
        "BusinessUnitId": "e2b9dd85-e89e-e711-8122-000d3aa2331c",
        "CorrelationId": "b374239d-4233-41a9-8b17-a86cb4f737b5",
        "Depth": 1,
        "InitiatingUserId": USER_ID,
        "InputParameters": [
            {"key": "Target", "value": entity(target or {"name": "x"}, entity_name)}
        ],
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": "/Date(1506409448000-0700)/",
        "OrganizationName": "OrgName",
        "OutputParameters": [],
        "PostEntityImages": [{"key": "image", "value": entity(post, entity_name)}] if post else [],
        "PreEntityImages": [{"key": "image", "value": entity(pre, entity_name)}] if pre else [],
        "PrimaryEntityId": ACCOUNT_ID,
        "PrimaryEntityName": entity_name,
        "Stage": 40,
        "UserId": USER_ID,
    }
