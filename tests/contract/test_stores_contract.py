"""Schedules, dead letters, breakers, in-flight counters, trigger records and idempotency: one
behaviour on moto (DynamoDB) and on SQLite. Conditional writes that lose are ordinary answers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from taskplane.domain.breaker import Breaker, BreakerState, Call, Tally
from taskplane.domain.dead_letters import DeadLetter
from taskplane.domain.errors import Conflict, TaskplaneError
from taskplane.domain.ids import new_id
from taskplane.domain.schedules import Schedule
from taskplane.domain.triggers import Trigger
from taskplane.domain.wheel import WheelEntry, slot_of

pytestmark = pytest.mark.contract

T0 = 1_780_000_000_000  # a fixed epoch ms (2026)


def schedule(tenant: str, n: int = 0, **fields: Any) -> Schedule:
    return Schedule(
        schedule_id=fields.pop("schedule_id", new_id(T0 + n)),
        tenant=tenant,
        cron="*/5 * * * *",
        timezone="Europe/Paris",
        task={"target": {"type": "builtin", "name": "echo"}, "labels": {"é": "ü"}},
        created_at=T0,
        updated_at=T0,
        next_fire_at=fields.pop("next_fire_at", T0 + 300_000),
        **fields,
    )


# -- schedules ------------------------------------------------------------------------------------


def test_schedule_round_trips_with_its_first_wheel_entry_in_one_write(backend):
    # Given a schedule with every optional field and its first fire as a wheel entry
    s = schedule(backend.tenant, name="nightly", start_at=T0, end_at=T0 + 10**9, last_task_id="x", fires=3)
    entry = WheelEntry(
        shard=0, due_ms=s.next_fire_at, item_id=s.schedule_id, tenant=backend.tenant, kind="schedule"
    )
    # When it is created
    backend.schedules.create(s, entry)
    # Then it reads back equal, the entry is in the wheel, and another tenant sees nothing
    assert backend.schedules.get(backend.tenant, s.schedule_id) == s
    assert entry in backend.wheel_entries(0, slot_of(entry.due_ms))
    assert backend.schedules.get("someone-else", s.schedule_id) is None


def test_creating_an_existing_schedule_is_refused_and_changes_nothing(backend):
    s = schedule(backend.tenant)
    backend.schedules.create(s, None)
    with pytest.raises(TaskplaneError):
        backend.schedules.create(s.model_copy(update={"cron": "0 0 * * *"}), None)
    assert backend.schedules.get(backend.tenant, s.schedule_id).cron == "*/5 * * * *"


def test_schedule_update_is_conditional_on_the_next_fire_seen(backend):
    # Given a schedule due at T0+300000
    s = schedule(backend.tenant)
    backend.schedules.create(s, None)
    moved = s.model_copy(update={"next_fire_at": T0 + 600_000, "fires": 1})
    later = WheelEntry(0, T0 + 600_000, s.schedule_id, backend.tenant, kind="schedule")
    # When two writers move it from the same next fire, the first with a wheel entry
    first = backend.schedules.update(moved, expected_next=T0 + 300_000, entry=later)
    second = backend.schedules.update(
        s.model_copy(update={"next_fire_at": T0 + 900_000}),
        expected_next=T0 + 300_000,
        entry=WheelEntry(0, T0 + 900_000, s.schedule_id, backend.tenant, kind="schedule"),
    )
    # Then only the first lands, with its entry; the loser wrote nothing (not its entry either)
    assert (first, second) == (True, False)
    assert backend.schedules.get(backend.tenant, s.schedule_id) == moved
    entries = backend.wheel_entries(0, slot_of(T0 + 600_000))
    assert later in entries
    assert all(e.due_ms != T0 + 900_000 for e in entries)
    # And an ended schedule (no next fire) is matched by expected_next=None
    ended = moved.model_copy(update={"next_fire_at": None})
    assert backend.schedules.update(ended, expected_next=T0 + 600_000)
    assert backend.schedules.update(ended.model_copy(update={"paused": True}), expected_next=None)
    assert not backend.schedules.update(ended, expected_next=T0 + 600_000)


def test_schedule_update_can_also_be_conditional_on_the_version_seen(backend):
    # Given a schedule, and a pause that lands (same next fire, a newer updated_at)
    s = schedule(backend.tenant)
    backend.schedules.create(s, None)
    paused = s.model_copy(update={"paused": True, "updated_at": s.updated_at + 1})
    assert backend.schedules.update(paused, expected_next=s.next_fire_at, expected_updated=s.updated_at)
    # When a fire that read the schedule before the pause moves it on
    moved = s.model_copy(update={"next_fire_at": T0 + 600_000, "updated_at": s.updated_at + 2})
    entry = WheelEntry(0, T0 + 600_000, s.schedule_id, backend.tenant, kind="schedule")
    lost = backend.schedules.update(
        moved, expected_next=s.next_fire_at, entry=entry, expected_updated=s.updated_at
    )
    # Then it is refused: the pause stays, and no entry for the next fire was written
    assert not lost
    assert backend.schedules.get(backend.tenant, s.schedule_id) == paused
    assert entry not in backend.wheel_entries(0, slot_of(T0 + 600_000))
    # And with the version it saw now, it lands
    assert backend.schedules.update(moved, expected_next=s.next_fire_at, expected_updated=paused.updated_at)


def test_updating_a_missing_schedule_is_a_lost_race(backend):
    assert not backend.schedules.update(schedule(backend.tenant), expected_next=T0 + 300_000)


def test_eight_writers_racing_on_one_schedule_one_wins(backend):
    s = schedule(backend.tenant)
    backend.schedules.create(s, None)
    wins: list[bool] = []
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        wins.append(
            backend.schedules.update(
                s.model_copy(update={"next_fire_at": s.next_fire_at + (i + 1) * 60_000}),
                expected_next=s.next_fire_at,
            )
        )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_schedules_page_newest_first_with_a_cursor(backend):
    made = [schedule(backend.tenant, n) for n in range(7)]
    for s in made:
        backend.schedules.create(s, None)
    backend.schedules.create(schedule("other" + backend.tenant, 99), None)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = backend.schedules.list(backend.tenant, limit=3, cursor=cursor)
        seen += [s.schedule_id for s in page]
        pages += 1
        if cursor is None:
            break
    assert seen == sorted((s.schedule_id for s in made), reverse=True)
    assert pages == 3


def test_schedule_delete_answers_whether_it_existed(backend):
    s = schedule(backend.tenant)
    backend.schedules.create(s, None)
    assert backend.schedules.delete("other", s.schedule_id) is False
    assert backend.schedules.delete(backend.tenant, s.schedule_id) is True
    assert backend.schedules.delete(backend.tenant, s.schedule_id) is False
    assert backend.schedules.get(backend.tenant, s.schedule_id) is None


# -- dead letters ---------------------------------------------------------------------------------


def letter(tenant: str, n: int, **fields: Any) -> DeadLetter:
    return DeadLetter(
        tenant=tenant,
        task_id=new_id(T0 + n),
        reason=fields.pop("reason", "exhausted 3 attempts"),
        at=T0 + n,
        attempts=3,
        target_type="http",
        error={"type": "HttpError", "message": "503"},
        **fields,
    )


def test_a_dead_letter_is_written_once(backend):
    d = letter(backend.tenant, 0, reason="x" * 3000)
    backend.dead_letters.put(d)
    backend.dead_letters.put(d.model_copy(update={"reason": "a second write", "attempts": 9}))
    got = backend.dead_letters.get(backend.tenant, d.task_id)
    assert got == d.model_copy(update={"reason": "x" * 2000})
    assert backend.dead_letters.get("other", d.task_id) is None


def test_dead_letters_list_newest_first_by_status_with_cursors(backend):
    letters = [letter(backend.tenant, n) for n in range(6)]
    for d in letters:
        backend.dead_letters.put(d)
    backend.dead_letters.put(letter("other" + backend.tenant, 50))
    for d in letters[:2]:
        assert backend.dead_letters.claim(backend.tenant, d.task_id, "NEW" + d.task_id, T0)
    page, cursor = backend.dead_letters.list(backend.tenant, limit=2)
    rest, end = backend.dead_letters.list(backend.tenant, limit=10, cursor=cursor)
    assert [d.task_id for d in page + rest] == sorted((d.task_id for d in letters), reverse=True)
    assert cursor == page[-1].task_id and end is None
    dead, _ = backend.dead_letters.list(backend.tenant, limit=10, status="dead")
    assert {d.task_id for d in dead} == {d.task_id for d in letters[2:]}
    claimed, _ = backend.dead_letters.list(backend.tenant, limit=10, status="redriving")
    assert [d.redriven_as for d in claimed] == ["NEW" + d.task_id for d in reversed(letters[:2])]


def test_redrive_claims_are_won_once_and_finished_only_by_their_claimant(backend):
    d = letter(backend.tenant, 0)
    backend.dead_letters.put(d)
    assert backend.dead_letters.claim(backend.tenant, d.task_id, "A", T0 + 1)
    assert not backend.dead_letters.claim(backend.tenant, d.task_id, "B", T0 + 2)  # lost race
    assert not backend.dead_letters.finish(backend.tenant, d.task_id, "B", T0 + 3)  # not its claim
    assert backend.dead_letters.release(backend.tenant, d.task_id, "A", T0 + 4)
    assert backend.dead_letters.claim(backend.tenant, d.task_id, "C", T0 + 5)
    assert backend.dead_letters.finish(backend.tenant, d.task_id, "C", T0 + 6)
    got = backend.dead_letters.get(backend.tenant, d.task_id)
    assert (got.status, got.redriven_as, got.redriven_at) == ("redriven", "C", T0 + 6)
    assert not backend.dead_letters.claim("other", d.task_id, "D", T0)
    assert not backend.dead_letters.claim(backend.tenant, "01MISSING", "D", T0)


# -- breakers and in-flight counters -------------------------------------------------------------


def test_breaker_writes_land_only_on_the_version_they_read(backend):
    key = backend.unique("acme#http:host:")
    fresh = backend.breakers.get(key)
    assert fresh == Breaker(key=key)
    opened = Breaker(key, BreakerState.OPEN, T0, 0, 1, reason="3 timeouts in a row", timeouts=3)
    assert backend.breakers.replace(fresh, opened)
    assert not backend.breakers.replace(fresh, Breaker(key, version=1))  # stale
    assert backend.breakers.get(key) == opened
    probe = Breaker(key, BreakerState.HALF_OPEN, T0, T0 + 30_000, 2, reason="3 timeouts in a row", timeouts=3)
    assert backend.breakers.replace(opened, probe)
    assert backend.breakers.get(key) == probe


def tally(*calls: tuple[int, Call]) -> Tally:
    t = Tally()
    for second, call in calls:
        t.add(second, call)
    return t


def test_breaker_counts_a_batchs_calls_per_second_and_timeouts_in_a_row(backend):
    # Given a fresh breaker record
    key = backend.unique("acme#lambda:f")
    s = T0 // 1000
    # When a batch's calls over two seconds are counted in one write, ending in two timeouts
    after = backend.breakers.count(
        key, tally((s, Call.OK), (s, Call.ERROR), (s + 1, Call.TIMEOUT), (s + 1, Call.TIMEOUT)), []
    )
    # Then each second holds (calls, errors), a timeout is an error, and the trailing run counts
    assert after.buckets == {s: (2, 1), s + 1: (2, 2)} and after.timeouts == 2
    # And a batch of timeouts only adds to the run; one with an answer restarts it from its trailing run
    assert backend.breakers.count(key, tally((s + 1, Call.TIMEOUT)), []).timeouts == 3
    assert backend.breakers.count(key, tally((s + 2, Call.OK), (s + 2, Call.TIMEOUT)), []).timeouts == 1
    assert backend.breakers.count(key, tally((s + 2, Call.OK)), []).timeouts == 0
    # And a counting write leaves the state alone, and drops the stale buckets it is given
    opened = Breaker(key, BreakerState.OPEN, T0, 0, 1, reason="r")
    assert backend.breakers.replace(backend.breakers.get(key), opened)
    later = backend.breakers.count(key, tally((s + 40, Call.ERROR)), [s, s + 1])
    assert later.state is BreakerState.OPEN and later.version == 1
    assert later.buckets == {s + 2: (3, 1), s + 40: (1, 1)}
    assert backend.breakers.get(key) == later


def test_two_workers_counting_one_breaker_at_once_keep_both_counts(backend):
    # Given two workers' batches through the same breaker, in the same seconds
    import threading

    key = backend.unique("acme#http:host:")
    s = T0 // 1000
    ready = threading.Barrier(2)
    got: list[Breaker] = []

    def worker(errors: int) -> None:
        batch = tally(*[(s, Call.ERROR)] * errors, *[(s + 1, Call.OK)] * 5)
        ready.wait()
        got.append(backend.breakers.count(key, batch, []))

    # When both write at the same moment
    threads = [threading.Thread(target=worker, args=(n,)) for n in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the record holds both batches' calls (ADD: neither write overwrote the other)
    assert backend.breakers.get(key).buckets == {s: (7, 7), s + 1: (10, 0)}
    assert len(got) == 2


def test_inflight_quota_is_checked_and_counted_in_one_write(backend):
    tenant = backend.tenant
    assert not backend.inflight.acquire(tenant, 4, 3)  # a first batch over the quota
    assert backend.inflight.current(tenant) == 0
    assert backend.inflight.acquire(tenant, 2, 3)
    assert not backend.inflight.acquire(tenant, 2, 3)
    assert backend.inflight.acquire(tenant, 1, 3)
    assert not backend.inflight.acquire(tenant, 1, 3)
    backend.inflight.release(tenant, 2)
    assert backend.inflight.current(tenant) == 1
    backend.inflight.release(tenant, 5)  # never below zero: changes nothing
    assert backend.inflight.current(tenant) == 1
    assert backend.inflight.current("other" + tenant) == 0


def test_inflight_quota_holds_under_racing_acquires(backend):
    wins: list[bool] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        wins.append(backend.inflight.acquire(backend.tenant, 1, 5))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 3 + [True] * 5
    assert backend.inflight.current(backend.tenant) == 5


# -- trigger records ------------------------------------------------------------------------------


def test_trigger_records_per_tenant_newest_first(backend):
    made = []
    for n in range(3):
        tid = new_id(T0 + n)
        made.append(
            Trigger(
                trigger_id=tid,
                tenant=backend.tenant,
                bus="taskplane",
                event_pattern={"source": ["shop"]},
                task={"target": {"type": "builtin", "name": "echo"}},
                rule_name=f"r-{tid}",
                created_at=T0 + n,
                rule_pattern={"source": ["shop"], "detail": {"taskplane_tenant": [backend.tenant]}},
            )
        )
        backend.trigger_store.put(made[-1])
    assert backend.trigger_store.get(backend.tenant, made[0].trigger_id) == made[0]
    assert backend.trigger_store.get("other", made[0].trigger_id) is None
    assert backend.trigger_store.list(backend.tenant) == list(reversed(made))
    backend.trigger_store.delete(backend.tenant, made[1].trigger_id)
    backend.trigger_store.delete(backend.tenant, made[1].trigger_id)  # absent: fine
    assert [t.trigger_id for t in backend.trigger_store.list(backend.tenant)] == [
        made[2].trigger_id,
        made[0].trigger_id,
    ]


# -- idempotency ----------------------------------------------------------------------------------


def test_an_idempotency_key_runs_its_action_once_per_tenant(backend):
    store = backend.make_idempotency()
    key = backend.unique("key-")
    calls: list[str] = []

    def action(value: str) -> Any:
        return lambda: calls.append(value) or {"task_id": value}

    first = store.once(backend.tenant, key, {"body": 1}, action("a"))
    again = store.once(backend.tenant, key, {"body": 1}, action("b"))
    theirs = store.once("other" + backend.tenant, key, {"body": 1}, action("c"))
    assert first == ({"task_id": "a"}, False)
    assert again == ({"task_id": "a"}, True)
    assert theirs == ({"task_id": "c"}, False)
    assert calls == ["a", "c"]
    with pytest.raises(Conflict, match="different body"):
        store.once(backend.tenant, key, {"body": 2}, action("d"))
    assert calls == ["a", "c"]


def test_a_failed_action_frees_its_key(backend):
    store = backend.make_idempotency()
    key = backend.unique("key-")

    def boom() -> dict[str, Any]:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        store.once(backend.tenant, key, {"b": 1}, boom)
    assert store.once(backend.tenant, key, {"b": 1}, lambda: {"ok": True}) == ({"ok": True}, False)


def test_a_key_in_progress_is_a_conflict_until_its_invocation_times_out(backend):
    # Given an action that is still running (it checks the key again from inside)
    from taskplane.local.context import LocalContext

    store = backend.make_idempotency()
    other = backend.make_idempotency()  # another execution environment, same records
    key = backend.unique("key-")
    seen: list[str] = []

    def inner() -> dict[str, Any]:
        try:
            other.once(backend.tenant, key, {"b": 1}, lambda: {"second": True})
        except Conflict as exc:
            seen.append(exc.message)
        return {"first": True}

    assert store.once(backend.tenant, key, {"b": 1}, inner) == ({"first": True}, False)
    assert seen and "still in progress" in seen[0]

    # And a key whose invocation's time is up is free again
    stale = backend.make_idempotency()
    stale.register(LocalContext(function_name="api", timeout_s=0))
    key2 = backend.unique("key-")

    def leave_in_progress() -> dict[str, Any]:
        time.sleep(0.005)  # past the in-progress expiry (now + 0 ms remaining), whatever the clock's grain
        return other.once(backend.tenant, key2, {"b": 1}, lambda: {"retried": True})[0]

    assert stale.once(backend.tenant, key2, {"b": 1}, leave_in_progress) == ({"retried": True}, False)


def test_duration_sketches_add_up_per_minute_and_list_their_targets(backend: Any) -> None:
    # Given two writes to one target's minute and one to another minute, and one target remembered
    store, tenant = backend.latency, backend.tenant
    store.add(tenant, "http:a", 60_000, {3: 2, 7: 1}, 10**10)
    store.add(tenant, "http:a", 60_000, {3: 1, 9: 4}, 10**10)
    store.add(tenant, "http:a", 120_000, {1: 1}, 10**10)
    store.remember(tenant, "http:a")
    store.remember(tenant, "http:a")
    # When the minutes are read, Then each minute's counts are the sums of its writes
    got = store.read_many(tenant, {"http:a": [60_000, 120_000, 180_000], "http:b": [60_000]})
    assert sorted(got["http:a"], key=len) == [{1: 1}, {3: 3, 7: 1, 9: 4}]
    assert got["http:b"] == []
    # And the target is listed once, for its tenant only
    assert store.targets(tenant) == ["http:a"]
    assert store.targets(backend.unique("other")) == []


def test_a_sketch_spread_over_every_bucket_reads_back_exactly(backend: Any) -> None:
    # Given durations in every bucket from 1 ms to 15 minutes (the DynamoDB adapter splits a minute
    # into parts by bucket range), written by two writers, with large counts, and a long target name
    from taskplane.domain.adaptive import bucket_of

    store, tenant = backend.latency, backend.tenant
    target = "lambda:" + "f" * 500
    top = bucket_of(900_000.0)
    first = {b: 10**9 + b for b in range(0, top + 1)}
    second = {b: 1 for b in range(0, top + 1, 7)}
    assert store.add(tenant, target, 60_000, first, 10**10) >= 1
    store.add(tenant, target, 60_000, second, 10**10)
    store.add(tenant, "http:b", 60_000, {5: 1}, 10**10)
    # When the minute is read, Then every bucket holds the sum of both writes, and nothing else
    (got,) = store.read_many(tenant, {target: [0, 60_000]})[target]
    assert got == {b: first[b] + second.get(b, 0) for b in first}
    assert store.read_many(tenant, {"http:b": [60_000]})["http:b"] == [{5: 1}]
