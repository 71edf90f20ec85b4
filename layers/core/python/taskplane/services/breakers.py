"""The retry hub's circuit breakers around target calls (see domain/breaker.py for the rules).

A breaker is per tenant and target: one tenant's failing calls never fail another's fast.

Batched like the latency sketches (services/latency.py): within a delivery batch a worker reads each
breaker at most once (a short-lived cache: a record read in this batch, or written by a flush less
than ``CACHE_MS`` ago), keeps the calls' outcomes in memory per breaker and second (``after``), and
writes them with one ``ADD`` per breaker at ``flush`` (the worker's end of batch; a workflow node's
end), where the trip check runs on the record that write returns. So a breaker opens at the end of
the batch that tripped it, and another worker sees it open at its next read. The half-open probe is
not batched: its claim and its outcome are conditional writes made at once. Best effort throughout:
a breaker that cannot be read never blocks a call, and a lost count never fails a task.
"""

from __future__ import annotations

import threading
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
    Tally,
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
#: How long a record a flush wrote (and read back) stands in for a read in the next batches.
CACHE_MS = 1_000


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
    """A change of a breaker's state that a call (or a batch's calls) caused: history and metrics."""

    metric: str  # breaker_opened / breaker_closed
    note: str
    #: the breaker's store key (tenant#target)
    key: str = ""
    lane: str = ""

    @property
    def tenant(self) -> str:
        return self.key.split("#", 1)[0]

    @property
    def target_type(self) -> str:
        return self.key.split("#", 1)[-1].split(":", 1)[0]


def store_key(tenant: str, target_key: str) -> str:
    return f"{tenant}#{target_key}"


@dataclass
class _Pending:
    """A breaker's calls since the last flush."""

    target: str
    breaker: Breaker  # as read (for the stale buckets the write removes)
    tally: Tally = field(default_factory=Tally)
    policies: list[BreakerPolicy] = field(default_factory=list)
    lane: str = ""


@dataclass
class CircuitBreakers:
    store: BreakerRecords
    now_ms: Callable[[], int]
    config: BreakerConfig = field(default_factory=BreakerConfig)
    #: key -> (when read or written, the record, the flush generation it was read in)
    _cache: dict[str, tuple[int, Breaker, int]] = field(default_factory=dict)
    _generation: int = 0
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reading: dict[str, threading.Lock] = field(default_factory=dict)

    def _read(self, key: str) -> Breaker:
        """The record, from the cache when this batch read it or a flush wrote it just now."""
        with self._lock:
            lock = self._reading.setdefault(key, threading.Lock())
        with lock:  # one read per key, however many of the batch's calls ask at once
            now = self.now_ms()
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and (hit[2] == self._generation or now - hit[0] < CACHE_MS):
                    return hit[1]
            b = self.store.get(key)
            self._remember(key, b, now)
            return b

    def _remember(self, key: str, b: Breaker | None, now: int) -> None:
        with self._lock:
            if b is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = (now, b, self._generation)

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
            b = self._read(key)
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
                    self._remember(key, probe, now)
                    return Guard(key, name, probe, rules, probe=True)
            except Exception:
                pass
            self._remember(key, None, now)  # lost the race (or could not tell): read it afresh
        why = f" ({b.reason})" if b.reason else ""
        raise TargetFailure(
            CIRCUIT_OPEN,
            f"circuit breaker for {name} is {b.state.value.replace('_', '-')}{why}; failing fast",
            retryable=True,
        )

    def after(self, guard: Guard | None, call: Call, lane: str = "") -> Change | None:
        """Record the call's outcome: a probe's at once (returns the change of state it caused), any
        other call's in memory until ``flush``."""
        if guard is None:
            return None
        now = self.now_ms()
        if guard.probe:
            try:
                return self._probe_ended(guard, call, now)
            except Exception:
                return None  # best effort: the probe slot frees itself after probe_timeout_ms
        with self._lock:
            pending = self._pending.get(guard.key)
            if pending is None:
                pending = self._pending[guard.key] = _Pending(guard.target, guard.breaker)
            pending.tally.add(second_of(now), call)
            if guard.policy not in pending.policies:
                pending.policies.append(guard.policy)
            pending.lane = lane or pending.lane
        return None

    def flush(self) -> tuple[int, list[Change]]:
        """Write each breaker's counted calls in one write, then check the rules on what it returns;
        returns the writes made and the changes of state. Never raises: a lost count is lost."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._generation += 1  # this batch's reads are not good for the next
            # Forget what no later batch may use (a long-lived process calls many targets over time).
            cutoff = self.now_ms() - CACHE_MS
            for key in [k for k, (at, _, _) in self._cache.items() if at < cutoff]:
                del self._cache[key]
                lock = self._reading.get(key)
                if lock is not None and not lock.locked():
                    del self._reading[key]
        writes = 0
        changes: list[Change] = []
        for key, p in pending.items():
            now = self.now_ms()
            try:
                b = self.store.count(key, p.tally, stale_buckets(p.breaker, now))
                writes += 1
                self._remember(key, b, now)
                if b.state is not BreakerState.CLOSED:
                    continue
                reason = next(filter(None, (trip_reason(b, now, rule) for rule in p.policies)), None)
                if reason is None:
                    continue
                writes += 1
                if self.store.replace(b, opened(b, now, reason)):
                    self._remember(key, opened(b, now, reason), now)
                    note = f"circuit breaker for {p.target} opened: {reason}"
                    from taskplane.observability import logger

                    logger.warning(note, extra={"breaker": key})
                    changes.append(Change("breaker_opened", note, key, p.lane))
                else:
                    self._remember(key, None, now)
            except Exception:
                self._remember(key, None, now)  # counting is best effort: read it afresh next time
                continue
        return writes, changes

    def _probe_ended(self, guard: Guard, call: Call, now: int) -> Change | None:
        b = guard.breaker
        if call is Call.OK:
            if self.store.replace(b, closed(b, now)):
                self._remember(guard.key, closed(b, now), now)
                return Change(
                    "breaker_closed",
                    f"half-open probe answered: circuit breaker for {guard.target} closed",
                    guard.key,
                )
            self._remember(guard.key, None, now)
            return None
        reason = "the half-open probe " + ("timed out" if call is Call.TIMEOUT else "failed")
        if self.store.replace(b, opened(b, now, reason)):
            self._remember(guard.key, opened(b, now, reason), now)
            return Change(
                "breaker_opened", f"circuit breaker for {guard.target} opened again: {reason}", guard.key
            )
        self._remember(guard.key, None, now)
        return None
