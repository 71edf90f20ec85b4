"""When a RUNNING task counts as abandoned: pure rules for the timeout watch and heartbeats.

A live worker enforces ``timeout_s`` itself. A dead one cannot, so every start arranges a *watch* for
``first_watch``: the worker keeps the task's lane message invisible until then (one SQS request), so
a dead worker's delivery comes back at that time; where that is not possible (no receipt, or SQS
refused) it puts a watch entry in the timing wheel instead. When either comes due, a worker looks at
the task and, if the same attempt is still RUNNING, times it out (TIMED_OUT -> RETRYING / FAILED by
its policy) or watches again later through the wheel.
Long tasks heartbeat, so a worker that died early is noticed after ``STALE_MS`` rather than after the
whole timeout.
"""

from __future__ import annotations

#: How long past its timeout a RUNNING attempt may stay before the watch times it out.
GRACE_MS = 30_000
#: How often a worker running a long attempt records that it is alive.
HEARTBEAT_MS = 60_000
#: A heartbeat older than this means the worker is gone.
STALE_MS = 3 * HEARTBEAT_MS


def final_due(started_at: int, timeout_s: int, grace_ms: int = GRACE_MS) -> int:
    """The instant an attempt started at ``started_at`` is abandoned whatever its heartbeats say."""
    return started_at + timeout_s * 1000 + grace_ms


def needs_heartbeat(timeout_s: int) -> bool:
    """Only attempts that may outlive a heartbeat's staleness heartbeat (short ones just time out)."""
    return timeout_s * 1000 > STALE_MS


def first_watch(started_at: int, timeout_s: int, grace_ms: int = GRACE_MS) -> int:
    """When the first watch of an attempt comes due."""
    end = final_due(started_at, timeout_s, grace_ms)
    return min(end, started_at + STALE_MS) if needs_heartbeat(timeout_s) else end


def next_watch(
    started_at: int, timeout_s: int, heartbeat_at: int | None, now_ms: int, grace_ms: int = GRACE_MS
) -> int | None:
    """None when the attempt is abandoned at ``now_ms``; else when to look again.

    Examples
    --------
    >>> next_watch(0, 10, None, 40_001) is None
    True
    >>> next_watch(0, 600, 170_000, 180_000)
    350000
    """
    end = final_due(started_at, timeout_s, grace_ms)
    if now_ms >= end:
        return None
    if not needs_heartbeat(timeout_s):
        return end
    last = max(started_at, heartbeat_at or 0)
    if now_ms - last >= STALE_MS:
        return None
    return min(end, last + STALE_MS)
