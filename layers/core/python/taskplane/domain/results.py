"""A target's large answer, checked as JSON without building it, and kept as its bytes.

Parsing JSON in Python costs far more memory than its text: a 5 MiB answer of small records becomes
~160 MiB of dicts (measured), so one such answer ends a 256 MB worker and every other attempt of its
delivery batch with it, whichever tenant they belong to. A result that large is only ever stored in
the bucket, never read by the worker, so the worker need not build it: :func:`checked_json` checks
the text is one JSON value the platform would keep (no NaN or Infinity, no number out of range, no
lone surrogate, nesting no deeper than the payload limit) while dropping what it parses, and
:class:`RawJson` carries the text's UTF-8 bytes to the bucket as they are.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

#: An answer longer than this (bytes) is checked and kept as text, not parsed into values.
LARGE_RESULT_BYTES = 256 * 1024

#: The depth of a value nested deeper than the parser goes.
TOO_DEEP = 10**6

#: Any surrogate escape (``\\ud800``-``\\udfff``), and one that is half of a valid pair.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class RawJson:
    """One JSON value as UTF-8 text, checked by :func:`checked_json`; ``depth`` as ``payload_depth``."""

    data: bytes
    depth: int

    @property
    def size(self) -> int:
        return len(self.data)

    def value(self) -> Any:
        """The value itself (builds it: as much memory as parsing always took)."""
        return json.loads(self.data)


def valued(result: Any) -> Any:
    """A target's result as a value (a :class:`RawJson` built), for a caller that reads it."""
    return result.value() if isinstance(result, RawJson) else result


class _Depth(int):
    """How deeply an object nests (an object holding only scalars is 1): what the checking parse
    keeps of each object, told apart from the numbers in the text by its type."""


_DEPTHS: list[_Depth] = []


def _depth(n: int) -> _Depth:
    while len(_DEPTHS) <= n:
        _DEPTHS.append(_Depth(len(_DEPTHS)))
    return _DEPTHS[n]


def _depth_of(value: Any) -> int:
    if isinstance(value, _Depth):
        return int(value)
    if isinstance(value, list):
        return 1 + max((_depth_of(v) for v in value), default=0)
    return 0


def _object(pairs: list[tuple[str, Any]]) -> _Depth:
    return _depth(1 + max((_depth_of(v) for _, v in pairs), default=0))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> int:
    if not math.isfinite(float(text)):
        raise ValueError(f"number {text[:20]} is out of range")
    return 0


class NotJson(ValueError):
    """The text is not one JSON value the platform keeps (the caller keeps it as text, as before)."""


def checked_json(text: str) -> RawJson | None:
    """``text`` as :class:`RawJson` when it is one JSON value; None when it spells a lone surrogate
    (rare: the caller parses it and replaces them, as for any answer). Raises :class:`NotJson` when
    it is not JSON, has NaN or Infinity, or a number out of range.

    Only objects' depths and lists are kept while parsing (numbers become 0), so the memory is a
    fraction of the value's: a list of 600,000 small objects holds one pointer each.

    >>> checked_json('{"a": [1, {"b": 2.5}], "c": "\\\\ud83d\\\\ude00"}')
    RawJson(data=b'{"a": [1, {"b": 2.5}], "c": "\\\\ud83d\\\\ude00"}', depth=3)
    >>> checked_json('["\\\\ud800"]') is None
    True
    """
    escapes = _SURROGATE_ESCAPE.findall(text)
    if escapes and len(escapes) != 2 * len(_PAIR.findall(text)):
        return None  # a lone surrogate (or an escaped backslash before "u": parsed the usual way)
    try:
        shape = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=lambda _: 0,
        )
        depth = _depth_of(shape)
    except RecursionError:
        depth = TOO_DEEP  # deeper than the parser goes: deeper than any payload the platform keeps
    except ValueError as exc:
        raise NotJson(str(exc)) from None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate as a character, not an escape: the usual way replaces it
    return RawJson(data, depth=depth)
