"""The retry hub's circuit breakers around target calls (see domain/breaker.py for the rules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.targets import TargetFailure
from taskplane.domain.breaker import (
    Breaker,
    BreakerConfig,
    BreakerState,
    Decision,
    after_failure,
    after_success,
    breaker_key,
    decide,
)
from taskplane.services.ports import BreakerRecords


@dataclass
class CircuitBreakers:
    store: BreakerRecords
    now_ms: Callable[[], int]
    config: BreakerConfig = field(default_factory=BreakerConfig)

    def before(self, target: dict[str, Any]) -> Breaker | None:
        """Let a call through (returns the breaker it runs under) or raise a retryable CircuitOpen."""
        key = breaker_key(target)
        if key is None:
            return None
        try:
            b = self.store.get(key)
        except Exception:
            return None  # a breaker we cannot read never blocks work
        verdict = decide(b, self.now_ms(), self.config)
        if verdict is Decision.ALLOW:
            return b
        if verdict is Decision.PROBE:
            probe = Breaker(
                key, BreakerState.HALF_OPEN, b.failures, b.opened_at, self.now_ms(), b.version + 1
            )
            try:
                if self.store.replace(b, probe):
                    return probe
            except Exception:
                pass
        raise TargetFailure(
            "CircuitOpen",
            f"circuit breaker for {key} is open after {b.failures} failures in a row; failing fast",
            retryable=True,
        )

    def after(self, b: Breaker | None, failure: TargetFailure | None) -> None:
        """Record the call's outcome; only retryable failures count against the target."""
        if b is None or (
            failure is not None and (not failure.retryable or failure.error_type == "CircuitOpen")
        ):
            return
        for _ in range(3):
            new = after_success(b) if failure is None else after_failure(b, self.now_ms(), self.config)
            if new is None:
                return
            try:
                if self.store.replace(b, new):
                    return
                b = self.store.get(b.key)  # another worker moved it: apply ours on top
            except Exception:
                return
