"""Retry policy: capped exponential backoff with full jitter, attempt limits and deadlines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskplane.domain.retry import (
    RetryPolicy,
    backoff_ceiling_ms,
    backoff_ms,
    next_attempt_at,
    should_retry,
)

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
DAY_MS = 86_400_000
NOW = 1_767_225_600_000


@st.composite
def policies(draw: st.DrawFn, jitter: str | None = None) -> RetryPolicy:
    base = draw(st.integers(min_value=0, max_value=DAY_MS))
    cap = draw(st.integers(min_value=base, max_value=DAY_MS))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=100)),
        base_delay_ms=base,
        max_delay_ms=cap,
        jitter=jitter or draw(st.sampled_from(["full", "none"])),
    )


attempts = st.one_of(
    st.integers(min_value=1, max_value=80),
    st.integers(min_value=81, max_value=10**6),
    st.just(10**30),
)
fractions = st.floats(min_value=0.0, max_value=1.0)


def uniform_at(fraction: float) -> Callable[[float, float], float]:
    """A deterministic stand-in for random.uniform that returns the point at ``fraction``."""
    return lambda a, b: a + (b - a) * fraction


def never_called(a: float, b: float) -> float:
    raise AssertionError("uniform must not be drawn for jitter 'none'")


# -- ceiling -------------------------------------------------------------------------------------
@PROPERTY
@given(policy=policies(), attempt=st.integers(min_value=1, max_value=200))
def test_ceiling_is_capped_exponential(policy: RetryPolicy, attempt: int) -> None:
    # Given a policy and a failed attempt number
    # When computing the backoff ceiling
    ceiling = backoff_ceiling_ms(policy, attempt)
    # Then it is min(cap, base * 2^(n-1)), computed here without any shortcut
    assert ceiling == min(policy.max_delay_ms, policy.base_delay_ms * 2 ** (attempt - 1))
    assert 0 <= ceiling <= policy.max_delay_ms


@PROPERTY
@given(policy=policies(), attempt=attempts)
def test_ceiling_is_monotone_and_bounded(policy: RetryPolicy, attempt: int) -> None:
    # Given a policy and two consecutive attempt numbers
    # When computing both ceilings
    this, following = backoff_ceiling_ms(policy, attempt), backoff_ceiling_ms(policy, attempt + 1)
    # Then the later one is never smaller and neither passes the cap
    assert this <= following <= policy.max_delay_ms


@pytest.mark.parametrize("attempt", [0, -1])
def test_ceiling_refuses_attempt_numbers_below_one(attempt: int) -> None:
    # Given an attempt number that is not 1-based
    # When computing the ceiling
    # Then it is refused
    with pytest.raises(ValueError):
        backoff_ceiling_ms(RetryPolicy(), attempt)


def test_ceiling_of_the_default_policy() -> None:
    # Given the default policy (1 s base, 300 s cap)
    policy = RetryPolicy()
    # When computing the first ceilings
    ceilings = [backoff_ceiling_ms(policy, n) for n in range(1, 12)]
    # Then they double from the base until the cap holds them
    assert ceilings == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000]


# -- jitter --------------------------------------------------------------------------------------
@PROPERTY
@given(policy=policies(jitter="full"), attempt=attempts, fraction=fractions)
def test_full_jitter_stays_within_zero_and_ceiling(
    policy: RetryPolicy, attempt: int, fraction: float
) -> None:
    # Given full jitter and a uniform draw anywhere in its range
    calls: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        calls.append((a, b))
        return uniform_at(fraction)(a, b)

    # When computing the delay
    delay = backoff_ms(policy, attempt, uniform)
    # Then it is an int in [0, ceiling], drawn over exactly that range
    ceiling = backoff_ceiling_ms(policy, attempt)
    assert isinstance(delay, int)
    assert 0 <= delay <= ceiling
    assert calls == [(0, ceiling)]


@PROPERTY
@given(policy=policies(jitter="full"), attempt=attempts, drawn=st.floats(min_value=-1e15, max_value=1e15))
def test_full_jitter_clamps_a_misbehaving_uniform(policy: RetryPolicy, attempt: int, drawn: float) -> None:
    # Given a uniform that returns values outside the range it was asked for
    # When computing the delay
    delay = backoff_ms(policy, attempt, lambda a, b: drawn)
    # Then the delay still stays within [0, ceiling]
    assert 0 <= delay <= backoff_ceiling_ms(policy, attempt)


@PROPERTY
@given(policy=policies(jitter="none"), attempt=attempts)
def test_no_jitter_is_the_ceiling(policy: RetryPolicy, attempt: int) -> None:
    # Given jitter "none"
    # When computing the delay
    # Then it equals the ceiling and no random draw is made
    assert backoff_ms(policy, attempt, never_called) == backoff_ceiling_ms(policy, attempt)


def test_full_jitter_uses_random_uniform_by_default() -> None:
    # Given the default policy and no injected uniform
    policy = RetryPolicy()
    # When computing many delays
    delays = {backoff_ms(policy, 3) for _ in range(200)}
    # Then all stay within [0, 4000] and they vary
    assert all(0 <= d <= 4000 for d in delays)
    assert len(delays) > 1


# -- should_retry --------------------------------------------------------------------------------
@PROPERTY
@given(policy=policies(), attempts_done=st.integers(min_value=0, max_value=10**6), retryable=st.booleans())
def test_should_retry(policy: RetryPolicy, attempts_done: int, retryable: bool) -> None:
    # Given a failure after some attempts
    # When deciding whether to retry
    decision = should_retry(policy, attempts_done, retryable)
    # Then only a retryable failure with attempts left earns another attempt
    assert decision is (retryable and attempts_done < policy.max_attempts)


@pytest.mark.parametrize(("done", "expected"), [(1, True), (2, True), (3, False), (4, False)])
def test_should_retry_with_three_attempts(done: int, expected: bool) -> None:
    # Given the default three attempts in all
    # When a retryable failure ends attempt ``done``
    # Then a retry is due only while fewer than three have run
    assert should_retry(RetryPolicy(), done, retryable=True) is expected
    assert should_retry(RetryPolicy(), done, retryable=False) is False


# -- next_attempt_at -----------------------------------------------------------------------------
@PROPERTY
@given(
    policy=policies(),
    done_fraction=fractions,
    fraction=fractions,
    now=st.integers(min_value=0, max_value=2**48),
)
def test_next_attempt_is_now_plus_backoff(
    policy: RetryPolicy, done_fraction: float, fraction: float, now: int
) -> None:
    # Given attempts left (1 <= done < max_attempts) and no deadline
    if policy.max_attempts == 1:
        policy = policy.model_copy(update={"max_attempts": 2})
    done = 1 + int(done_fraction * (policy.max_attempts - 2))
    # When computing the next attempt's time
    at = next_attempt_at(policy, done, now, uniform_at(fraction))
    # Then it is now plus the backoff for that attempt, never before now
    assert at is not None
    assert at == now + backoff_ms(policy, done, uniform_at(fraction))
    assert now <= at <= now + policy.max_delay_ms


@PROPERTY
@given(policy=policies(), extra=st.integers(min_value=0, max_value=10**6), fraction=fractions)
def test_next_attempt_is_none_when_exhausted(policy: RetryPolicy, extra: int, fraction: float) -> None:
    # Given every attempt used (or more)
    done = policy.max_attempts + extra
    # When computing the next attempt's time, with or without a deadline
    # Then there is none
    assert next_attempt_at(policy, done, NOW, uniform_at(fraction)) is None
    assert next_attempt_at(policy, done, NOW, uniform_at(fraction), deadline_ms=NOW + 10 * DAY_MS) is None


@PROPERTY
@given(
    policy=policies(),
    fraction=fractions,
    slack=st.integers(min_value=-10 * DAY_MS, max_value=10 * DAY_MS),
)
def test_next_attempt_respects_the_deadline(policy: RetryPolicy, fraction: float, slack: int) -> None:
    # Given attempts left and a deadline ``slack`` ms after the time the retry would start
    policy = policy.model_copy(update={"max_attempts": max(policy.max_attempts, 2)})
    at = NOW + backoff_ms(policy, 1, uniform_at(fraction))
    deadline = at + slack
    # When computing the next attempt's time
    result = next_attempt_at(policy, 1, NOW, uniform_at(fraction), deadline_ms=deadline)
    # Then a retry that would start on or after the deadline is refused, an earlier one is kept
    # (an attempt that starts on the deadline cannot finish before it)
    assert result == (at if at < deadline else None)


def test_next_attempt_with_deadline_already_passed() -> None:
    # Given a deadline in the past
    # When computing the next attempt's time
    # Then there is none, even with a zero delay
    policy = RetryPolicy(base_delay_ms=0, max_delay_ms=0)
    assert next_attempt_at(policy, 1, NOW, uniform_at(0.5), deadline_ms=NOW - 1) is None
    assert next_attempt_at(policy, 1, NOW, uniform_at(0.5), deadline_ms=NOW + 1) == NOW


@pytest.mark.parametrize("attempt", [63, 64, 1_000, 10**9, 10**18, 10**100])
def test_huge_attempt_numbers_do_not_overflow(attempt: int) -> None:
    # Given the largest policy values and an absurd attempt number
    policy = RetryPolicy(max_attempts=100, base_delay_ms=DAY_MS, max_delay_ms=DAY_MS, jitter="none")
    tiny = RetryPolicy(max_attempts=100, base_delay_ms=1, max_delay_ms=DAY_MS, jitter="none")
    zero = RetryPolicy(max_attempts=100, base_delay_ms=0, max_delay_ms=0)
    # When computing ceilings, delays and next attempts
    # Then each answers at once with a bounded value
    assert backoff_ceiling_ms(policy, attempt) == DAY_MS
    assert backoff_ceiling_ms(tiny, attempt) == DAY_MS
    assert backoff_ceiling_ms(zero, attempt) == 0
    assert backoff_ms(tiny, attempt) == DAY_MS
    assert backoff_ms(zero, attempt) == 0
    expected = None if attempt >= policy.max_attempts else NOW + DAY_MS
    assert next_attempt_at(policy, attempt, NOW) == expected


# -- validation ----------------------------------------------------------------------------------
def test_defaults() -> None:
    # Given no values
    # When building a policy
    policy = RetryPolicy()
    # Then the documented defaults apply
    assert policy.to_api() == {
        "max_attempts": 3,
        "base_delay_ms": 1000,
        "max_delay_ms": 300_000,
        "jitter": "full",
        "critical": True,
        "min_remaining_ms": 200,
    }


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"base_delay_ms": 5000, "max_delay_ms": 1000}, None),
        ({"base_delay_ms": -1}, "base_delay_ms"),
        ({"max_delay_ms": -1}, "max_delay_ms"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"max_attempts": 101}, "max_attempts"),
        ({"max_delay_ms": DAY_MS + 1}, "max_delay_ms"),
        ({"max_attempts": True}, "max_attempts"),
        ({"base_delay_ms": False}, "base_delay_ms"),
        ({"max_delay_ms": True}, "max_delay_ms"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"base_delay_ms": "1000"}, "base_delay_ms"),
        ({"max_delay_ms": 1000.0}, "max_delay_ms"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": None}, "max_attempts"),
        ({"jitter": "partial"}, "jitter"),
        ({"jitter": None}, "jitter"),
        ({"backoff": "linear"}, "backoff"),
    ],
)
def test_invalid_policies_are_rejected(values: dict[str, Any], field: str | None) -> None:
    # Given a policy with one bad value
    # When validating it
    with pytest.raises(ValidationError) as info:
        RetryPolicy.model_validate(values)
    # Then pydantic refuses it, naming the field (the cap-below-base rule names both in its message)
    errors = info.value.errors()
    if field is None:
        assert "max_delay_ms" in errors[0]["msg"]
        assert "base_delay_ms" in errors[0]["msg"]
    else:
        assert [e["loc"] for e in errors] == [(field,)]


def test_policy_is_frozen() -> None:
    # Given a policy
    policy = RetryPolicy()
    # When trying to change it in place
    # Then it refuses (policies are shared values)
    with pytest.raises(ValidationError):
        policy.max_attempts = 10  # type: ignore[misc]
