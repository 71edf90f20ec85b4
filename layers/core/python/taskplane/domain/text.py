"""Text in and out of the platform: valid Unicode only, and JSON objects without duplicate keys.

JSON can spell a lone UTF-16 surrogate (``"\\ud800"``): it is not a character, UTF-8 cannot encode
it, and every serializer downstream (pydantic, DynamoDB, log lines) either refuses or mangles it.
Request bodies are checked here once, whatever door they come through (:func:`loads` for JSON,
:func:`check_text` for a parsed YAML document), and refused with the path of the key or value at
fault. Text that reaches the platform another way (an event, a target's answer) is made valid on
the way out by :func:`valid_text`, so a stored surrogate can never break a read.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from taskplane.domain.errors import InvalidRequest

SURROGATE = re.compile("[\ud800-\udfff]")
#: What a lone surrogate becomes on the way out (U+FFFD, the Unicode replacement character).
REPLACEMENT = "\ufffd"


class _Duplicated(dict[str, Any]):
    """A JSON object that named ``duplicate`` twice (reported with its path by :func:`check_text`)."""

    duplicate: str


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _Duplicated(obj)
    marked.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return marked


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", "", 0)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"number {text[:20]} is out of range", "", 0)
    return value


def loads(text: str | bytes) -> Any:
    """Strict ``json.loads``: no NaN or Infinity, no number out of range, no duplicate key, no lone
    surrogate. Malformed text raises ``json.JSONDecodeError`` (or ``RecursionError`` / ``ValueError``
    as ``json.loads`` does); a duplicate key or invalid text raises :class:`InvalidRequest` naming it.

    >>> loads('{"a": [1, "x"]}')
    {'a': [1, 'x']}
    >>> loads('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    taskplane.domain.errors.InvalidRequest: invalid a: the key "a" is given twice in the same object
    """
    value = json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant, parse_float=_finite)
    check_text(value)
    return value


def shown(text: str) -> str:
    """``text`` with each lone surrogate spelt as its JSON escape (``\\ud800``): printable, valid text."""
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, segment: object) -> str:
    return f"{path}.{segment}" if path else str(segment)


def check_text(value: Any, root: str = "") -> None:
    """Refuse a document holding a lone surrogate (in a key or a string) or a duplicated key.

    Raises :class:`InvalidRequest` whose detail names the field: the dotted path of the key or value
    at fault (``payload.items.0.name``), surrogates spelt as escapes so the answer is valid text.
    Iterative, so any depth is safe; children are visited in document order.
    """
    stack: list[tuple[Any, str]] = [(value, root)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                _refuse(
                    path, f'the text "{_cut(shown(item))}" is not valid Unicode (a lone UTF-16 surrogate)'
                )
        elif isinstance(item, dict):
            if isinstance(item, _Duplicated):
                where = _join(path, shown(item.duplicate))
                _refuse(
                    where,
                    f'the key "{_cut(shown(item.duplicate))}" is given twice in the same object',
                    kind="duplicate_key",
                )
            children = []
            for key, child in item.items():
                if isinstance(key, str) and SURROGATE.search(key):
                    _refuse(
                        _join(path, shown(key)),
                        f'the key "{_cut(shown(key))}" is not valid Unicode (a lone UTF-16 surrogate)',
                    )
                children.append((child, _join(path, key)))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, _join(path, i)) for i, child in enumerate(item)]))


def _refuse(field: str, reason: str, kind: str = "invalid_unicode") -> None:
    field = field or "body"
    raise InvalidRequest(
        f"invalid {field}: {reason}",
        [{"field": field, "message": reason, "type": kind, "problem": kind}],
    )


def has_invalid_text(value: Any) -> bool:
    """Whether any key or string in ``value`` holds a lone surrogate (iterative, any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and SURROGATE.search(key):
                    return True
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def valid_text(value: Any) -> Any:
    """``value`` with every lone surrogate (in keys and strings, at any depth) replaced by U+FFFD.

    Answers ``value`` itself when it holds none (the usual case: nothing is copied).

    >>> valid_text({"\\ud800": ["ok", "a\\udfffb"]})
    {'\ufffd': ['ok', 'a\ufffdb']}
    """
    if not has_invalid_text(value):
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    # Only reached for a value known to hold a surrogate. Iterative: rebuild containers bottom-up.
    if isinstance(value, str):
        return SURROGATE.sub(REPLACEMENT, value)
    if not isinstance(value, dict | list | tuple):
        return value
    root: list[Any] = [None]
    # Each frame: (source container, target slot setter); children are appended as they are built.
    work: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while work:
        source, parent, slot = work.pop()
        if isinstance(source, dict):
            built: Any = {}
            for key, child in source.items():
                name = SURROGATE.sub(REPLACEMENT, key) if isinstance(key, str) else key
                built[name] = child
                if isinstance(child, str):
                    built[name] = SURROGATE.sub(REPLACEMENT, child)
                elif isinstance(child, dict | list | tuple):
                    work.append((child, built, name))
        elif isinstance(source, list | tuple):
            built = list(source)
            for i, child in enumerate(source):
                if isinstance(child, str):
                    built[i] = SURROGATE.sub(REPLACEMENT, child)
                elif isinstance(child, dict | list | tuple):
                    work.append((child, built, i))
        else:  # pragma: no cover - only containers are queued
            built = source
        parent[slot] = built
    return root[0]
