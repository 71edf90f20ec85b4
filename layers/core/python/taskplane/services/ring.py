"""Keeping the wheel's ring: resharding online and dynamic weights (domain/ring.py says what the ring is).

The tick of shard 0 calls :meth:`RingKeeper.maintain` on each of its invocations (at least once a
minute, from its rule): it reads the ring, compares it with the configured shard count
(``wheel_shards``, set by the deploy) and with the lag each shard's tick measured, and writes the next
version when placement should change. So a deploy changes the ring by changing ``wheel_shards``: the
deploy adds the rules of new shards (or removes those of removed ones), and within a minute the tick
of shard 0 writes the ring that puts new entries on them; writers pick it up within ``RING_CACHE_MS``.

Every tick of a shard on the ring wakes the draining shards given to it (:meth:`wake_drains`), so a
shard taken off the ring needs no rule: its tick keeps sending what it holds, on time, until its drain
ends. Nothing already in the wheel is moved or rewritten, so nothing can be lost or sent twice by a
change; the only cost is one check a minute per draining shard (what an idle shard costs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.domain.clock import Clock
from taskplane.domain.ring import DRAIN_MS, Ring, plan

#: A shard's lag counts for its weight when its tick reported it this recently (an idle shard sends
#: nothing and reports nothing: it is on time).
LAG_FRESH_MS = 120_000
#: ``view`` (GET /v1/stats, polled by every open dashboard) reads the shards' leases at most this often
#: per process, as the lane depths beside it.
VIEW_CACHE_MS = 5_000


@dataclass
class RingKeeper:
    rings: Any  # adapters.ring_store.RingStore
    wheel: Any  # adapters.wheel_store.WheelStore (the shards' leases carry their lag)
    cache: Any  # adapters.ring_store.CachedRing: the placement this process's writers use
    clock: Clock
    #: the configured shard count (``wheel_shards``)
    shards: int
    #: wakes a shard's tick (None: nothing to wake, e.g. a test driving the ticks itself)
    wake: Callable[[int], None] | None = None
    _viewed: tuple[int, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def maintain(self) -> Ring:
        """Bring the stored ring in line with the configured count and the shards' lag; returns the
        ring in place afterwards. Safe to call from several places at once (conditional writes)."""
        now = self.clock.now_ms()
        stored = self.rings.read(consistent=True)
        if stored is None:
            first = self._first_ring(now)
            if not self.rings.write(first, expected_version=None):
                stored = self.rings.read(consistent=True)
            stored = stored or first
        wanted = plan(stored, self.shards, self.lags(stored, now), now)
        if wanted != stored and not self.rings.write(wanted, expected_version=stored.version):
            wanted = self.rings.read(consistent=True) or stored  # someone else changed it first
        self.cache.forget()
        return wanted

    def _first_ring(self, now: int) -> Ring:
        """The first ring stored: the configured shards, and any shard beyond them that a tick used
        before (a count lowered in the deploy that brought the ring) draining, so none is forgotten."""
        ring = Ring.of(self.shards, changed_at=now)
        draining: dict[int, int] = {}
        shard = max(1, self.shards)
        while self.wheel.peek(shard) is not None:  # shards were always 0..n-1: stop at the first unused
            draining[shard] = now + DRAIN_MS
            shard += 1
        return Ring(ring.version, dict(ring.weights), draining, now)

    def lags(self, ring: Ring, now: int) -> dict[int, int | None]:
        """Each shard's last measured lag, when fresh."""
        found: dict[int, int | None] = {}
        for shard in ring.shards:
            lease = self.wheel.peek(shard)
            fresh = lease is not None and lease.lag_at is not None and now - lease.lag_at <= LAG_FRESH_MS
            found[shard] = lease.lag_ms if fresh else None
        return found

    def ticks(self, shard: int) -> bool:
        """Whether a tick should run for ``shard``: on the ring, draining, or configured (a new shard's
        rule may run before the ring names it)."""
        return shard < self.shards or shard in self.cache.current().ticking(self.clock.now_ms())

    def wake_drains(self, shard: int) -> list[int]:
        """Wake the ticks of the draining shards given to ``shard``; returns them."""
        drains = self.cache.current().drains_for(shard, self.clock.now_ms())
        if self.wake is not None:
            for drained in drains:
                with contextlib.suppress(Exception):  # the next minute wakes it again
                    self.wake(drained)
        return drains

    def view(self) -> dict[str, Any]:
        """The ring for ``GET /v1/stats``: version, each shard's weight, share of new entries and lag
        (read at most every VIEW_CACHE_MS)."""
        now = self.clock.now_ms()
        if self._viewed is not None and now - self._viewed[0] < VIEW_CACHE_MS:
            return self._viewed[1]
        self._viewed = (now, self._view(now))
        return self._viewed[1]

    def _view(self, now: int) -> dict[str, Any]:
        ring = self.cache.current()
        shares = ring.shares()
        lags = self.lags(ring, now)
        return {
            "ring_version": ring.version,
            "changed_at": ring.changed_at or None,
            "shards": [
                {
                    "shard": s,
                    "weight": ring.weights[s],
                    "share": round(shares[s], 4),
                    "lag_ms": lags.get(s),
                }
                for s in ring.shards
            ],
            "draining": [
                {"shard": s, "until": until} for s, until in sorted(ring.draining.items()) if until > now
            ],
        }
