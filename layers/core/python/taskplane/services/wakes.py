"""Waking a shard's tick when an entry lands that must leave before the shard's next check.

A tick runs only while something is due soon (services/tick.py). Once a minute the shard's rule
looks ``IDLE_HORIZON_MS`` ahead; whoever writes an entry that must leave sooner than the next check
could see it (the API, the worker's retries and watches, schedules) reads the shard's lease and,
when no tick holds it, invokes the tick at once (asynchronously: the writer does not wait). A tick
that is running sees the entry at its next read; one that is about to stop looks once more after
releasing the shard (see ``Ticker._idle``), so no entry falls between the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taskplane.adapters.wheel_store import Lease, WheelStore
from taskplane.domain.errors import TaskplaneError
from taskplane.domain.wheel import IDLE_HORIZON_MS, WheelEntry

#: An entry that must leave within this long may come before the shard's next check (the rule runs
#: at least once a minute, a few seconds late at worst, and then looks IDLE_HORIZON_MS ahead).
WAKE_WITHIN_MS = IDLE_HORIZON_MS - 5_000


@dataclass
class Wakes:
    """Reads leases and wakes idle ticks for freshly written wheel entries."""

    wheel: WheelStore
    #: invokes the tick of a shard; None when nothing can be woken (the rule is then the only waker)
    wake: Callable[[int], None] | None = None
    within_ms: int = WAKE_WITHIN_MS

    def wake_now(self, shard: int) -> None:
        """Wake the shard's tick (a tick's hand-over to its successor); nothing when none can be woken."""
        if self.wake is not None:
            self.wake(shard)

    def leases(self, shards: Iterable[int]) -> dict[int, Lease | None]:
        """The lease of each shard (None when unknown or never taken): one consistent read each."""
        found: dict[int, Lease | None] = {}
        for shard in shards:
            try:
                found[shard] = self.wheel.peek(shard)
            except TaskplaneError:
                found[shard] = None  # unknown: wake to be safe, the tick checks for itself
        return found

    def near(self, entries: Iterable[WheelEntry], now_ms: int) -> set[int]:
        """Shards with an entry that must leave before their next check could see it."""
        return {e.shard for e in entries if e.sends_at() - now_ms <= self.within_ms}

    def after_write(
        self, entries: Iterable[WheelEntry], now_ms: int, leases: dict[int, Lease | None] | None = None
    ) -> None:
        """Wake the tick of every shard that has a near entry among ``entries`` and no live holder
        (``leases`` already read for them are reused). Best effort: a failed wake leaves the entry
        to the shard's next check, which sends it late rather than never."""
        if self.wake is None:
            return
        shards = self.near(entries, now_ms)
        known = dict(leases or {})
        known.update(self.leases(s for s in shards if s not in known))
        for shard in sorted(shards):
            lease = known.get(shard)
            if lease is None or not lease.alive(now_ms):
                with contextlib.suppress(Exception):
                    self.wake(shard)
