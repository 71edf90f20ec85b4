"""Time-ordered identifiers (ULID layout: 48-bit milliseconds + 80 random bits, Crockford base32)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(now_ms: int, randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A 26-character id that sorts by creation time, so a newest-first listing is a reverse sort."""
    if not 0 <= now_ms < 2**48:
        raise ValueError("timestamp out of range")
    return _encode(now_ms, 10) + _encode(randbits(80), 16)


def id_time_ms(value: str) -> int:
    """The millisecond timestamp inside an id made by :func:`new_id`."""
    result = 0
    for ch in value[:10]:
        result = result * 32 + _ALPHABET.index(ch)
    return result


def is_valid_id(value: str) -> bool:
    # fullmatch, not match: ``$`` also matches before a trailing newline.
    return bool(ID_PATTERN.fullmatch(value))
