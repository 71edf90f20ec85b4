"""Timing-wheel arithmetic (pure).

The coarse wheel is a DynamoDB table: partition ``"<shard>#<slot start ms>"``, sort key
``"<due ms, 13 digits>#<task id>"``, so one Query returns a slot already in due order. The fine wheel
is an in-memory heap inside one tick invocation. Everything here is arithmetic on those keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Width of a coarse slot. One minute matches the tick's EventBridge rate, so a tick reads one or two
#: partitions per minute per shard (cost notes in the README).
SLOT_MS = 60_000
#: A task due within this much of its submission skips the wheel: it goes straight to its lane and the
#: worker holds it the last few milliseconds (about one tick poll interval, so the hold stays short).
NEAR_MS = 100
#: Each tick poll reads the wheel from LOOKBACK_MS behind now to LOOKAHEAD_MS ahead. Reading behind
#: catches entries written late into a range already read (clock skew between the API and the tick,
#: a slow write); reading ahead loads entries before they are due, so they leave on time.
LOOKBACK_MS = 2_000
LOOKAHEAD_MS = 1_000
#: How often a tick reads the wheel.
POLL_MS = 100


def slot_of(due_ms: int, width_ms: int = SLOT_MS) -> int:
    """Start (ms) of the slot holding ``due_ms``."""
    return due_ms - due_ms % width_ms


def shard_of(key: str, shards: int) -> int:
    """A stable shard for ``key`` (a task or schedule id); spreads load evenly over ``shards``."""
    if shards <= 1:
        return 0
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


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


@dataclass(frozen=True)
class WheelEntry:
    """One thing due at ``due_ms`` in ``shard``: a task delivery, or a schedule's next fire."""

    shard: int
    due_ms: int
    item_id: str
    tenant: str
    kind: str = "task"  # "task" | "retry" | "schedule" | "watch" (a RUNNING attempt's timeout)
    lane: str = "default"
    attempt: int = 1

    @property
    def slot_ms(self) -> int:
        return slot_of(self.due_ms)

    @property
    def sk(self) -> str:
        return sort_key(self.due_ms, self.item_id)

    @property
    def key(self) -> tuple[int, str]:
        return (self.slot_ms, self.sk)
