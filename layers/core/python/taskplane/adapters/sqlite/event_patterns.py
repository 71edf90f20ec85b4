"""EventBridge event patterns: checked as PutRule checks them, matched as a rule matches events.

What EventBridge documents (user guide, "Event patterns", "Content filtering", "Arrays"):

- A pattern is an object whose leaves are arrays of filters; every field named must match (AND),
  any filter of a field's array may (OR); ``$or`` holds alternative sub-patterns.
- Nested objects name nested fields; a field whose value in the event is an array matches when any of
  its elements does (for objects in an array, one element must match the whole sub-pattern).
- Filters: exact values (strings, numbers, ``true``/``false``/``null``, never equal across types),
  ``prefix`` and ``suffix`` (optionally ``{"equals-ignore-case": ...}``), ``equals-ignore-case``,
  ``anything-but`` (a value, a list, or ``prefix`` / ``suffix`` / ``equals-ignore-case`` / ``wildcard``),
  ``numeric`` (one or two comparisons), ``exists``, ``wildcard`` (``*``, ``\\*`` for a star) and
  ``cidr``. Comparison filters apply to leaves only: an object is not a value, and a field absent
  from the event matches nothing but ``{"exists": false}``.

A pattern EventBridge would refuse raises :class:`InvalidPattern` with its reason.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from typing import Any

_NUMERIC_OPS = {"<", "<=", "=", ">=", ">"}
#: Event Ruler compares numbers between -5.0e9 and 5.0e9 (15 significant digits); PutRule refuses others.
NUMERIC_LIMIT = 5.0e9
_STRING_OPS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_MISSING: Any = object()


class InvalidPattern(ValueError):
    """A pattern EventBridge's PutRule would refuse (``InvalidEventPatternException``)."""


# -- checking ---------------------------------------------------------------------------------------


def validate(pattern: Any) -> None:
    """Raise :class:`InvalidPattern` for anything PutRule refuses."""
    if not isinstance(pattern, dict):
        raise InvalidPattern("an event pattern is a JSON object")
    _check_object(pattern, "")


def _check_object(node: dict[str, Any], path: str) -> None:
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if key == "$or":
            if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
                raise InvalidPattern(f"{where}: $or takes an array of objects")
            for alternative in value:
                _check_object(alternative, path)
        elif isinstance(value, dict):
            _check_object(value, where)
        elif isinstance(value, list):
            if not value:
                raise InvalidPattern(f"{where}: empty arrays are not allowed")
            for spec in value:
                _check_filter(spec, where)
        else:
            raise InvalidPattern(f"{where}: a field's value must be an object or an array")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_string_or_ignore_case(op: str, operand: Any, where: str) -> None:
    if isinstance(operand, dict) and list(operand) == ["equals-ignore-case"]:
        operand = operand["equals-ignore-case"]
    if not isinstance(operand, str):
        raise InvalidPattern(f"{where}: {op} takes a string")


def _check_filter(spec: Any, where: str) -> None:
    if spec is None or isinstance(spec, str | bool) or _is_number(spec):
        return
    if not isinstance(spec, dict) or len(spec) != 1:
        raise InvalidPattern(f"{where}: a filter is a value or an object with one match type")
    ((op, operand),) = spec.items()
    if op in ("prefix", "suffix"):
        _check_string_or_ignore_case(op, operand, where)
    elif op == "equals-ignore-case":
        if not isinstance(operand, str):
            raise InvalidPattern(f"{where}: equals-ignore-case takes a string")
    elif op == "wildcard":
        if not isinstance(operand, str):
            raise InvalidPattern(f"{where}: wildcard takes a string")
        if "**" in operand:
            raise InvalidPattern(f"{where}: consecutive wildcard characters are not allowed")
    elif op == "exists":
        if not isinstance(operand, bool):
            raise InvalidPattern(f"{where}: exists takes true or false")
    elif op == "numeric":
        _check_numeric(operand, where)
    elif op == "cidr":
        try:
            ipaddress.ip_network(operand, strict=False)
        except (TypeError, ValueError):
            raise InvalidPattern(f"{where}: cidr takes an IP prefix such as 10.0.0.0/24") from None
    elif op == "anything-but":
        _check_anything_but(operand, where)
    else:
        raise InvalidPattern(f"{where}: unrecognized match type {op}")


def _check_numeric(operand: Any, where: str) -> None:
    ok = isinstance(operand, list) and len(operand) in (2, 4)
    if ok:
        ops, values = operand[::2], operand[1::2]
        ok = all(o in _NUMERIC_OPS for o in ops) and all(_is_number(v) for v in values)
        if ok and any(abs(v) > NUMERIC_LIMIT for v in values):
            raise InvalidPattern(f"{where}: numeric bounds are between -5.0e9 and 5.0e9")
        if ok and len(operand) == 4:
            # a range: one lower bound and one upper bound above it, in either order
            bounds = dict(zip(ops, values, strict=True))
            low = [v for o, v in bounds.items() if o in (">", ">=")]
            high = [v for o, v in bounds.items() if o in ("<", "<=")]
            ok = len(low) == 1 and len(high) == 1 and low[0] < high[0]
    if not ok:
        raise InvalidPattern(f'{where}: numeric takes ["<op>", n] or a range such as [">", low, "<=", high]')


def _check_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, str) or _is_number(operand):
        return
    if isinstance(operand, list):
        if operand and (all(isinstance(v, str) for v in operand) or all(_is_number(v) for v in operand)):
            return
        raise InvalidPattern(f"{where}: anything-but takes a non-empty array of strings or of numbers")
    if isinstance(operand, dict) and len(operand) == 1:
        ((op, inner),) = operand.items()
        if op in _STRING_OPS and (
            isinstance(inner, str)
            or (isinstance(inner, list) and inner and all(isinstance(v, str) for v in inner))
        ):
            return
    raise InvalidPattern(
        f"{where}: anything-but takes a value, an array, or prefix/suffix/equals-ignore-case/wildcard"
    )


# -- matching ---------------------------------------------------------------------------------------


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` (the whole event: ``source``, ``detail-type``, ``detail``...) matches."""
    return _match_object(pattern, event)


def _match_object(pattern: dict[str, Any], node: Any) -> bool:
    fields = node if isinstance(node, dict) else {}
    for key, spec in pattern.items():
        if key == "$or":
            if not any(_match_object(alternative, node) for alternative in spec):
                return False
        elif isinstance(spec, dict):
            if not _match_nested(spec, fields.get(key, _MISSING)):
                return False
        elif not _match_leaf(spec, fields.get(key, _MISSING)):
            return False
    return True


def _match_nested(spec: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):
        objects = [v for v in value if isinstance(v, dict)]
        if objects:
            return any(_match_object(spec, v) for v in objects)
    return _match_object(spec, value if isinstance(value, dict) else {})


def _match_leaf(filters: list[Any], value: Any) -> bool:
    # The leaf values at this field: none when absent or an object (objects are not values).
    if value is _MISSING or isinstance(value, dict):
        values: list[Any] = []
    elif isinstance(value, list):
        values = [v for v in value if not isinstance(v, dict | list)]
    else:
        values = [value]
    for spec in filters:
        if isinstance(spec, dict) and "exists" in spec:
            if bool(values) == spec["exists"]:
                return True
        elif any(_match_value(spec, v) for v in values):
            return True
    return False


def _same(expected: Any, value: Any) -> bool:
    """Exact matching: equal and of the same JSON type (true is not 1, 1 is not "1")."""
    if expected is None or value is None:
        return expected is None and value is None
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if _is_number(expected):
        return _is_number(value) and expected == value
    return isinstance(value, str) and value == expected


def _match_value(spec: Any, value: Any) -> bool:
    if not isinstance(spec, dict):
        return _same(spec, value)
    ((op, operand),) = spec.items()
    if op == "anything-but":
        return _anything_but(operand, value)
    if op == "numeric":
        return _is_number(value) and all(
            _compare(o, value, n) for o, n in zip(operand[::2], operand[1::2], strict=True)
        )
    if op == "cidr":
        try:
            return isinstance(value, str) and ipaddress.ip_address(value) in ipaddress.ip_network(
                operand, strict=False
            )
        except ValueError:
            return False
    return _string_op(op, operand, value)


def _string_op(op: str, operand: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    fold = False
    if isinstance(operand, dict):  # {"prefix": {"equals-ignore-case": "x"}}
        operand, fold = operand["equals-ignore-case"], True
    if op == "equals-ignore-case":
        return value.lower() == operand.lower()
    if fold:
        value, operand = value.lower(), operand.lower()
    if op == "prefix":
        return value.startswith(operand)
    if op == "suffix":
        return value.endswith(operand)
    if op == "wildcard":
        return _wildcard(operand).fullmatch(value) is not None
    return False


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        ((op, inner),) = operand.items()
        options = inner if isinstance(inner, list) else [inner]
        if not isinstance(value, str):
            # Event Ruler (EventBridge's matcher) compares a value's JSON text, a string with its
            # quotes: a number, true, false or null never starts or ends like a string, so
            # anything-but prefix/suffix lets it through; the other forms want a string.
            return op in ("prefix", "suffix")
        return not any(_string_op(op, o, value) for o in options)
    options = operand if isinstance(operand, list) else [operand]
    return not any(_same(o, value) for o in options)


def _compare(op: str, value: float, bound: float) -> bool:
    if op == "<":
        return value < bound
    if op == "<=":
        return value <= bound
    if op == "=":
        return value == bound
    if op == ">=":
        return value >= bound
    return value > bound


@cache
def _wildcard(text: str) -> re.Pattern[str]:
    """``*`` is any run of characters; ``\\*`` a star and ``\\\\`` a backslash."""
    parts: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "*\\":
            parts.append(re.escape(text[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)
