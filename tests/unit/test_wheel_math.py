"""Timing-wheel arithmetic: slots, partitions, sort keys and the wheel/lane threshold (shards: test_ring.py)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.adapters.wheel_store import upto_key
from taskplane.domain.ids import _ALPHABET, new_id
from taskplane.domain.wheel import (
    LOOKAHEAD_MS,
    LOOKBACK_MS,
    NEAR_MS,
    POLL_MS,
    SLOT_MS,
    Cursor,
    WheelEntry,
    due_of,
    goes_through_wheel,
    partition,
    slot_of,
    slots_between,
    sort_key,
)

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
NOW = 1_767_225_600_000
# Epoch milliseconds the 13-digit sort key can hold (1970 .. 2286).
due_times = st.integers(min_value=0, max_value=10**13 - 1)
near_now = st.integers(min_value=NOW - 10 * SLOT_MS, max_value=NOW + 10 * SLOT_MS)
widths = st.sampled_from([1, 7, 1_000, SLOT_MS, 3_600_000])
# Task ids (ULIDs) and schedule ids are Crockford base32.
ids = st.text(alphabet=_ALPHABET, min_size=1, max_size=26)
ulids = st.builds(
    lambda ms, bits: new_id(ms, lambda _: bits), st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1)
)


# -- slots and partitions ----------------------------------------------------------------------------
@PROPERTY
@given(due=due_times, width=widths)
def test_slot_contains_its_due_time_and_is_aligned(due, width):
    slot = slot_of(due, width)
    assert slot <= due < slot + width
    assert slot % width == 0
    assert slot_of(slot, width) == slot


@PROPERTY
@given(a=due_times, b=due_times)
def test_slot_of_is_monotonic(a, b):
    lo, hi = sorted((a, b))
    assert slot_of(lo) <= slot_of(hi)


def test_default_slot_width_is_a_minute():
    assert slot_of(NOW + 59_999) == slot_of(NOW) == NOW  # NOW is on a minute boundary
    assert slot_of(NOW + 60_000) == NOW + 60_000
    assert slot_of(NOW - 1) == NOW - 60_000


@PROPERTY
@given(shard=st.integers(0, 255), due=due_times)
def test_partition_names_shard_and_slot(shard, due):
    pk = partition(shard, slot_of(due))
    left, right = pk.split("#")
    assert (int(left), int(right)) == (shard, slot_of(due))


@PROPERTY
@given(a=st.integers(0, 255), b=st.integers(0, 255), s=due_times, t=due_times)
def test_partitions_of_different_shards_or_slots_differ(a, b, s, t):
    same = (a, slot_of(s)) == (b, slot_of(t))
    assert (partition(a, slot_of(s)) == partition(b, slot_of(t))) is same


@PROPERTY
@given(
    first=near_now,
    span=st.integers(min_value=-3 * SLOT_MS, max_value=12 * SLOT_MS),
    width=st.sampled_from([7, 1_000, SLOT_MS, 3_600_000]),
)
def test_slots_between_covers_every_slot_exactly_once(first, span, width):
    first_slot = slot_of(first, width)
    last = first + span
    slots = slots_between(first_slot, last, width)
    if slot_of(last, width) < first_slot:
        assert slots == []
        return
    # in order, contiguous, from the first slot to the one holding ``last``
    assert slots[0] == first_slot and slots[-1] == slot_of(last, width)
    assert all(b - a == width for a, b in pairwise(slots))
    # so every instant in [first, last] falls in exactly one listed slot
    counts = Counter(slots)
    assert set(counts.values()) == {1}
    probes = [*range(first, last + 1, max(1, (last - first) // 50)), last]
    assert all(counts[slot_of(t, width)] == 1 for t in probes)


# -- sort keys ---------------------------------------------------------------------------------------
@PROPERTY
@given(a=st.tuples(due_times, ids), b=st.tuples(due_times, ids))
def test_sort_key_string_order_is_due_then_id_order(a, b):
    ka, kb = sort_key(*a), sort_key(*b)
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (a == b)


@PROPERTY
@given(items=st.lists(st.tuples(due_times, ulids), min_size=2, max_size=30))
def test_a_query_in_sort_key_order_is_due_order(items):
    by_key = sorted(items, key=lambda x: sort_key(*x))
    assert [d for d, _ in by_key] == sorted(d for d, _ in items)


@PROPERTY
@given(due=due_times, item=ids)
def test_due_time_reads_back_from_the_sort_key(due, item):
    sk = sort_key(due, item)
    assert due_of(sk) == due
    assert sk.split("#", 1)[1] == item
    assert len(sk.split("#", 1)[0]) == 13


@PROPERTY
@given(due=st.integers(0, 10**13 - 2), item=ids)
def test_upto_key_bounds_every_id_due_at_that_time(due, item):
    # The tick reads "up to horizon" with upto_key: every id due then is in, nothing later is.
    assert sort_key(due, "") < sort_key(due, item) <= upto_key(due) < sort_key(due + 1, "")


@PROPERTY
@given(slot_a=near_now, slot_b=near_now, a=st.tuples(due_times, ids), b=st.tuples(due_times, ids))
def test_cursor_after_is_lexicographic_on_slot_then_key(slot_a, slot_b, a, b):
    cursor = Cursor(slot_a, sort_key(*a))
    assert cursor.after(slot_b, sort_key(*b)) == ((slot_b, b) > (slot_a, a))


@PROPERTY
@given(shard=st.integers(0, 255), due=due_times, item=ulids)
def test_wheel_entry_keys_agree_with_the_helpers(shard, due, item):
    entry = WheelEntry(shard=shard, due_ms=due, item_id=item, tenant="acme")
    assert entry.slot_ms == slot_of(due)
    assert entry.sk == sort_key(due, item)
    assert entry.key == (slot_of(due), sort_key(due, item))
    assert entry.slot_ms <= entry.due_ms < entry.slot_ms + SLOT_MS


# -- the wheel / lane threshold ----------------------------------------------------------------------
@PROPERTY
@given(now=near_now, ahead=st.integers(min_value=-10 * SLOT_MS, max_value=10 * SLOT_MS))
def test_goes_through_wheel_exactly_when_due_more_than_near_ms_ahead(now, ahead):
    assert goes_through_wheel(now + ahead, now) is (ahead > NEAR_MS)


def test_goes_through_wheel_threshold_edges():
    assert not goes_through_wheel(NOW, NOW)
    assert not goes_through_wheel(NOW - 5_000, NOW)
    assert not goes_through_wheel(NOW + NEAR_MS, NOW)
    assert goes_through_wheel(NOW + NEAR_MS + 1, NOW)


def test_window_constants_leave_no_gap():
    # A wheeled task is due more than NEAR_MS after submission; the tick reads at least every
    # POLL_MS, so the entry is in the heap before it is due.
    assert NEAR_MS >= POLL_MS
    # Each poll reads ahead further than the next poll is away: no range is skipped.
    assert LOOKAHEAD_MS > POLL_MS
    assert LOOKBACK_MS > 0 and SLOT_MS % 1_000 == 0


def test_new_spans_are_the_runs_of_keys_not_taken_at_most_three():
    from taskplane.adapters.wheel_store import MAX_SPANS, new_spans

    keys = [f"k{i:02d}" for i in range(10)]

    def taken_but(*new: int):
        return lambda sk: int(sk[1:]) not in new

    assert new_spans(keys, taken_but()) == []
    assert new_spans(keys, taken_but(9)) == [("k09", "k09")]
    assert new_spans(keys, taken_but(0, 1, 2, 9)) == [("k00", "k02"), ("k09", "k09")]
    assert new_spans(keys, taken_but(*range(10))) == [("k00", "k09")]
    assert MAX_SPANS == 3
    assert new_spans(keys, taken_but(1, 3, 5)) == [("k01", "k01"), ("k03", "k03"), ("k05", "k05")]
    # more runs than MAX_SPANS: one span from the first new key to the last
    assert new_spans(keys, taken_but(1, 3, 5, 8)) == [("k01", "k08")]
    assert new_spans([], taken_but()) == []


def test_the_earliest_a_tick_sends_a_delivery_still_waits_in_the_worker() -> None:
    """At a hand-over the tick sends a second ahead of its span's end, a lead ahead of the due time,
    with the entries of a whole group: the last of them must still be held by the worker that gets it
    (sent round again instead, it would cost another send and receive and start a second later)."""
    from taskplane.domain.wheel import DISPATCH_LEAD_MS, GROUP_MS
    from taskplane.services.execute import MAX_EARLY_WAIT_MS
    from taskplane.services.tick import HANDOVER_SEND_AHEAD_MS

    assert HANDOVER_SEND_AHEAD_MS + DISPATCH_LEAD_MS + GROUP_MS <= MAX_EARLY_WAIT_MS
