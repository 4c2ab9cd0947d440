"""``$filter``: recursive-descent parser to an AST and a type check against a schema
(evaluation lives in :mod:`bridge.emulators.odata.eval`, the AST in :mod:`.ast`).

Grammar (precedence low to high)::

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | compare
    compare := additive (('eq'|'ne'|'gt'|'ge'|'lt'|'le') additive)?
    additive:= term (('add'|'sub') term)*            (F&O only)
    term    := primary (('mul'|'div'|'divby'|'mod') primary)*   (F&O only)
    primary := literal | '(' expr ')' | name '(' args ')' | property

Semantics shared by both systems: string comparisons are case-insensitive (SQL collation);
``null`` compares equal only to ``null`` and orders against nothing. Dialects differ: F&O
treats ``*`` in an ``eq``/``ne`` string literal as a wildcard, requires enum literals for
enum fields (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``, ``eq``/``ne`` only) and has
arithmetic; Dataverse has ``Microsoft.Dynamics.CRM.In``/``NotIn``. ``in`` and ``has`` are
rejected by both. Every error is a 400 :class:`~bridge.emulators.common.errors.ApiError`.
"""

from __future__ import annotations

from typing import Any

from bridge.emulators.common.errors import bad_request
from bridge.emulators.odata.ast import (
    DATAVERSE,
    FNO,
    Binary,
    Call,
    Dialect,
    Literal,
    Node,
    Not,
    Prop,
    Resolver,
    Schema,
)
from bridge.emulators.odata.entities import FieldDef, FieldKind
from bridge.emulators.odata.eval import evaluate, matches
from bridge.emulators.odata.lexer import EnumValue, LiteralType, Tok, Token, syntax_error, tokenize
from bridge.emulators.odata.values import type_error

__all__ = [
    "DATAVERSE",
    "FNO",
    "Dialect",
    "Node",
    "Resolver",
    "Schema",
    "compile_filter",
    "evaluate",
    "matches",
    "parse_filter",
]

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_ADDITIVE = ("add", "sub")
_MULTIPLICATIVE = ("mul", "div", "divby", "mod")
_STRING_FUNCTIONS = ("contains", "startswith", "endswith")
_CRM_IN = ("Microsoft.Dynamics.CRM.In", "Microsoft.Dynamics.CRM.NotIn")


class _Parser:
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: Tok) -> Token:
        token = self.advance()
        if token.kind is not kind:
            raise syntax_error(token.position, self.text)
        return token

    def word(self, *words: str) -> str | None:
        token = self.peek()
        if token.kind is Tok.NAME and token.text in words:
            self.index += 1
            return token.text
        return None

    def parse(self) -> Node:
        node = self.expr()
        if self.peek().kind is not Tok.END:
            self.reject_operator(self.peek())
            raise syntax_error(self.peek().position, self.text)
        return node

    def reject_operator(self, token: Token) -> None:
        if token.kind is Tok.NAME and token.text in ("in", "has"):
            raise bad_request(
                f"The query specified in the URI is not valid. The '{token.text}' operator is not supported."
            )
        if token.kind is Tok.NAME and token.text in _ADDITIVE + _MULTIPLICATIVE:
            raise bad_request(
                f"The query specified in the URI is not valid. The '{token.text}' operator is not supported."
            )

    def expr(self) -> Node:
        node = self.conjunction()
        while self.word("or"):
            node = Binary("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.unary()
        while self.word("and"):
            node = Binary("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.word("not"):
            return Not(self.unary())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        op = self.word(*COMPARISONS)
        return Binary(op, left, self.additive()) if op else left

    def additive(self) -> Node:
        node = self.term()
        while self.dialect.arithmetic and (op := self.word(*_ADDITIVE)):
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.primary()
        while self.dialect.arithmetic and (op := self.word(*_MULTIPLICATIVE)):
            node = Binary(op, node, self.primary())
        return node

    def primary(self) -> Node:
        token = self.advance()
        if token.kind is Tok.LITERAL:
            assert token.literal_type is not None
            return Literal(token.value, token.literal_type)
        if token.kind is Tok.LPAREN:
            node = self.expr()
            self.expect(Tok.RPAREN)
            return node
        if token.kind is Tok.NAME:
            if self.peek().kind is Tok.LPAREN:
                return self.call(token)
            return Prop(token.text)
        raise syntax_error(token.position, self.text)

    def call(self, name: Token) -> Node:
        self.expect(Tok.LPAREN)
        if name.text in _CRM_IN and self.dialect.crm_functions:
            return self.named_call(name.text)
        if name.text not in _STRING_FUNCTIONS:
            raise bad_request(f"An unknown function with name '{name.text}' was found.")
        args: list[Node] = []
        if self.peek().kind is not Tok.RPAREN:
            args.append(self.expr())
            while self.peek().kind is Tok.COMMA:
                self.advance()
                args.append(self.expr())
        self.expect(Tok.RPAREN)
        return Call(name.text, tuple(args))

    def named_call(self, name: str) -> Node:
        named: list[tuple[str, Any]] = []
        while self.peek().kind is Tok.NAME:
            key = self.advance().text
            self.expect(Tok.EQUALS)
            named.append((key, self.named_value()))
            if self.peek().kind is Tok.COMMA:
                self.advance()
        self.expect(Tok.RPAREN)
        return Call(name, (), tuple(named))

    def named_value(self) -> Any:
        if self.peek().kind is Tok.LBRACKET:
            self.advance()
            items: list[Any] = []
            while self.peek().kind is not Tok.RBRACKET:
                items.append(self.expect(Tok.LITERAL).value)
                if self.peek().kind is Tok.COMMA:
                    self.advance()
            self.advance()
            return items
        return self.expect(Tok.LITERAL).value


def parse_filter(text: str, dialect: Dialect) -> Node:
    """Parse a ``$filter`` expression (syntax only)."""
    return _Parser(text, dialect).parse()


class _Checker:
    def __init__(self, schema: Schema, type_name: str, dialect: Dialect) -> None:
        self.schema = schema
        self.type_name = type_name
        self.dialect = dialect

    def field(self, name: str) -> FieldDef:
        found = self.schema(name)
        if found is None:
            raise bad_request(
                f"Could not find a property named '{name}' on type '{self.type_name}'."
            )
        return found

    def check(self, node: Node) -> None:
        if isinstance(node, Prop):
            self.field(node.name)
        elif isinstance(node, Not):
            self.check(node.operand)
        elif isinstance(node, Call):
            self.check_call(node)
        elif isinstance(node, Binary):
            self.check(node.left)
            self.check(node.right)
            if node.op in COMPARISONS:
                self.check_comparison(node)

    def check_call(self, node: Call) -> None:
        if node.named:
            names = dict(node.named)
            if not isinstance(names.get("PropertyName"), str) or not isinstance(
                names.get("PropertyValues"), list
            ):
                raise bad_request(f"Invalid parameters for function '{node.name}'.")
            self.field(names["PropertyName"])
            return
        if (
            len(node.args) != 2
            or not isinstance(node.args[0], Prop)
            or not isinstance(node.args[1], Literal)
        ):
            raise bad_request(f"Invalid arguments for function '{node.name}'.")
        self.field(node.args[0].name)

    def check_comparison(self, node: Binary) -> None:
        prop, literal = _prop_and_literal(node)
        if prop is None or literal is None:
            return
        field = self.field(prop.name)
        if field.kind is FieldKind.ENUM and self.dialect.enum_literals:
            _check_enum(node.op, field, literal)
        elif not _compatible(field.kind, literal.type):
            raise type_error(field, literal.type, node.op)


def _prop_and_literal(node: Binary) -> tuple[Prop | None, Literal | None]:
    if isinstance(node.left, Prop) and isinstance(node.right, Literal):
        return node.left, node.right
    if isinstance(node.right, Prop) and isinstance(node.left, Literal):
        return node.right, node.left
    return None, None


def _check_enum(op: str, field: FieldDef, literal: Literal) -> None:
    if literal.type is LiteralType.NULL:
        return
    if literal.type is not LiteralType.ENUM:
        raise type_error(field, literal.type, op)
    if op not in ("eq", "ne"):
        raise bad_request(f"The operator '{op}' is not supported for enum property '{field.name}'.")
    value: EnumValue = literal.value
    if value.enum_type.rsplit(".", 1)[-1] != field.enum_type:
        raise bad_request(f"The enum type '{value.enum_type}' does not match '{field.enum_type}'.")
    if field.enum_symbols and value.symbol not in field.enum_symbols:
        raise bad_request(f"The string '{value.symbol}' is not a valid enumeration type constant.")


_COMPATIBLE: dict[LiteralType, frozenset[FieldKind]] = {
    LiteralType.STRING: frozenset(
        {FieldKind.STRING, FieldKind.MEMO, FieldKind.GUID, FieldKind.LOOKUP}
    ),
    LiteralType.INT: frozenset(
        {
            FieldKind.INTEGER,
            FieldKind.BIGINT,
            FieldKind.DECIMAL,
            FieldKind.MONEY,
            FieldKind.PICKLIST,
            FieldKind.STATE,
            FieldKind.STATUS,
        }
    ),
    LiteralType.DECIMAL: frozenset(
        {FieldKind.DECIMAL, FieldKind.MONEY, FieldKind.INTEGER, FieldKind.BIGINT}
    ),
    LiteralType.BOOLEAN: frozenset({FieldKind.BOOLEAN}),
    LiteralType.GUID: frozenset({FieldKind.GUID, FieldKind.LOOKUP}),
    LiteralType.DATETIME: frozenset({FieldKind.DATETIME, FieldKind.DATE}),
    LiteralType.DATE: frozenset({FieldKind.DATETIME, FieldKind.DATE}),
    LiteralType.ENUM: frozenset({FieldKind.ENUM}),
}


def _compatible(kind: FieldKind, literal: LiteralType) -> bool:
    return literal is LiteralType.NULL or kind in _COMPATIBLE.get(literal, frozenset())


def compile_filter(text: str, schema: Schema, type_name: str, dialect: Dialect) -> Node:
    """Parse ``text`` and check every property and comparison against ``schema``."""
    node = parse_filter(text, dialect)
    _Checker(schema, type_name, dialect).check(node)
    return node
