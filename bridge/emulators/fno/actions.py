"""OData actions of the F&O emulator: registry, parameter checks and ``$metadata`` entries.

A bound action is addressed as ``POST /data/<Set>(<all keys>)/Microsoft.Dynamics.DataEntities.
<Name>`` and an unbound one as ``POST /data/Microsoft.Dynamics.DataEntities.<Name>``. Both
take no parameters: the body must be empty or a JSON object without properties (``@odata.``
annotations aside), else 400 "The parameter 'x' in the request payload is not a valid
parameter for the operation '<Name>'.". Other methods than POST are 405; an unknown action
name is 404 "Resource not found for the segment '<segment>'.". Handlers return the response;
:class:`~bridge.emulators.common.errors.ApiError` they raise becomes the F&O error body as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from bridge.emulators.common.protocol import ApiRequest, ApiResponse
from bridge.emulators.common.store import StoredRecord
from bridge.emulators.fno.tables import odata_error
from bridge.emulators.odata.entities import EntityDef

ACTION_NAMESPACE = "Microsoft.Dynamics.DataEntities"

BoundHandler = Callable[[ApiRequest, EntityDef, StoredRecord], ApiResponse]
UnboundHandler = Callable[[ApiRequest], ApiResponse]


def is_action_segment(name: str) -> bool:
    """Whether a path segment names an action (``Microsoft.Dynamics.DataEntities.X``)."""
    return name.startswith(f"{ACTION_NAMESPACE}.")


def _not_found(segment: str) -> Exception:
    return odata_error(f"Resource not found for the segment '{segment}'.", 404)


@dataclass(frozen=True)
class _Bound:
    entity_type: str
    handler: BoundHandler
    returns: str


@dataclass
class ActionRegistry:
    """The actions one F&O emulator offers."""

    _bound: dict[tuple[str, str], _Bound] = field(default_factory=dict)
    _unbound: dict[str, tuple[UnboundHandler, str]] = field(default_factory=dict)

    def bind(self, entity: EntityDef, name: str, handler: BoundHandler) -> None:
        """Offer action ``name`` on records of ``entity``; it answers with such a record."""
        self._bound[(entity.entity_set, name)] = _Bound(
            entity.type_name, handler, entity.qualified_type
        )

    def unbound(self, name: str, handler: UnboundHandler, returns: str = "Edm.Int32") -> None:
        """Offer the unbound action ``name`` (``returns`` = its EDM return type)."""
        self._unbound[name] = (handler, returns)

    def run_bound(
        self, request: ApiRequest, entity: EntityDef, record: StoredRecord, segment: str
    ) -> ApiResponse:
        """Run the action ``segment`` names on ``record``."""
        name = segment.removeprefix(f"{ACTION_NAMESPACE}.")
        action = self._bound.get((entity.entity_set, name))
        if action is None:
            raise _not_found(segment)
        _check_call(request, name)
        return action.handler(request, entity, record)

    def run_unbound(self, request: ApiRequest, segment: str) -> ApiResponse:
        """Run the unbound action ``segment`` names."""
        name = segment.removeprefix(f"{ACTION_NAMESPACE}.")
        found = self._unbound.get(name)
        if found is None:
            raise _not_found(segment)
        _check_call(request, name)
        return found[0](request)

    def csdl(self) -> list[str]:
        """``<Action>`` elements for ``$metadata``."""
        lines = []
        for (_, name), action in sorted(self._bound.items()):
            binding = f"{ACTION_NAMESPACE}.{action.entity_type}"
            lines.append(
                f'<Action Name={quoteattr(name)} IsBound="true">'
                f'<Parameter Name="_this" Type={quoteattr(binding)} Nullable="false" />'
                f"<ReturnType Type={quoteattr(action.returns)} /></Action>"
            )
        for name, (_, returns) in sorted(self._unbound.items()):
            lines.append(
                f"<Action Name={quoteattr(name)}><ReturnType Type={quoteattr(returns)} /></Action>"
            )
        return lines

    def csdl_imports(self) -> list[str]:
        """``<ActionImport>`` elements of the unbound actions for the entity container."""
        return [
            f"<ActionImport Name={quoteattr(name)} Action={quoteattr(f'{ACTION_NAMESPACE}.{name}')} />"
            for name in sorted(self._unbound)
        ]


def _check_call(request: ApiRequest, name: str) -> None:
    if request.method != "POST":
        raise odata_error(
            f"The requested resource does not support http method '{request.method}'.", 405
        )
    body = request.json_object() if request.body.strip() else {}
    for key in body:
        if not key.startswith("@"):
            raise odata_error(
                f"The parameter '{key}' in the request payload is not a valid parameter for the operation '{name}'."
            )
