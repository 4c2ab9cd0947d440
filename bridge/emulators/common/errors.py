"""Errors the emulators answer with, rendered in each system's documented JSON shape.

::

    BridgeError
    └── EmulatorError            anything the emulators raise on purpose
        └── ApiError             becomes an HTTP error response (status, code, message)

Handlers raise :class:`ApiError`; the app of each system renders it: Dataverse as
``{"error": {"code", "message"}}``, F&O as ``{"error": {"code": "", "message": "An error has
occurred.", "innererror": {"message", "type", "stacktrace"}}}`` (or the plain shape when
``wrap`` is false, e.g. 429).
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.errors import BridgeError

FNO_ERROR_TYPE = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataException"
FNO_WRITE_ERROR_TYPE = (
    "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
)
ODATA_ERROR_TYPE = "Microsoft.OData.ODataException"


class EmulatorError(BridgeError):
    """Root of the errors the emulators raise."""


class ApiError(EmulatorError):
    """An HTTP error response: status, a Dataverse hex ``code`` and a message.

    ``error_type`` is the F&O ``innererror.type``; ``wrap`` false renders F&O errors without
    the ``innererror`` envelope; ``headers`` are added to the response (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        error_type: str = FNO_ERROR_TYPE,
        wrap: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.error_type = error_type
        self.wrap = wrap
        self.headers = dict(headers or {})


def bad_request(
    message: str, *, code: str = "0x80060888", error_type: str = ODATA_ERROR_TYPE
) -> ApiError:
    """A 400 for a malformed request (OData parse error, unknown property, bad value)."""
    return ApiError(400, message, code=code, error_type=error_type)


def dataverse_body(error: ApiError) -> dict[str, object]:
    """Dataverse's error body."""
    return {"error": {"code": error.code, "message": error.message}}


def fno_body(error: ApiError) -> dict[str, object]:
    """F&O's error body: the generic message with the detail in ``innererror``."""
    if not error.wrap:
        return {"error": {"code": "", "message": error.message}}
    inner = {"message": error.message, "type": error.error_type, "stacktrace": ""}
    return {"error": {"code": "", "message": "An error has occurred.", "innererror": inner}}
