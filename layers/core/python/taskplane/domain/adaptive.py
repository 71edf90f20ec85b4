"""Adaptive timeouts (the seed's 2.5): an attempt's hard timeout follows its target's observed duration.

``timeout_s: "auto"`` makes the hard timeout of each attempt

    clamp(k x p(quantile) over the last window_s, floor_s, ceiling_s)

where the percentile comes from a per-target :class:`Sketch` of the durations of finished attempts
(calls that answered, success or failure; a timed-out call is not a duration). With fewer than
``min_samples`` durations in the window the attempt gets ``ceiling_s``: an unknown target is given
the most time the policy allows rather than cut short.

The sketch is DDSketch-like: a duration ``x`` ms lands in bucket ``ceil(log_gamma(x))`` with
``gamma = (1 + a) / (1 - a)``, and a bucket answers ``2 gamma^i / (gamma + 1)``, so a quantile read
from it is within a relative error ``a`` (``ALPHA``, 1%) of the true one. Sketches merge by adding
counts, which is what lets workers keep one per target and minute with DynamoDB ``ADD``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

#: Relative accuracy of a quantile read from a sketch.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
#: Durations at or below 1 ms share bucket 0 (they answer 1 ms).
MIN_MS = 1.0
#: Sketches are kept per target and per minute of this length; a window is a whole number of them.
SLICE_MS = 60_000


#: The largest hard timeout of any attempt (Lambda's 15 minutes).
MAX_TIMEOUT_S = 900
#: The longest window an ``"auto"`` policy reads.
MAX_WINDOW_S = 900


def _timeout_spec(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    words = f'must be a whole number of seconds from 1 to {MAX_TIMEOUT_S}, or "auto"'
    # The error types an integer field has (what clients and tests read), one message for all.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", words)
    if value < 1:
        raise PydanticCustomError("greater_than_equal", words)
    if value > MAX_TIMEOUT_S:
        raise PydanticCustomError("less_than_equal", words)
    return value


#: ``timeout_s`` of a task or a node: seconds, or ``"auto"`` (one error naming the field, not one per
#: member of a union).
TimeoutSpec = Annotated[
    int | Literal["auto"],
    PlainValidator(_timeout_spec),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_S},
                {"type": "string", "const": "auto"},
            ]
        }
    ),
]


class AutoTimeout(BaseModel):
    """How ``timeout_s: "auto"`` derives an attempt's hard timeout (defaults in the README)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: StrictFloat | StrictInt = Field(default=2.0, ge=1, le=20, description="multiplier of the percentile")
    quantile: StrictFloat = Field(default=0.99, ge=0.5, le=0.999)
    floor_s: StrictInt = Field(default=1, ge=1, le=900)
    ceiling_s: StrictInt = Field(default=300, ge=1, le=900)
    window_s: StrictInt = Field(
        default=300, ge=60, le=MAX_WINDOW_S, multiple_of=60, description="the sliding window (whole minutes)"
    )
    min_samples: StrictInt = Field(default=20, ge=1, le=100_000)

    @model_validator(mode="after")
    def _floor_not_above_ceiling(self) -> AutoTimeout:
        if self.floor_s > self.ceiling_s:
            raise ValueError("auto_timeout.floor_s must be <= auto_timeout.ceiling_s")
        return self


def auto_only(value: AutoTimeout | None, fields: Mapping[str, object]) -> AutoTimeout | None:
    """The rule of every model with both fields: ``auto_timeout`` goes with ``timeout_s: "auto"`` only."""
    if value is not None and fields.get("timeout_s", "auto") != "auto":
        raise ValueError('only with timeout_s "auto"')
    return value


def bucket_of(ms: float) -> int:
    """The sketch bucket of a duration in milliseconds.

    >>> bucket_of(1.0), bucket_of(100.0) > bucket_of(99.0)
    (0, True)
    """
    if ms <= MIN_MS:
        return 0
    return max(0, math.ceil(math.log(ms) / _LOG_GAMMA))


def bucket_value(index: int) -> float:
    """What a bucket answers: within ``ALPHA`` of every duration it holds."""
    if index <= 0:
        return MIN_MS
    return 2 * GAMMA**index / (GAMMA + 1)


@dataclass
class Sketch:
    """Counts per bucket; merge by adding."""

    counts: dict[int, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def add(self, ms: float, times: int = 1) -> None:
        i = bucket_of(ms)
        self.counts[i] = self.counts.get(i, 0) + times

    def merge(self, other: Mapping[int, int]) -> None:
        for i, c in other.items():
            self.counts[i] = self.counts.get(i, 0) + c

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (the duration at rank ``floor(q (n - 1))`` of the sorted samples), or None
        when empty."""
        n = self.n
        if n == 0:
            return None
        rank = math.floor(q * (n - 1))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen > rank:
                return bucket_value(i)
        return bucket_value(max(self.counts))  # pragma: no cover - ranks end inside the counts


def merged(parts: Iterable[Mapping[int, int]]) -> Sketch:
    s = Sketch()
    for p in parts:
        s.merge(p)
    return s


def slices(now_ms: int, window_s: int) -> list[int]:
    """The minute slices (their start, ms) a window ending at ``now_ms`` covers, the current one included.

    >>> slices(185_000, 120)
    [60000, 120000, 180000]
    """
    current = now_ms - now_ms % SLICE_MS
    count = window_s * 1000 // SLICE_MS
    return [current - i * SLICE_MS for i in range(count, -1, -1)]


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class HardTimeout:
    """An attempt's hard timeout and how it was chosen (for the task's history)."""

    seconds: float
    samples: int
    percentile_ms: float | None

    def describe(self, policy: AutoTimeout) -> str:
        if self.percentile_ms is None:
            return (
                f"timeout {self.seconds:g} s (auto: {self.samples} of {policy.min_samples} samples, "
                "the ceiling)"
            )
        return (
            f"timeout {self.seconds:g} s (auto: {policy.k:g} x p{policy.quantile * 100:g} "
            f"{self.percentile_ms:.0f} ms over {self.samples} samples)"
        )


def hard_timeout(policy: AutoTimeout, sketch: Sketch) -> HardTimeout:
    """``clamp(k x p(quantile), floor_s, ceiling_s)`` in seconds (ms precision); the ceiling when the
    window holds fewer than ``min_samples`` durations.

    >>> s = Sketch(); [s.add(100.0) for _ in range(50)] and None
    >>> hard_timeout(AutoTimeout(k=3, floor_s=1), s).seconds
    1.0
    """
    n = sketch.n
    p = sketch.quantile(policy.quantile) if n >= policy.min_samples else None
    if p is None:
        return HardTimeout(float(policy.ceiling_s), n, None)
    seconds = clamp(math.ceil(policy.k * p) / 1000, policy.floor_s, policy.ceiling_s)
    return HardTimeout(seconds, n, p)
