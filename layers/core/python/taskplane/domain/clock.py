"""Time as an input: a clock protocol, a system clock and RFC 3339 helpers (epoch milliseconds inside)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, now_ms: int = 1_767_225_600_000) -> None:
        self._now = now_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def sleep_until(self, when_ms: int) -> None:
        """A wait on this clock until ``when_ms``: it moves there unless it is already later (waits in
        several threads at once end at the latest of their ends, as they would in real time)."""
        self._now = max(self._now, when_ms)


def to_rfc3339(ms: int | None) -> str | None:
    """Epoch milliseconds -> ``2026-01-01T00:00:00.000Z``."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def from_datetime(dt: datetime) -> int:
    """An aware datetime -> epoch milliseconds."""
    return round(dt.timestamp() * 1000)
