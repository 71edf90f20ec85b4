"""The dashboard header's figures: this tenant's recent tasks by state and throughput, lane depths."""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskplane.domain.clock import Clock, to_rfc3339
from taskplane.domain.states import TaskState

#: How many of the tenant's newest tasks the counts look at (one bounded read, never a table scan).
SAMPLE = 500
#: Throughput is the tasks that finished within this window, per minute.
WINDOW_MS = 60_000


def summarize(tasks: list[Any], now_ms: int, window_ms: int = WINDOW_MS) -> dict[str, Any]:
    """Counts by state and finishes per minute over ``window_ms``, from a list of tasks.

    Example
    -------
    >>> summarize([], 0)["throughput_per_min"]
    0.0
    """
    by_state = Counter(t.state.value for t in tasks)
    finished = [t for t in tasks if t.finished_at is not None and now_ms - t.finished_at <= window_ms]
    return {
        "counts": {s.value: by_state.get(s.value, 0) for s in TaskState},
        "sampled": len(tasks),
        "finished_last_window": len(finished),
        "throughput_per_min": round(len(finished) * 60_000 / window_ms, 1),
        "window_s": window_ms // 1000,
    }


class StatsService:
    def __init__(
        self, *, tasks: Any, depths: Any, clock: Clock, latencies: Any = None, breakers: Any = None
    ) -> None:
        self.tasks = tasks  # services.tasks.TaskService
        self.depths = depths  # adapters.admission.LaneDepthGauge
        self.clock = clock
        self.latencies = latencies  # services.latency.Latencies
        self.breakers = breakers  # services.breakers.CircuitBreakers

    def targets(self, tenant: str) -> list[dict[str, Any]]:
        """This tenant's measured targets: durations over 5 minutes, the default auto timeout, and the
        circuit breaker's state (only the tenant's own: sketches and breakers are keyed by tenant)."""
        if self.latencies is None:
            return []
        rows = self.latencies.stats(tenant)
        if self.breakers is None:
            return rows
        from taskplane.domain.breaker import window
        from taskplane.services.breakers import store_key

        now = self.clock.now_ms()
        policy = self.breakers.config.default
        for row in rows:
            if row["target"].startswith("builtin:"):
                continue
            b = self.breakers.store.get(store_key(tenant, row["target"]))
            calls, errors = window(b, now, policy)
            row["breaker"] = {
                "state": b.state.value,
                "reason": b.reason or None,
                "window_calls": calls,
                "window_errors": errors,
                "timeouts_in_a_row": b.timeouts,
            }
        return rows

    def for_tenant(self, tenant: str) -> dict[str, Any]:
        """This tenant's figures; lane depths are platform-wide totals with no tenant's name in them."""
        recent, _ = self.tasks.list(tenant, limit=SAMPLE)
        now = self.clock.now_ms()
        lanes, read_at = self.depths.read()
        return {
            **summarize(recent, now),
            "lanes": lanes,
            "lanes_read_at": to_rfc3339(read_at),
            "targets": self.targets(tenant),
            "at": to_rfc3339(now),
        }
