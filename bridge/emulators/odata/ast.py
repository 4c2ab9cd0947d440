"""``$filter`` syntax tree and dialects (what each system's filter language accepts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.emulators.odata.entities import FieldDef
from bridge.emulators.odata.lexer import LiteralType


@dataclass(frozen=True)
class Dialect:
    """What a system's ``$filter`` accepts."""

    name: str
    wildcards: bool = False
    enum_literals: bool = False
    arithmetic: bool = False
    crm_functions: bool = False


DATAVERSE = Dialect("dataverse", crm_functions=True)
FNO = Dialect("fno", wildcards=True, enum_literals=True, arithmetic=True)


@dataclass(frozen=True)
class Literal:
    """A constant."""

    value: Any
    type: LiteralType


@dataclass(frozen=True)
class Prop:
    """A property reference."""

    name: str


@dataclass(frozen=True)
class Binary:
    """``left op right`` for comparisons, logic and arithmetic."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    """Logical negation."""

    operand: Node


@dataclass(frozen=True)
class Call:
    """A function call; ``named`` holds ``Name=value`` arguments of Dataverse functions."""

    name: str
    args: tuple[Node, ...]
    named: tuple[tuple[str, Any], ...] = ()


Node = Literal | Prop | Binary | Not | Call
Schema = Callable[[str], FieldDef | None]
Resolver = Callable[[str], Any]
