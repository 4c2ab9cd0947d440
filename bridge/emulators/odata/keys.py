"""Resource paths and key predicates: ``accounts(accountnumber='A/1')/Attributes``.

:func:`split_path` splits on ``/`` outside quotes and parentheses; :func:`parse_key` turns
``(<guid>)``, ``(name='v',n=2)`` or ``(k=Ns.Enum'Sym')`` into a :class:`KeyPredicate`.
Malformed input raises a 400 :class:`~bridge.emulators.common.errors.ApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.emulators.common.errors import bad_request
from bridge.emulators.odata.lexer import EnumValue, Tok, tokenize


@dataclass(frozen=True)
class Segment:
    """One path segment: a name and the raw text inside its parentheses (if any)."""

    name: str
    key: str | None = None


@dataclass(frozen=True)
class KeyPredicate:
    """A parsed key: one unnamed value, or named values."""

    single: Any = None
    named: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_single(self) -> bool:
        """Whether the key was written without names, e.g. ``(<guid>)``."""
        return not self.named


def _split_top_level(path: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "/" and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if depth or quoted:
        raise bad_request(f"Bad Request - Error in query syntax: '{path}'.")
    return parts


def split_path(path: str) -> list[Segment]:
    """The segments of a resource path relative to the service root."""
    segments = []
    for part in _split_top_level(path.strip("/")):
        if not part:
            continue
        name, paren, rest = part.partition("(")
        if paren and not rest.endswith(")"):
            raise bad_request(f"Bad Request - Error in query syntax: '{part}'.")
        segments.append(Segment(name, rest[:-1] if paren else None))
    return segments


def parse_key(text: str) -> KeyPredicate:
    """Parse the inside of a key predicate."""
    tokens = tokenize(text)
    if len(tokens) == 2 and tokens[0].kind is Tok.LITERAL:
        return KeyPredicate(single=tokens[0].value)
    named: dict[str, Any] = {}
    index = 0
    while tokens[index].kind is not Tok.END:
        name, equals, value = tokens[index : index + 3]
        if (
            name.kind is not Tok.NAME
            or equals.kind is not Tok.EQUALS
            or value.kind is not Tok.LITERAL
        ):
            raise bad_request(f"The key predicate '({text})' is not valid.")
        named[name.text] = value.value.symbol if isinstance(value.value, EnumValue) else value.value
        index += 3
        if tokens[index].kind is Tok.COMMA:
            index += 1
    if not named:
        raise bad_request(f"The key predicate '({text})' is not valid.")
    return KeyPredicate(named=named)
