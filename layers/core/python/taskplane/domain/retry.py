"""Retry policy: exponential backoff with full jitter and a cap (pure; randomness injected)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

Jitter = Literal["full", "none"]


class RetryPolicy(BaseModel):
    """How often and how fast a failed task is tried again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: StrictInt = Field(
        default=3, ge=1, le=100, description="attempts in all, the first included"
    )
    base_delay_ms: StrictInt = Field(default=1000, ge=0, le=86_400_000)
    max_delay_ms: StrictInt = Field(default=300_000, ge=0, le=86_400_000)
    jitter: Jitter = "full"

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.max_delay_ms < self.base_delay_ms:
            raise ValueError("retry.max_delay_ms must be >= retry.base_delay_ms")
        return self


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
