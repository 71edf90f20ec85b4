"""Where a wheel entry lives: a consistent hash ring of the wheel's shards, with virtual nodes (pure).

Every shard owns ``round(VNODES * weight)`` points on a 64-bit ring (point ``i`` of shard ``s`` is a
hash of ``"s/i"``); a key (a task or schedule id) belongs to the shard owning the first point at or
after the key's own hash. Adding a shard adds only its points, so only the keys falling just before
them move (to it); removing one removes only its points, so only its keys move; lowering a shard's
weight removes its highest-numbered points, so only some of its keys move. Moving from ``n`` to ``m``
shards re-homes about ``|n - m| / max(n, m)`` of new entries, where a modulo would re-home almost all.

Nothing already written moves: an entry stays in the shard it was written to and that shard's tick
sends it. A ring change only decides where entries written from then on go. A shard taken off the
ring is *draining*: its tick still runs until ``drain_until`` (by then everything it could hold is
due and sent: the longest an entry waits in the wheel, plus how long a writer may keep using the ring
it cached). The ring is versioned; whoever changes it writes the next version conditionally.

Dynamic weights (seed 2.3): a shard whose tick measures lag sending on time gets a lower weight, so
fewer new entries land there, within ``[MIN_WEIGHT, 1]``; it earns its weight back a step a minute
once the lag is gone.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from taskplane.domain.models import MAX_DELAY_MS

#: Points per shard at weight 1. With 256, shards' shares of the keys stay within about +-20% of the
#: mean for up to 64 shards (measured in tests/unit/test_ring.py; 128 gives about +-30%).
VNODES = 256
#: The lowest weight lag can bring a shard to: a lagging shard keeps at least half its share, so a
#: slow tick never pushes the whole load onto the others at once.
MIN_WEIGHT = 0.5
#: Weights move in steps of this much (an eighth): small lag jitter changes nothing.
WEIGHT_STEP = 0.125
#: Lag (how late a shard's tick sent its entries, p99 over its last span) up to which a shard keeps
#: its full weight; at LAG_FLOOR_MS and beyond it has MIN_WEIGHT.
LAG_OK_MS = 250
LAG_FLOOR_MS = 2_000
#: How long a writer may use a ring it read before it reads it again (adapters/ring_store.py).
RING_CACHE_MS = 30_000
#: The longest an entry waits in the wheel: a task's delay or run_at (MAX_DELAY_MS) is the bound of
#: everything the wheel holds (a retry's backoff and a schedule's next fire are far shorter), plus
#: a day for clock skew and slow writers.
WHEEL_HOLDS_MS = MAX_DELAY_MS + 86_400_000
#: How long a shard taken off the ring is still ticked: everything it can hold is due by then.
DRAIN_MS = WHEEL_HOLDS_MS + RING_CACHE_MS


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@functools.cache  # at most 256 shards x VNODES points
def _vnode(shard: int, index: int) -> int:
    return _point(f"{shard}/{index}")


def vnodes_of(weight: float, vnodes: int = VNODES) -> int:
    """How many points a shard of this weight owns (at least one)."""
    return max(1, round(vnodes * weight))


def clamp_weight(weight: float) -> float:
    """A weight within [MIN_WEIGHT, 1], on the WEIGHT_STEP grid."""
    stepped = round(weight / WEIGHT_STEP) * WEIGHT_STEP
    return min(1.0, max(MIN_WEIGHT, stepped))


def weight_for_lag(lag_ms: int) -> float:
    """The weight a shard's measured lag calls for: 1 up to LAG_OK_MS, falling linearly to MIN_WEIGHT
    at LAG_FLOOR_MS, on the step grid (rounded up: a shard loses a step only once it is earned)."""
    if lag_ms <= LAG_OK_MS:
        return 1.0
    if lag_ms >= LAG_FLOOR_MS:
        return MIN_WEIGHT
    share = (lag_ms - LAG_OK_MS) / (LAG_FLOOR_MS - LAG_OK_MS)
    raw = 1.0 - share * (1.0 - MIN_WEIGHT)
    steps = -(-raw // WEIGHT_STEP)  # ceil: the weight drops a step only when the lag calls for it
    return clamp_weight(steps * WEIGHT_STEP)


class Placement(Protocol):
    """What a writer asks: the shard an entry keyed ``key`` goes to now."""

    def shard_for(self, key: str) -> int: ...


@dataclass(frozen=True)
class Ring:
    """One version of the ring: the shards that take new entries (with their weights), and the shards
    taken off it that are still ticked until they have sent everything they hold."""

    version: int
    weights: Mapping[int, float]
    draining: Mapping[int, int] = field(default_factory=dict)  # shard -> drain_until ms
    changed_at: int = 0
    vnodes: int = VNODES

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("a ring needs at least one shard")
        if set(self.weights) & set(self.draining):
            raise ValueError("a shard is either on the ring or draining")

    @staticmethod
    def of(shards: int, *, version: int = 1, changed_at: int = 0) -> Ring:
        """Shards 0..shards-1 at full weight."""
        return Ring(version=version, weights=dict.fromkeys(range(max(1, shards)), 1.0), changed_at=changed_at)

    # -- placement ---------------------------------------------------------------------------------
    @functools.cached_property
    def _points(self) -> tuple[list[int], list[int]]:
        pairs = sorted(
            (_vnode(shard, i), shard)
            for shard, weight in self.weights.items()
            for i in range(vnodes_of(weight, self.vnodes))
        )
        return [p for p, _ in pairs], [s for _, s in pairs]

    def shard_for(self, key: str) -> int:
        points, owners = self._points
        index = bisect.bisect_left(points, _point(key))
        return owners[index % len(owners)]

    def shares(self) -> dict[int, float]:
        """The part of the key space each shard owns (the arcs ending at its points), summing to 1."""
        points, owners = self._points
        owned = dict.fromkeys(self.weights, 0)
        for i, point in enumerate(points):
            previous = points[i - 1] if i else points[-1] - 2**64
            owned[owners[i]] += point - previous
        return {s: n / 2**64 for s, n in owned.items()}

    # -- what ticks ----------------------------------------------------------------------------------
    @property
    def shards(self) -> list[int]:
        """The shards taking new entries."""
        return sorted(self.weights)

    def ticking(self, now_ms: int) -> list[int]:
        """Every shard a tick must still run for: those on the ring and those draining."""
        return sorted({*self.weights, *(s for s, until in self.draining.items() if until > now_ms)})

    def drains_for(self, shard: int, now_ms: int) -> list[int]:
        """The draining shards whose tick ``shard``'s tick wakes (each draining shard is given to one
        shard on the ring, round-robin), so a draining shard needs no rule of its own."""
        active = self.shards
        if shard not in self.weights:
            return []
        mine = active.index(shard)
        draining = sorted(s for s, until in self.draining.items() if until > now_ms)
        return [s for i, s in enumerate(draining) if i % len(active) == mine]

    # -- changes -----------------------------------------------------------------------------------
    def resized(self, shards: int, now_ms: int) -> Ring:
        """The ring with shards 0..shards-1 on it: new ones at full weight, kept ones keep their weight,
        removed ones drain until DRAIN_MS from now (one coming back from draining is simply on again)."""
        target = range(max(1, shards))
        weights = {s: self.weights.get(s, 1.0) for s in target}
        draining = {s: until for s, until in self.draining.items() if s not in weights and until > now_ms}
        for s in self.weights:
            if s not in weights:
                draining[s] = now_ms + DRAIN_MS
        return Ring(self.version + 1, weights, draining, now_ms, self.vnodes)

    def reweighted(self, weights: Mapping[int, float], now_ms: int) -> Ring:
        """The ring with the given shards' weights changed (others unchanged)."""
        merged = {s: clamp_weight(weights.get(s, w)) for s, w in self.weights.items()}
        return Ring(self.version + 1, merged, dict(self.draining), now_ms, self.vnodes)

    def pruned(self, now_ms: int) -> Ring:
        """Without draining shards whose drain has ended (same version: nothing placed changes)."""
        draining = {s: until for s, until in self.draining.items() if until > now_ms}
        return Ring(self.version, dict(self.weights), draining, self.changed_at, self.vnodes)


def next_weights(ring: Ring, lags: Mapping[int, int | None]) -> dict[int, float]:
    """The weights the shards' measured lags call for: down at once to what the lag calls for, back up
    one step per call (the keeper calls once a minute) when it calls for more. A shard with no fresh
    measurement (idle: nothing sent lately) is treated as on time."""
    weights: dict[int, float] = {}
    for shard, current in ring.weights.items():
        lag = lags.get(shard)
        wanted = weight_for_lag(lag or 0)
        weights[shard] = wanted if wanted < current else clamp_weight(min(wanted, current + WEIGHT_STEP))
    return weights


def plan(ring: Ring, shards: int, lags: Mapping[int, int | None], now_ms: int) -> Ring:
    """The ring that should be in place: resized to the configured shard count, weights following lag,
    as one new version; ``ring`` itself (or just pruned, same version) when nothing placed changes."""
    current = ring.pruned(now_ms)
    changed = current
    if sorted(changed.weights) != list(range(max(1, shards))):
        changed = changed.resized(shards, now_ms)
    weights = next_weights(changed, lags)
    if weights != dict(changed.weights):
        changed = changed.reweighted(weights, now_ms)
    if changed is current:
        return current
    return Ring(ring.version + 1, dict(changed.weights), dict(changed.draining), now_ms, ring.vnodes)


def shard_for(key: str, placement: int | Placement) -> int:
    """The shard for ``key`` under ``placement`` (a ring source, or a shard count: ``Ring.of(count)``)."""
    if isinstance(placement, int):
        return _fixed(placement).shard_for(key)
    return placement.shard_for(key)


@functools.lru_cache(maxsize=64)
def _fixed(shards: int) -> Ring:
    return Ring.of(shards)
