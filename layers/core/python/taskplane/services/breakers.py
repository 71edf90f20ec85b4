"""The retry hub's circuit breakers around target calls (see domain/breaker.py for the rules).

A breaker is per tenant and target: one tenant's failing calls never fail another's fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.targets import TargetFailure
from taskplane.domain.breaker import (
    Breaker,
    BreakerConfig,
    BreakerState,
    Call,
    Decision,
    breaker_key,
    closed,
    decide,
    opened,
    probing,
    second_of,
    stale_buckets,
    trip_reason,
)
from taskplane.domain.retry import BreakerPolicy
from taskplane.services.ports import BreakerRecords

CIRCUIT_OPEN = "CircuitOpen"


@dataclass(frozen=True)
class Guard:
    """A call let through: the breaker it runs under, and whether it is the half-open probe."""

    key: str
    target: str
    breaker: Breaker
    policy: BreakerPolicy
    probe: bool = False


@dataclass(frozen=True)
class Change:
    """A change of a breaker's state that a call caused (for the history and the metrics)."""

    metric: str  # breaker_opened / breaker_closed
    note: str


def store_key(tenant: str, target_key: str) -> str:
    return f"{tenant}#{target_key}"


@dataclass
class CircuitBreakers:
    store: BreakerRecords
    now_ms: Callable[[], int]
    config: BreakerConfig = field(default_factory=BreakerConfig)

    def before(
        self, tenant: str, target: dict[str, Any], policy: BreakerPolicy | None = None
    ) -> Guard | None:
        """Let a call through (returns its guard) or raise a retryable CircuitOpen."""
        name = breaker_key(target)
        if name is None:
            return None
        key = store_key(tenant, name)
        rules = policy or self.config.default
        try:
            b = self.store.get(key)
        except Exception:
            return None  # a breaker we cannot read never blocks work
        now = self.now_ms()
        verdict = decide(b, now, rules, self.config)
        if verdict is Decision.ALLOW:
            return Guard(key, name, b, rules)
        if verdict is Decision.PROBE:
            probe = probing(b, now)
            try:
                # The conditional write on the version: of all callers, one gets the probe.
                if self.store.replace(b, probe):
                    return Guard(key, name, probe, rules, probe=True)
            except Exception:
                pass
        why = f" ({b.reason})" if b.reason else ""
        raise TargetFailure(
            CIRCUIT_OPEN,
            f"circuit breaker for {name} is {b.state.value.replace('_', '-')}{why}; failing fast",
            retryable=True,
        )

    def after(self, guard: Guard | None, call: Call) -> Change | None:
        """Record the call's outcome; returns the change of state it caused, if any."""
        if guard is None:
            return None
        now = self.now_ms()
        try:
            if guard.probe:
                return self._probe_ended(guard, call, now)
            b = self.store.count(guard.key, second_of(now), call, stale_buckets(guard.breaker, now))
            if b.state is not BreakerState.CLOSED:
                return None
            reason = trip_reason(b, now, guard.policy)
            if reason is None:
                return None
            if self.store.replace(b, opened(b, now, reason)):
                return Change("breaker_opened", f"circuit breaker for {guard.target} opened: {reason}")
        except Exception:
            return None  # counting is best effort: a lost count never fails the task
        return None

    def _probe_ended(self, guard: Guard, call: Call, now: int) -> Change | None:
        b = guard.breaker
        if call is Call.OK:
            if self.store.replace(b, closed(b, now)):
                return Change(
                    "breaker_closed", f"half-open probe answered: circuit breaker for {guard.target} closed"
                )
            return None
        reason = "the half-open probe " + ("timed out" if call is Call.TIMEOUT else "failed")
        if self.store.replace(b, opened(b, now, reason)):
            return Change("breaker_opened", f"circuit breaker for {guard.target} opened again: {reason}")
        return None
