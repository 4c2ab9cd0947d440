"""``$filter`` evaluation against one record (see :mod:`bridge.emulators.odata.filter` for
the semantics: case-insensitive strings, null only equals null, F&O wildcards)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from bridge.emulators.odata.ast import Call, Dialect, Literal, Node, Not, Prop, Resolver
from bridge.emulators.odata.lexer import EnumValue
from bridge.emulators.odata.values import comparable

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def evaluate(node: Node, resolve: Resolver, dialect: Dialect) -> Any:
    """The value of ``node`` for one record; ``resolve`` gives a property's value."""
    if isinstance(node, Literal):
        return comparable(node.value.symbol if isinstance(node.value, EnumValue) else node.value)
    if isinstance(node, Prop):
        return comparable(resolve(node.name))
    if isinstance(node, Not):
        return not evaluate(node.operand, resolve, dialect)
    if isinstance(node, Call):
        return _call(node, resolve)
    if node.op == "and":
        return bool(evaluate(node.left, resolve, dialect)) and bool(
            evaluate(node.right, resolve, dialect)
        )
    if node.op == "or":
        return bool(evaluate(node.left, resolve, dialect)) or bool(
            evaluate(node.right, resolve, dialect)
        )
    left = evaluate(node.left, resolve, dialect)
    right = evaluate(node.right, resolve, dialect)
    if node.op in COMPARISONS:
        wildcard = dialect.wildcards and isinstance(node.right, Literal) and _is_pattern(right)
        return _compare(node.op, left, right, wildcard)
    return _arithmetic(node.op, left, right)


def matches(node: Node | None, resolve: Resolver, dialect: Dialect) -> bool:
    """Whether a record passes the filter (no filter passes everything)."""
    return node is None or bool(evaluate(node, resolve, dialect))


def _is_pattern(value: Any) -> bool:
    return isinstance(value, str) and "*" in value


def _call(node: Call, resolve: Resolver) -> bool:
    if node.named:
        names = dict(node.named)
        value = comparable(resolve(names["PropertyName"]))
        found = any(
            _compare("eq", value, comparable(item), False) for item in names["PropertyValues"]
        )
        return found if node.name.endswith(".In") else not found
    target, needle = (
        comparable(resolve(_prop_name(node.args[0]))),
        comparable(_literal_value(node.args[1])),
    )
    if not isinstance(target, str) or not isinstance(needle, str):
        return False
    haystack, needle = target.casefold(), needle.casefold()
    if node.name == "contains":
        return needle in haystack
    return haystack.startswith(needle) if node.name == "startswith" else haystack.endswith(needle)


def _prop_name(node: Node) -> str:
    assert isinstance(node, Prop)
    return node.name


def _literal_value(node: Node) -> Any:
    assert isinstance(node, Literal)
    return node.value


def _compare(op: str, left: Any, right: Any, wildcard: bool) -> bool:
    if left is None or right is None:
        return {"eq": left is right, "ne": left is not right}.get(op, False)
    if wildcard and op in ("eq", "ne"):
        hit = _wildcard_match(str(left), str(right))
        return hit if op == "eq" else not hit
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold(), right.casefold()
    left, right = _align_dates(left, right)
    try:
        return bool(_OPERATORS[op](left, right))
    except TypeError:
        return False


def _align_dates(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, datetime) and type(right) is date:
        return left.date(), right
    if isinstance(right, datetime) and type(left) is date:
        return left, right.date()
    return left, right


def _wildcard_match(value: str, pattern: str) -> bool:
    return _wildcard_regex(pattern).fullmatch(value) is not None


@lru_cache(maxsize=256)
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    # compiled once per pattern: a filter is evaluated against every row it scans
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(regex, flags=re.IGNORECASE | re.DOTALL)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        return None
    if op in ("div", "divby", "mod") and right == 0:
        return None
    operations: dict[str, Callable[[], Any]] = {
        "add": lambda: left + right,
        "sub": lambda: left - right,
        "mul": lambda: left * right,
        "div": lambda: (
            left // right if isinstance(left, int) and isinstance(right, int) else left / right
        ),
        "divby": lambda: left / right,
        "mod": lambda: left % right,
    }
    return operations[op]()
