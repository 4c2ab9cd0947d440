"""Tokenizer for OData URL expressions (``$filter`` and key predicates).

Literals are converted to Python values here: strings (``''`` unescaped), integers and
decimals, GUIDs (lower-cased ``str``), ``datetime`` (aware, UTC when no offset), ``date``,
booleans, ``null`` and F&O enum literals (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``).
A malformed expression raises a 400 :class:`~bridge.emulators.common.errors.ApiError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from bridge.emulators.common.errors import ApiError, bad_request


class Tok(StrEnum):
    """Token kinds."""

    NAME = "name"
    LITERAL = "literal"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    LBRACKET = "["
    RBRACKET = "]"
    EQUALS = "="
    END = "end"


class LiteralType(StrEnum):
    """The OData type of a literal."""

    STRING = "Edm.String"
    INT = "Edm.Int32"
    DECIMAL = "Edm.Decimal"
    BOOLEAN = "Edm.Boolean"
    GUID = "Edm.Guid"
    DATETIME = "Edm.DateTimeOffset"
    DATE = "Edm.Date"
    NULL = "null"
    ENUM = "enum"


@dataclass(frozen=True)
class EnumValue:
    """An F&O enum literal: the qualified enum type and the symbol."""

    enum_type: str
    symbol: str


@dataclass(frozen=True)
class Token:
    """One token; ``value``/``literal_type`` are set for literals."""

    kind: Tok
    text: str
    position: int
    value: Any = None
    literal_type: LiteralType | None = None


_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("space", re.compile(r"\s+")),
    ("string", re.compile(r"'(?:[^']|'')*'")),
    ("guid", re.compile(_GUID + r"(?![\w-])")),
    ("datetime", re.compile(_DATETIME)),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:])")),
    ("number", re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.])")),
    ("enum", re.compile(r"[A-Za-z_][\w.]*'(?:[^']|'')*'")),
    ("name", re.compile(r"[A-Za-z_$@][\w.$@]*(?:/[A-Za-z_$@][\w.$@]*)*")),
    ("punct", re.compile(r"[()\[\],=]")),
]
_SCANNER = re.compile("|".join(f"(?P<{kind}>{pattern.pattern})" for kind, pattern in _PATTERNS))
"""The patterns as one alternation: a match is the first pattern, in the order above, that
matches at the position (as trying them one by one would find), in one call."""
_PUNCT = {
    "(": Tok.LPAREN,
    ")": Tok.RPAREN,
    ",": Tok.COMMA,
    "[": Tok.LBRACKET,
    "]": Tok.RBRACKET,
    "=": Tok.EQUALS,
}


def syntax_error(position: int, text: str) -> ApiError:
    """The OData parser's error for a malformed expression."""
    return bad_request(f"Syntax error at position {position} in '{text}'.")


def parse_datetime(text: str) -> datetime:
    """An ISO-8601 date-time as an aware ``datetime`` (UTC when no offset is given)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _number(text: str) -> int | float:
    core = text.rstrip("mMdDfFlL")
    if re.fullmatch(r"-?\d+", core):
        return int(core)
    return float(core)


def _literal(kind: str, text: str, position: int) -> Token:
    value: Any
    if kind == "string":
        value, ltype = _unquote(text), LiteralType.STRING
    elif kind == "guid":
        value, ltype = text.lower(), LiteralType.GUID
    elif kind == "datetime":
        value, ltype = parse_datetime(text), LiteralType.DATETIME
    elif kind == "date":
        value, ltype = date.fromisoformat(text), LiteralType.DATE
    elif kind == "number":
        value = _number(text)
        ltype = LiteralType.INT if isinstance(value, int) else LiteralType.DECIMAL
    else:
        enum_type, _, quoted = text.partition("'")
        value, ltype = EnumValue(enum_type, _unquote("'" + quoted)), LiteralType.ENUM
    return Token(Tok.LITERAL, text, position, value, ltype)


_KEYWORD_LITERALS: dict[str, tuple[Any, LiteralType]] = {
    "true": (True, LiteralType.BOOLEAN),
    "false": (False, LiteralType.BOOLEAN),
    "null": (None, LiteralType.NULL),
}


def _token(kind: str, text: str, position: int) -> Token:
    if kind == "punct":
        return Token(_PUNCT[text], text, position)
    if kind == "name":
        keyword = _KEYWORD_LITERALS.get(text)
        if keyword is not None:
            return Token(Tok.LITERAL, text, position, keyword[0], keyword[1])
        return Token(Tok.NAME, text, position)
    try:
        return _literal(kind, text, position)
    except ValueError:
        raise syntax_error(position, text) from None


def tokenize(expression: str) -> list[Token]:
    """The tokens of ``expression``, ending with an ``END`` token."""
    tokens: list[Token] = []
    position = 0
    while position < len(expression):
        match = _SCANNER.match(expression, position)
        if match is None or match.lastgroup is None:
            raise syntax_error(position, expression)
        if match.lastgroup != "space":
            tokens.append(_token(match.lastgroup, match.group(), position))
        position = match.end()
    tokens.append(Token(Tok.END, "", len(expression)))
    return tokens
