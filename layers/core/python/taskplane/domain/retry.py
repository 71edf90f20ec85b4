"""Retry policy (the seed's RetryHub): exponential backoff with full jitter and a cap, the task's
context (``critical``, ``min_remaining_ms``), a ``fallback`` target, and the target's circuit-breaker
rules (``breaker``). Pure; randomness injected. One model for tasks and workflow nodes alike."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, model_validator

from taskplane.domain.targets import Target

Jitter = Literal["full", "none"]
#: The seed's SLA margin: a non-critical task with less than this left before its deadline is not retried.
DEFAULT_MIN_REMAINING_MS = 200
#: The breaker's window is counted in buckets of this many milliseconds (so at most this many buckets).
BREAKER_BUCKET_MS = 1_000
MAX_BREAKER_WINDOW_MS = 30_000


class BreakerPolicy(BaseModel):
    """When a target's circuit breaker opens (the seed's rules; defaults from the seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_ms: StrictInt = Field(
        default=10_000,
        ge=BREAKER_BUCKET_MS,
        le=MAX_BREAKER_WINDOW_MS,
        multiple_of=BREAKER_BUCKET_MS,
        description="the sliding window the error rate is measured over (whole seconds, at most 30 s)",
    )
    error_rate: StrictFloat | StrictInt = Field(
        default=0.5, gt=0, lt=1, description="opens when the window's error rate passes this (0 < r < 1)"
    )
    min_calls: StrictInt = Field(
        default=10, ge=1, le=100_000, description="calls the window must hold before its rate counts"
    )
    consecutive_timeouts: StrictInt = Field(
        default=3, ge=1, le=1_000, description="timeouts in a row that open it whatever the rate"
    )
    open_ms: StrictInt = Field(
        default=30_000, ge=1_000, le=3_600_000, description="how long it stays open before one probe"
    )


class RetryPolicy(BaseModel):
    """How often and how fast a failed task is tried again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: StrictInt = Field(
        default=3, ge=1, le=100, description="attempts in all, the first included"
    )
    base_delay_ms: StrictInt = Field(default=1000, ge=0, le=86_400_000)
    max_delay_ms: StrictInt = Field(default=300_000, ge=0, le=86_400_000)
    jitter: Jitter = "full"
    critical: StrictBool = Field(
        default=True, description="false: not retried when the deadline leaves less than min_remaining_ms"
    )
    min_remaining_ms: StrictInt = Field(default=DEFAULT_MIN_REMAINING_MS, ge=0, le=86_400_000)
    fallback: Target | None = Field(
        default=None, description="called once when retries are exhausted or skipped (the task still fails)"
    )
    breaker: BreakerPolicy | None = Field(
        default=None, description="the target's circuit-breaker rules (default: the platform's)"
    )

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.max_delay_ms < self.base_delay_ms:
            raise ValueError("retry.max_delay_ms must be >= retry.base_delay_ms")
        return self

    def to_api(self) -> dict[str, Any]:
        """The policy as the API shows it (what was given, defaults filled in; no empty extras)."""
        return self.model_dump(mode="json", exclude_none=True)


def backoff_ceiling_ms(policy: RetryPolicy, attempt: int) -> int:
    """The capped exponential delay after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    # 2**63 is far past any cap; bounding the exponent keeps the arithmetic small.
    exp = min(attempt - 1, 62)
    return min(policy.max_delay_ms, policy.base_delay_ms * (1 << exp))


def backoff_ms(
    policy: RetryPolicy, attempt: int, uniform: Callable[[float, float], float] = random.uniform
) -> int:
    """Delay before the attempt after ``attempt``: full jitter draws uniformly in [0, ceiling]."""
    ceiling = backoff_ceiling_ms(policy, attempt)
    if policy.jitter == "none":
        return ceiling
    return max(0, min(ceiling, int(uniform(0, ceiling))))


def should_retry(policy: RetryPolicy, attempts_done: int, retryable: bool) -> bool:
    """Whether a failure after ``attempts_done`` attempts earns another attempt."""
    return retryable and attempts_done < policy.max_attempts


def next_attempt_at(
    policy: RetryPolicy,
    attempts_done: int,
    now_ms: int,
    uniform: Callable[[float, float], float] = random.uniform,
    deadline_ms: int | None = None,
) -> int | None:
    """When the next attempt may start, or None when the task must not be retried.

    ``deadline_ms`` (optional) refuses a retry that would start after the deadline.
    """
    if attempts_done >= policy.max_attempts:
        return None
    at = now_ms + backoff_ms(policy, attempts_done, uniform)
    if deadline_ms is not None and at >= deadline_ms:
        return None
    return at


def skip_by_context(policy: RetryPolicy, now_ms: int, deadline_ms: int | None) -> bool:
    """Whether a non-critical task's remaining time (to its deadline) is too short to retry.

    >>> skip_by_context(RetryPolicy(critical=False, min_remaining_ms=500), 1_000, 1_400)
    True
    >>> skip_by_context(RetryPolicy(min_remaining_ms=500), 1_000, 1_400)  # critical: retried if it fits
    False
    """
    if policy.critical or deadline_ms is None:
        return False
    return deadline_ms - now_ms < policy.min_remaining_ms


def latest_start(deadline_ms: int | None, timeout_s: int) -> int | None:
    """The last instant an attempt may start and still be sure to finish by ``deadline_ms``.

    >>> latest_start(100_000, 30)
    70000
    """
    return None if deadline_ms is None else deadline_ms - timeout_s * 1000


def can_finish_by(deadline_ms: int | None, now_ms: int, timeout_s: int) -> bool:
    """Whether an attempt starting at ``now_ms`` with ``timeout_s`` ends by the deadline (or there is none)."""
    start = latest_start(deadline_ms, timeout_s)
    return start is None or now_ms <= start
