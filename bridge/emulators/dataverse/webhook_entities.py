"""Dataverse platform tables behind webhook registration and system jobs.

``serviceendpoint`` (``authvalue`` is write-only), ``sdkmessage``, ``sdkmessagefilter``,
``sdkmessageprocessingstep``, ``sdkmessageprocessingstepimage`` and ``asyncoperation``
(failed deliveries), as in dynamics-apis.md A.9. None of them has change tracking.
"""

from __future__ import annotations

from bridge.emulators.dataverse import optionsets as opt
from bridge.emulators.dataverse.fields import (
    choice,
    flag,
    integer,
    lookup,
    memo,
    moment,
    table,
    text,
)
from bridge.emulators.odata.entities import EntityDef, FieldDef, FieldKind

SERVICE_ENDPOINT = "serviceendpoint"
SDK_MESSAGE = "sdkmessage"
SDK_MESSAGE_FILTER = "sdkmessagefilter"
STEP = "sdkmessageprocessingstep"
STEP_IMAGE = "sdkmessageprocessingstepimage"
ASYNC_OPERATION = "asyncoperation"
PLATFORM_TABLES = frozenset(
    {SERVICE_ENDPOINT, SDK_MESSAGE, SDK_MESSAGE_FILTER, STEP, STEP_IMAGE, ASYNC_OPERATION}
)


def _service_endpoint() -> EntityDef:
    columns = [
        text("name", 256, required=True),
        text("url", 2000),
        text("namespaceaddress", 2000),
        text("path", 160),
        choice("contract", opt.SERVICE_ENDPOINT_CONTRACT),
        choice("authtype", opt.SERVICE_ENDPOINT_AUTH),
        FieldDef("authvalue", FieldKind.MEMO, max_length=2048, readable=False),
        choice("messageformat", opt.MESSAGE_FORMAT),
        choice("userclaim", opt.USER_CLAIM),
        memo("description"),
    ]
    return table(
        SERVICE_ENDPOINT,
        "serviceendpoints",
        columns,
        primary_name="name",
        object_type_code=4618,
        change_tracking=False,
        organization_owned=True,
    )


def _messages() -> list[EntityDef]:
    message = table(
        SDK_MESSAGE,
        "sdkmessages",
        [text("name", 256, required=True), flag("isprivate")],
        primary_name="name",
        object_type_code=4606,
        change_tracking=False,
        organization_owned=True,
    )
    message_filter = table(
        SDK_MESSAGE_FILTER,
        "sdkmessagefilters",
        [
            text("name", 256),
            text("primaryobjecttypecode", 128),
            text("secondaryobjecttypecode", 128),
            lookup("sdkmessageid", SDK_MESSAGE, required=True),
            flag("iscustomprocessingstepallowed"),
        ],
        primary_name="name",
        object_type_code=4607,
        change_tracking=False,
        organization_owned=True,
    )
    return [message, message_filter]


def _steps() -> list[EntityDef]:
    step = table(
        STEP,
        "sdkmessageprocessingsteps",
        [
            text("name", 256, required=True),
            memo("description"),
            choice("mode", opt.STEP_MODE),
            choice("stage", opt.STEP_STAGE),
            integer("rank"),
            choice("supporteddeployment", opt.STEP_DEPLOYMENT),
            flag("asyncautodelete"),
            text("filteringattributes", 100000),
            memo("configuration"),
            lookup("eventhandler", SERVICE_ENDPOINT, "plugintype"),
            lookup("sdkmessageid", SDK_MESSAGE, required=True),
            lookup("sdkmessagefilterid", SDK_MESSAGE_FILTER),
        ],
        primary_name="name",
        object_type_code=4608,
        states=opt.STEP_STATES,
        change_tracking=False,
        organization_owned=True,
    )
    image = table(
        STEP_IMAGE,
        "sdkmessageprocessingstepimages",
        [
            text("name", 256),
            text("entityalias", 256, required=True),
            choice("imagetype", opt.IMAGE_TYPE),
            text("messagepropertyname", 256),
            text("attributes", 100000),
            memo("description"),
            lookup("sdkmessageprocessingstepid", STEP, required=True),
        ],
        primary_name="name",
        object_type_code=4615,
        change_tracking=False,
        organization_owned=True,
    )
    return [step, image]


def _async_operation() -> EntityDef:
    columns = [
        text("name", 256),
        choice("operationtype", opt.ASYNC_OPERATION_TYPE),
        memo("message", 1_048_576),
        memo("friendlymessage", 1_048_576),
        integer("errorcode"),
        integer("depth"),
        text("messagename", 160),
        text("primaryentitytype", 64),
        FieldDef("correlationid", FieldKind.GUID),
        lookup("owningextensionid", STEP),
        lookup(
            "regardingobjectid", "account", "contact", "product", "quote", "salesorder", "invoice"
        ),
        moment("startedon"),
        moment("completedon"),
    ]
    return table(
        ASYNC_OPERATION,
        "asyncoperations",
        columns,
        primary_name="name",
        object_type_code=4700,
        states=opt.ASYNC_STATES,
        change_tracking=False,
    )


def webhook_entities() -> list[EntityDef]:
    """The platform tables used to register webhooks and to read failed deliveries."""
    return [_service_endpoint(), *_messages(), *_steps(), _async_operation()]
