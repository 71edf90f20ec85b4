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


@pytest.mark.parametrize("new", [[0, 1, 79], [5, 30, 31, 55], [0, 20, 40, 60, 79], []])
def test_a_read_leaves_out_the_items_a_tick_already_took(backend, new):
    # Given 80 entries of one slot, each in its own item, of which a tick took all but ``new``
    # (so many taken that DynamoDB's store reads the sort keys first, then the spans of new items)
    shard = shard_of_test()
    slot = slot_of(T0)
    entries = [WheelEntry(shard, T0 + 10 * i, f"id{i:03d}", backend.tenant) for i in range(80)]
    for entry in entries:
        backend.wheel.put(entry)
    taken = {e.key for i, e in enumerate(entries) if i not in new}
    # Then a read of the range returns the new ones alone, whole and in due order
    got = backend.wheel.load(shard, slot, "", None, taken)
    assert got == [entries[i] for i in new]
    # And within a narrower range, only those in it
    window = backend.wheel.load(shard, slot, sort_key(T0 + 10, ""), upto_key(T0 + 555), taken)
    assert window == [entries[i] for i in new if 1 <= i <= 55]
    # And with few items taken (one full read), the same rule
    few = {e.key for e in entries[:10]}
    assert backend.wheel.load(shard, slot, "", None, few) == entries[10:]


def test_a_shared_item_is_left_out_or_read_whole(backend):
    # Given 70 entries written one by one (own items) and 10 written together (they may share items)
    shard = shard_of_test()
    slot = slot_of(T0)
    alone = [WheelEntry(shard, T0 + 5_000 + 10 * i, f"a{i:03d}", backend.tenant) for i in range(70)]
    for entry in alone:
        backend.wheel.put(entry)
    together = [WheelEntry(shard, T0 + 20 * i, f"t{i:03d}", backend.tenant) for i in range(10)]
    assert backend.wheel.put_many(together) == [None] * 10
    everything = backend.wheel.load(shard, slot, "", None)
    assert len(everything) == 80
    # When a tick took every item but the one(s) holding the batch, a read returns all ten, once each
    taken = {e.key for e in alone}
    got = backend.wheel.load(shard, slot, "", None, taken)
    assert [e.item_id for e in got] == [e.item_id for e in together]
    # And when it took those too, nothing
    assert backend.wheel.load(shard, slot, "", None, taken | {e.key for e in got}) == []


def test_dynamodb_reads_sort_keys_first_then_only_the_spans_of_new_items(backend):
    if backend.name != "moto":
        pytest.skip("how DynamoDB's store reads (SQLite reads rows it skips at no parsing cost)")
    shard = shard_of_test()
    slot = slot_of(T0)
    entries = [WheelEntry(shard, T0 + 10 * i, f"id{i:03d}", backend.tenant) for i in range(80)]
    for entry in entries:
        backend.wheel.put(entry)
    calls: list[dict] = []
    client = backend.wheel.client
    query = client.query

    def recording(**kwargs):
        calls.append(kwargs)
        return query(**kwargs)

    client.query = recording
    try:
        new = [3, 4, 70]
        got = backend.wheel.load(
            shard, slot, "", None, {e.key for i, e in enumerate(entries) if i not in new}
        )
        few = backend.wheel.load(shard, slot, "", None, {entries[0].key})
    finally:
        client.query = query
    assert got == [entries[i] for i in new] and few == entries[1:]
    # keys alone over the range, then the two spans of new items read whole; then one full read
    assert [c.get("ProjectionExpression") for c in calls] == ["#sk", None, None, None]
    spans = [
        (c["ExpressionAttributeValues"][":from"]["S"], c["ExpressionAttributeValues"][":upto"]["S"])
        for c in calls[1:3]
    ]
    assert spans == [(entries[3].sk, entries[4].sk), (entries[70].sk, entries[70].sk)]
