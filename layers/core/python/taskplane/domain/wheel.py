"""Timing-wheel arithmetic (pure).

The coarse wheel is a DynamoDB table: partition ``"<shard>#<slot start ms>"``, sort key
``"<due ms, 13 digits>#<task id>"``, so one Query returns a slot already in due order. The fine wheel
is an in-memory heap inside one tick invocation. Everything here is arithmetic on those keys.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Width of a coarse slot. One minute matches the tick's EventBridge rate, so a tick reads one or two
#: partitions per minute per shard (cost notes in the README).
SLOT_MS = 60_000
#: The tick sends a task's entry this long before it is due, and the worker that receives it waits
#: out the rest, so the task starts at its millisecond: an event source mapping takes a while to hand
#: a message that became visible to a worker (modelled in bench/wheel_lateness.py: p50 20 ms, p99
#: 300 ms, at most 400 ms), and a message sent at the due time would start that late. The lead costs
#: worker time (the wait is billed): it is the price of a precise start.
DISPATCH_LEAD_MS = 350
#: When the tick sends a lane batch, entries due up to this much after the first one go in the same
#: batch (up to ten): one worker invocation, one receive, delete and hold for all of them, at the price
#: of the earlier ones waiting a little longer in the worker. At 1,000 due/s a batch fills within
#: milliseconds whatever this is; at a million a day (~12 a second) a second gathers ~9.4 records a
#: batch instead of 500 ms's ~6.8, for the same billed wait per task (bench/wheel_lateness.py: 117 ms
#: against 114): each batch's send, receive, delete, hold, invocation and breaker write are shared by
#: more tasks. A later entry of a batch arrives up to this much plus the lead early, within
#: MAX_EARLY_WAIT_MS (services/execute.py).
GROUP_MS = 1_000
#: Each tick poll reads the wheel up to LOOKAHEAD_MS ahead, from now or (every LOOKBACK_EVERY_MS) from
#: LOOKBACK_MS behind now. Reading behind catches entries written late into a range already read
#: (clock skew between the API and the tick, a slow write); reading ahead loads entries before they
#: must leave (the lead, a batch's group).
#: How often a tick reads the wheel. The reads only find entries written since the last one: an entry
#: leaves at its send time from the tick's heap, whenever the last read was. So a read is needed only
#: often enough that an entry written ``NEAR_MS`` ahead of its due time is in the heap before it must
#: leave, even when the first read after its write misses it (an eventually consistent Query). Every
#: read re-reads its whole range (LOOKBACK_MS + LOOKAHEAD_MS), so each entry is read about range /
#: POLL_MS times: at 100 ms (2 s back every 500 ms, else from now to 1.55 s ahead) ~24 times, most of a
#: busy tick's CPU (bench/cost.py's fit: 1.4-2 ms a read); at 500 ms (2 s back every second) ~7 times,
#: for tasks, retries and window ends due within NEAR_MS (1.35 s) of their write going straight to
#: their lane.
POLL_MS = 500
LOOKBACK_MS = 2_000
#: Two reads ahead of an entry's send time (its due time less the lead, less a batch's group for the
#: entries that join an earlier one's batch): one read may miss a write that has just landed. (In the
#: last second of its span a tick reads HANDOVER_SEND_AHEAD_MS further: services/tick.py.)
LOOKAHEAD_MS = 2 * POLL_MS + DISPATCH_LEAD_MS + GROUP_MS
#: How often a read goes LOOKBACK_MS behind now; the reads between start at now. A writer puts an entry
#: in the wheel only when it is due more than NEAR_MS ahead, so a read from now finds it before it must
#: leave; only an entry already overdue by the tick's clock (a writer's clock behind, a write that
#: landed late) needs the look-back, and is found at most this long later (every other read).
LOOKBACK_EVERY_MS = 1_000
#: A task due within this much of its submission skips the wheel: it goes straight to its lane and the
#: worker waits out the rest (the tick could not send it ahead of its lead in time anyway). A retry due
#: within it goes to its lane too (or waits in its worker, within INLINE_RETRY_MS).
NEAR_MS = DISPATCH_LEAD_MS + 2 * POLL_MS
#: A tick with nothing to send within this long hands its shard back and ends: the shard's rule runs a
#: check every minute that looks this far ahead, and writers of entries due sooner than that wake a
#: tick when none is running (services/wakes.py). Idle, a shard costs one short check a minute.
IDLE_HORIZON_MS = 75_000


def slot_of(due_ms: int, width_ms: int = SLOT_MS) -> int:
    """Start (ms) of the slot holding ``due_ms``."""
    return due_ms - due_ms % width_ms


def partition(shard: int, slot_ms: int) -> str:
    return f"{shard}#{slot_ms}"


def sort_key(due_ms: int, item_id: str) -> str:
    """Sorts by due time, then id; zero-padded so string order is time order (until year 2286)."""
    return f"{due_ms:013d}#{item_id}"


def due_of(sk: str) -> int:
    return int(sk.split("#", 1)[0])


def slots_between(first_slot_ms: int, last_ms: int, width_ms: int = SLOT_MS) -> list[int]:
    """Every slot start from ``first_slot_ms`` up to the slot holding ``last_ms``."""
    last = slot_of(last_ms, width_ms)
    return list(range(first_slot_ms, last + width_ms, width_ms)) if last >= first_slot_ms else []


@dataclass(frozen=True, order=True)
class Cursor:
    """Everything at or before (slot, sk) in a shard has been dispatched."""

    slot_ms: int
    sk: str = ""

    def after(self, slot_ms: int, sk: str) -> bool:
        """True when (slot_ms, sk) lies after this cursor."""
        return (slot_ms, sk) > (self.slot_ms, self.sk)


def goes_through_wheel(due_ms: int, now_ms: int) -> bool:
    """Whether a task due at ``due_ms`` waits in the wheel (else it is queued at once)."""
    return due_ms - now_ms > NEAR_MS


#: Kinds of entries whose delivery the worker holds until its due time: they leave the wheel a lead
#: ahead (and may leave earlier still: services/tick.py); a timeout watch leaves when due. A schedule's
#: fire leads too: it creates its task SCHEDULED at the fire time and sends it ahead like a task
#: (services/schedules.py).
HELD_KINDS = frozenset({"task", "retry", "window", "schedule"})


def lead_of(kind: str, lead_ms: int = DISPATCH_LEAD_MS) -> int:
    """How long before its due time an entry of this kind leaves the wheel: task starts, retries,
    schedule fires and window ends lead (the worker waits out the rest, then starts the task or closes
    the window); a timeout watch leaves when due (it looks at a running attempt)."""
    return lead_ms if kind in HELD_KINDS else 0


@dataclass(frozen=True)
class WheelEntry:
    """One thing due at ``due_ms`` in ``shard``: a task delivery, or a schedule's next fire."""

    shard: int
    due_ms: int
    item_id: str
    tenant: str
    #: "task" | "retry" | "schedule" | "watch" (a RUNNING attempt's timeout) | "window" (a windowed
    #: trigger's window closes: ``item_id`` is ``<trigger id>.<window id>``)
    kind: str = "task"
    lane: str = "default"
    attempt: int = 1
    #: The key of the wheel item this entry was stored in, when it shares an item with others (the
    #: item is read, skipped and resumed from as a whole); None when the entry has its own item.
    item: tuple[int, str] | None = None

    @property
    def slot_ms(self) -> int:
        return slot_of(self.due_ms)

    @property
    def sk(self) -> str:
        return sort_key(self.due_ms, self.item_id)

    @property
    def key(self) -> tuple[int, str]:
        """Where the entry is stored: its own (slot, sort key), or its shared item's."""
        return self.item if self.item is not None else (self.slot_ms, self.sk)

    def sends_at(self, lead_ms: int = DISPATCH_LEAD_MS) -> int:
        """When the tick sends it (its due time less its kind's lead)."""
        return self.due_ms - lead_of(self.kind, lead_ms)


def group_key(entry: WheelEntry) -> tuple[int, int, str, str, str, int]:
    """Entries with the same group key may share one wheel item (one write for all): the same shard,
    slot and due second, and the same tenant, kind, lane and attempt (stored once for the item)."""
    return (
        entry.shard,
        entry.due_ms // 1000,
        entry.tenant,
        entry.kind,
        entry.lane,
        entry.attempt,
    )
