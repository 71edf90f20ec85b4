"""The timing wheel's store: one behaviour on moto (DynamoDB) and on SQLite. Entries come back in due
order by range, each once, whether or not they share a stored item (DynamoDB shares one among entries
written together); a shard's lease is taken, extended and handed over by conditional writes, a lost
lease is an ordinary answer; a holder says when it means to stop; an idle shard's resume point moves
up only while no tick holds it; ``any_due`` answers whether anything lies in a range."""

from __future__ import annotations

import threading
import uuid

import pytest

from taskplane.adapters.wheel_store import upto_key
from taskplane.domain.wheel import WheelEntry, slot_of, sort_key

pytestmark = pytest.mark.contract

T0 = 1_780_000_020_000  # 20 s into a slot


def shard_of_test() -> int:
    # A shard of this test's own (the moto tables are shared by the module's tests).
    return uuid.uuid4().int % 10**6 + 10


def test_entries_read_back_in_due_order_by_range(backend):
    shard = shard_of_test()
    slot = slot_of(T0)
    # (each written alone: entries written together in one second may share a stored item, below)
    entries = [
        WheelEntry(shard, T0 + d, f"id{d:03d}", backend.tenant, lane="high") for d in (500, 0, 999, 250)
    ]
    for entry in entries:
        backend.wheel.put(entry)
    backend.wheel.put(WheelEntry(shard, T0 + 60_000, "next-slot", backend.tenant))
    backend.wheel.put(entries[0])  # again: one entry still
    everything = backend.wheel.load(shard, slot, "", None)
    assert [e.due_ms - T0 for e in everything] == [0, 250, 500, 999]
    assert everything[0] == entries[1]
    window = backend.wheel.load(shard, slot, sort_key(T0 + 250, ""), upto_key(T0 + 500))
    assert [e.item_id for e in window] == ["id250", "id500"]
    assert [e.item_id for e in backend.wheel.load(shard, slot, sort_key(T0 + 251, ""), None)] == [
        "id500",
        "id999",
    ]
    backend.wheel.delete(entries[0])
    backend.wheel.delete(entries[0])  # absent: fine
    assert [e.item_id for e in backend.wheel.load(shard, slot, "", None)] == ["id000", "id250", "id999"]
    assert backend.wheel.load(shard + 1, slot, "", None) == []


def test_a_shards_lease_is_held_by_one_tick_at_a_time(backend):
    shard = shard_of_test()
    assert backend.wheel.peek(shard) is None
    a = backend.wheel.acquire(shard, "tick-a", T0, 5_000)
    assert (a.owner, a.until_ms, a.resume_slot, a.resume_sk) == ("tick-a", T0 + 5_000, None, "")
    assert backend.wheel.acquire(shard, "tick-b", T0 + 1_000, 5_000) is None  # held
    assert backend.wheel.acquire(shard, "tick-a", T0 + 1_000, 5_000).until_ms == T0 + 6_000  # renewed
    assert backend.wheel.save(shard, "tick-a", T0 + 2_000, 5_000, (slot_of(T0), sort_key(T0, "x")))
    assert not backend.wheel.save(shard, "tick-b", T0 + 2_000, 5_000, (0, ""))  # not its lease
    # Expired: another tick takes it, with the resume point the first one saved
    b = backend.wheel.acquire(shard, "tick-b", T0 + 7_001, 5_000)
    assert (b.owner, b.resume_slot, b.resume_sk) == ("tick-b", slot_of(T0), sort_key(T0, "x"))
    assert not backend.wheel.save(shard, "tick-a", T0 + 7_002, 5_000, (0, ""))  # a zombie cannot save
    backend.wheel.release(shard, "tick-a")  # not its lease: nothing
    assert backend.wheel.peek(shard).until_ms == T0 + 12_001
    backend.wheel.release(shard, "tick-b")
    assert backend.wheel.acquire(shard, "tick-c", T0 + 7_003, 5_000).owner == "tick-c"  # at once


def test_racing_ticks_one_takes_the_lease(backend):
    shard = shard_of_test()
    owners: list[str] = []
    start = threading.Barrier(6)

    def take(i: int) -> None:
        start.wait()
        lease = backend.wheel.acquire(shard, f"tick-{i}", T0, 5_000)
        if lease is not None:
            owners.append(lease.owner)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(owners) == 1 and backend.wheel.peek(shard).owner == owners[0]


def test_entries_written_together_come_back_each_once_in_due_order(backend):
    # Given 25 entries written in one call, due over two seconds, on two lanes
    shard = shard_of_test()
    entries = [
        WheelEntry(shard, T0 + 40 * i, f"id{i:03d}", backend.tenant, lane="high" if i % 5 == 0 else "default")
        for i in range(25)
    ]
    assert backend.wheel.put_many(entries[::-1]) == [None] * 25
    # Then one read returns each once, in due order, as it was written
    got = backend.wheel.load(shard, slot_of(T0), "", None)
    assert [(e.item_id, e.due_ms, e.lane) for e in got] == [(e.item_id, e.due_ms, e.lane) for e in entries]
    # And an entry that shares an item names it: the item's first entry, so a reader that resumes
    # from an item reads all of its entries again
    for e in got:
        if e.item is not None:
            assert e.item <= (e.slot_ms, e.sk) and e.item[0] == slot_of(T0)
    # And a reader resuming from an entry's key (a tick's saved position) finds that entry again
    for e in got[::6]:
        again = backend.wheel.load(shard, e.key[0], e.key[1], None)
        assert e.item_id in {x.item_id for x in again}


def test_any_due_answers_for_a_range(backend):
    shard = shard_of_test()
    assert not backend.wheel.any_due(shard, (slot_of(T0 - 120_000), ""), T0 + 75_000)
    backend.wheel.put(WheelEntry(shard, T0 + 70_000, "soon", backend.tenant))  # the next slot
    assert backend.wheel.any_due(shard, (slot_of(T0 - 120_000), ""), T0 + 75_000)
    assert backend.wheel.any_due(shard, (slot_of(T0), sort_key(T0, "")), T0 + 70_000, consistent=True)
    assert not backend.wheel.any_due(shard, (slot_of(T0), sort_key(T0, "")), T0 + 69_999)
    assert not backend.wheel.any_due(shard, (slot_of(T0 + 70_000), sort_key(T0 + 70_001, "")), T0 + 99_000)


def test_an_idle_shards_resume_point_moves_only_while_no_tick_holds_it(backend):
    shard = shard_of_test()
    # A shard never held: the check creates its resume point, and a tick can then take the shard
    assert backend.wheel.advance_idle(shard, T0, (slot_of(T0), sort_key(T0 - 2_000, "")))
    lease = backend.wheel.acquire(shard, "tick-a", T0 + 1, 5_000, runs_until=T0 + 300_000)
    assert lease is not None and (lease.resume_slot, lease.resume_sk) == (
        slot_of(T0),
        sort_key(T0 - 2_000, ""),
    )
    assert backend.wheel.peek(shard).runs_until == T0 + 300_000
    # While it is held the resume point stays; once released it moves
    assert not backend.wheel.advance_idle(shard, T0 + 2, (slot_of(T0), sort_key(T0, "")))
    backend.wheel.release(shard, "tick-a")
    assert backend.wheel.advance_idle(shard, T0 + 3, (slot_of(T0), sort_key(T0 + 1, "")))
    assert backend.wheel.peek(shard).resume_sk == sort_key(T0 + 1, "")
    # A holder that says nothing of its end is taken to end with its lease
    assert backend.wheel.acquire(shard, "tick-b", T0 + 4, 5_000).runs_until == T0 + 5_004
