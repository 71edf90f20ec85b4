"""Adaptive timeouts: per-target duration sketches, kept from finished attempts, read for ``"auto"``.

A process measures in memory and writes each target's durations at most once per ``FLUSH_EVERY_MS``
(``flush``, called at the end of every delivery batch and after each workflow node: it writes the
targets whose last write is that old, and a target this process has not written yet at once). A
sample is written at most ``FLUSH_EVERY_MS`` after the batch that measured it ended, into the minute
it was measured in; an instance that Lambda freezes keeps its samples until its next invocation, and
one that is never invoked again loses what it measured since its last write: at most
``FLUSH_EVERY_MS`` of its calls per target (a lost sample never fails a task: ``"auto"`` reads fewer
durations, and below ``min_samples`` gives the ceiling). Samples of minutes no window reaches any more
are dropped, not written. Reading an attempt's timeout costs the reads of the window's minutes, cached
per process for ``CACHE_MS`` (a warm worker reads a busy target's window about once per ``CACHE_MS``,
not once per attempt).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.domain.adaptive import (
    MAX_WINDOW_S,
    SLICE_MS,
    AutoTimeout,
    HardTimeout,
    Sketch,
    hard_timeout,
    merged,
    slices,
)
from taskplane.domain.breaker import breaker_key
from taskplane.services.ports import LatencyRecords

#: How long a process reuses a target's window it read.
CACHE_MS = 5_000
#: How often a process writes a target's durations (a target it has not written yet: at once).
FLUSH_EVERY_MS = 30_000
#: Sketch items live past the longest window (15 minutes) plus a margin.
KEEP_S = 3_600
#: Past this many targets, a process forgets what it holds about those it has not used lately (the
#: cached windows older than CACHE_MS, the last writes older than FLUSH_EVERY_MS: forgetting them
#: changes nothing) and which targets it listed in the tenant's index (listed again at their next
#: write: one idempotent write). A tenant whose allow-list has a wildcard can name any number of
#: hosts, and a warm worker lives for hours: without this, its memory would grow with every host.
MAX_TRACKED = 4_096
#: At most this many targets in ``GET /v1/stats``.
MAX_STATS_TARGETS = 50


def latency_key(target: dict[str, Any]) -> str:
    """What one sketch measures: the breaker's target key, and builtins by name."""
    return breaker_key(target) or f"builtin:{target.get('name', '')}"


@dataclass
class Latencies:
    store: LatencyRecords
    now_ms: Callable[[], int]
    #: a target's durations are written at most this often by this process (0: at every flush)
    flush_every_ms: int = FLUSH_EVERY_MS
    _pending: dict[tuple[str, str, int], Sketch] = field(default_factory=dict)
    _known: set[tuple[str, str]] = field(default_factory=set)
    #: (tenant, target) -> when this process last wrote its durations
    _written: dict[tuple[str, str], int] = field(default_factory=dict)
    _cache: dict[tuple[str, str, int], tuple[int, Sketch]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, tenant: str, target: dict[str, Any], ms: float) -> None:
        """Keep a finished call's duration until its target's next write."""
        now = self.now_ms()
        key = (tenant, latency_key(target), now - now % SLICE_MS)
        with self._lock:
            self._pending.setdefault(key, Sketch()).add(ms)

    def flush(self, *, force: bool = False) -> int:
        """Write what was measured for the targets due a write (all of them with ``force``): one ADD
        per tenant, target, minute and part of the sketch (``adapters/latency.py``). Returns the
        writes made."""
        now = self.now_ms()
        oldest = now - now % SLICE_MS - MAX_WINDOW_S * 1000  # the first minute a window still reads
        with self._lock:
            due: dict[tuple[str, str, int], Sketch] = {}
            for key in list(self._pending):
                tenant, target, slice_ms = key
                last = self._written.get((tenant, target))
                if slice_ms < oldest:
                    del self._pending[key]  # no window reads that minute any more
                elif force or last is None or now - last >= self.flush_every_ms:
                    due[key] = self._pending.pop(key)
            for tenant, target, _ in due:
                self._written[(tenant, target)] = now
            if len(self._written) > MAX_TRACKED:
                self._written = {k: at for k, at in self._written.items() if now - at < self.flush_every_ms}
            if len(self._known) > MAX_TRACKED:
                self._known = set()
        writes = 0
        for (tenant, target, slice_ms), sketch in due.items():
            try:
                if (tenant, target) not in self._known:
                    self.store.remember(tenant, target)
                    self._known.add((tenant, target))
                    writes += 1
                writes += self.store.add(tenant, target, slice_ms, sketch.counts, slice_ms // 1000 + KEEP_S)
            except Exception:
                continue  # durations are advisory: a lost minute never fails work
        return writes

    def window(self, tenant: str, target: str, window_s: int) -> Sketch:
        now = self.now_ms()
        cached = self._cache.get((tenant, target, window_s))
        if cached is not None and now - cached[0] < CACHE_MS:
            return cached[1]
        parts = self.store.read_many(tenant, {target: slices(now, window_s)}).get(target, [])
        sketch = merged(parts)
        with self._lock:
            self._cache[(tenant, target, window_s)] = (now, sketch)
            if len(self._cache) > MAX_TRACKED:
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < CACHE_MS}
        return sketch

    def timeout_for(self, tenant: str, target: dict[str, Any], policy: AutoTimeout) -> HardTimeout:
        """The hard timeout of an attempt now; the ceiling when the window cannot be read."""
        try:
            sketch = self.window(tenant, latency_key(target), policy.window_s)
        except Exception:
            sketch = Sketch()
        return hard_timeout(policy, sketch)

    def stats(self, tenant: str, window_s: int = 300) -> list[dict[str, Any]]:
        """This tenant's measured targets: count and percentiles over the window, and the auto
        timeout the default policy would give now."""
        names = self.store.targets(tenant)[:MAX_STATS_TARGETS]
        now = self.now_ms()
        found = self.store.read_many(tenant, {t: slices(now, window_s) for t in names})
        out = []
        default = AutoTimeout()
        for name in names:
            sketch = merged(found.get(name, []))
            q = {p: sketch.quantile(p / 100) for p in (50, 90, 99)}
            out.append(
                {
                    "target": name,
                    "samples": sketch.n,
                    "window_s": window_s,
                    **{f"p{p}_ms": round(v, 1) if v is not None else None for p, v in q.items()},
                    "auto_timeout_s": hard_timeout(default, sketch).seconds,
                }
            )
        return out
