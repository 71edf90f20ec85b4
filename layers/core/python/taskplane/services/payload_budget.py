"""How many bytes of payload one worker instance reads from the bucket and holds at once.

A batch's records run at the same time (functions/worker/handler.py). A payload kept in the bucket
(over 64 KiB) that fits what its target takes in one call (HTTP and Lambda: 5 MiB) is read, parsed
and sent inline: about ``EXPANSION`` times its size in memory until the call ends (the bytes, the
parsed value, the request body; bench/worker_rss.py: 10-16x for a list of small records, the worst case; moto's
copies included). Ten such records at once need several hundred MB, more than a 256 MB worker has.
The budget lets records through while their payloads fit in what the instance's memory leaves after
its baseline, and makes the others wait for a call to end (never longer than ``MAX_WAIT_S``: then
the record goes ahead, as before this budget). Small payloads (inline in the task item) do not count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: Memory (MiB) a worker instance holds before any record: the runtime, the imports, the clients
#: (bench/worker_rss.py: ~70 MiB resident after init), with a margin.
BASELINE_MIB = 96
#: Memory per byte of a payload read from the bucket and sent inline, until its call ends.
EXPANSION = 20
#: A record waits at most this long for room, then goes ahead.
MAX_WAIT_S = 60.0


def budget_bytes(memory_mb: int) -> int:
    """Bytes of payload in flight a worker of ``memory_mb`` can hold (at least one 5 MiB payload).

    >>> budget_bytes(256) // 2**20, budget_bytes(512) // 2**20, budget_bytes(128) // 2**20
    (8, 20, 5)
    """
    return max(5 * 2**20, (memory_mb - BASELINE_MIB) * 2**20 // EXPANSION)


class PayloadBudget:
    """A counting gate over payload bytes in flight (thread-safe)."""

    def __init__(self, limit_bytes: int, *, wait: Callable[[threading.Condition, float], bool] | None = None):
        self.limit = limit_bytes
        self.used = 0
        self._cond = threading.Condition()
        self._wait = wait or (lambda cond, seconds: cond.wait(seconds))

    def take(self, size: int, max_wait_s: float = MAX_WAIT_S) -> int:
        """Wait until ``size`` bytes fit (a payload larger than the whole budget waits for it to be
        empty), at most ``max_wait_s``; returns what was taken, to ``give`` back when the call ends."""
        need = min(size, self.limit)
        if need <= 0:
            return 0
        with self._cond:
            waited = 0.0
            while self.used and self.used + need > self.limit and waited < max_wait_s:
                step = min(1.0, max_wait_s - waited)
                self._wait(self._cond, step)
                waited += step
            self.used += need
        return need

    def give(self, taken: int) -> None:
        if taken <= 0:
            return
        with self._cond:
            self.used -= taken
            self._cond.notify_all()
