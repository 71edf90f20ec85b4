"""Windows of windowed triggers and the wheel's ring: one behaviour on moto (DynamoDB) and on SQLite.
A condition that does not hold writes nothing and is an ordinary answer."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from taskplane.domain.ring import Ring
from taskplane.domain.windows import WindowHead

pytestmark = pytest.mark.contract

T0 = 1_780_000_000_000  # a fixed epoch ms (2026)
EXPIRES = T0 // 1000 + 86_400


def opened(backend: Any, trigger: str, digest: str = "k1", *, ends: int = T0 + 10_000) -> WindowHead:
    """A window opened for ``digest`` (none open before)."""
    head = WindowHead(window_id=backend.unique("w"), key="key-1", opened_at=T0, closes_at=ends)
    assert backend.windows.open(backend.tenant, trigger, digest, head, None, EXPIRES)
    return head


def take(backend: Any, trigger: str, head: WindowHead, event_id: str, **fields: Any) -> str:
    doc = json.dumps({"id": event_id, "detail": fields.pop("detail", {"n": event_id})})
    args: dict[str, Any] = {
        "dedup": event_id,
        "event_id": event_id,
        "doc": doc,
        "size": len(doc),
        "now_ms": T0 + 1_000,
        "max_count": 10,
        "room": 100_000,
        "pattern": None,
        "closes_at": None,
        "only": False,
        "expires_at": EXPIRES,
    }
    args.update(fields)
    outcome: str = backend.windows.take(backend.tenant, trigger, head, **args)
    return outcome


# -- opening ---------------------------------------------------------------------------------------


def test_a_keys_window_opens_once_and_the_next_only_over_the_one_it_replaces(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    assert windows.current(tenant, trigger, "k1") is None
    first = opened(backend, trigger)
    assert windows.current(tenant, trigger, "k1") == first.window_id
    assert windows.head(tenant, trigger, first.window_id) == WindowHead(
        window_id=first.window_id, key="key-1", opened_at=T0, closes_at=T0 + 10_000, last_at=T0
    )
    # A second opener that saw no window loses, as does one that saw a window no longer current.
    rival = WindowHead(window_id=backend.unique("w"), key="key-1", opened_at=T0, closes_at=T0 + 10_000)
    assert not windows.open(tenant, trigger, "k1", rival, None, EXPIRES)
    assert windows.head(tenant, trigger, rival.window_id) is None
    second = WindowHead(window_id=backend.unique("w"), key="key-1", opened_at=T0 + 1, closes_at=T0 + 9)
    assert windows.open(tenant, trigger, "k1", second, first.window_id, EXPIRES)
    assert windows.current(tenant, trigger, "k1") == second.window_id
    stale = WindowHead(window_id=backend.unique("w"), key="key-1", opened_at=T0 + 2, closes_at=T0 + 9)
    assert not windows.open(tenant, trigger, "k1", stale, first.window_id, EXPIRES)
    assert windows.current(tenant, trigger, "k1") == second.window_id
    # Keys and triggers are independent.
    assert windows.current(tenant, trigger, "k2") is None
    assert windows.current(tenant, backend.unique("tr"), "k1") is None


# -- taking events ---------------------------------------------------------------------------------


def test_an_event_is_counted_once_by_the_trigger_whatever_window_it_reaches(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger)
    assert not windows.seen(tenant, trigger, "e1")
    assert take(backend, trigger, head, "e1") == "taken"
    assert take(backend, trigger, head, "e2", now_ms=T0 + 2_000) == "taken"
    assert windows.seen(tenant, trigger, "e1")
    # A redelivery, into this window or the key's next one, is a duplicate and changes nothing.
    assert take(backend, trigger, head, "e1") == "duplicate"
    other = opened(backend, trigger, "k2")
    assert take(backend, trigger, other, "e1") == "duplicate"
    after = windows.head(tenant, trigger, head.window_id)
    assert (after.count, after.last_at, after.state) == (2, T0 + 2_000, "OPEN")
    collected = sorted(windows.events(tenant, trigger, head.window_id), key=lambda c: c.event_id)
    assert [(c.event_id, c.at, c.event["detail"]) for c in collected] == [
        ("e1", T0 + 1_000, {"n": "e1"}),
        ("e2", T0 + 2_000, {"n": "e2"}),
    ]
    assert after.bytes == sum(len(json.dumps(c.event)) for c in collected)
    assert windows.head(tenant, trigger, other.window_id).count == 0
    assert windows.events(tenant, trigger, other.window_id) == []


def test_a_window_past_its_end_full_or_over_its_bytes_refuses_and_writes_nothing(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger, ends=T0 + 5_000)
    assert take(backend, trigger, head, "late", now_ms=T0 + 5_000) == "refused"
    assert take(backend, trigger, head, "a", max_count=2) == "taken"
    size = windows.head(tenant, trigger, head.window_id).bytes
    # Over the bytes: the first event always fits; the next only if what is held leaves it room.
    assert take(backend, trigger, head, "big", size=50, room=size + 49) == "refused"
    assert take(backend, trigger, head, "b", size=50, room=size + 50, max_count=2) == "taken"
    assert take(backend, trigger, head, "c", max_count=2) == "refused"
    for refused in ("late", "big", "c"):
        assert not windows.seen(tenant, trigger, refused)  # tried again elsewhere, counted there
    after = windows.head(tenant, trigger, head.window_id)
    assert (after.count, after.bytes) == (2, size + 50)
    assert sorted(c.event_id for c in windows.events(tenant, trigger, head.window_id)) == ["a", "b"]
    # A window of another trigger, or none at all, refuses too.
    assert take(backend, backend.unique("tr"), head, "d") == "refused"


def test_a_debounce_keeps_its_last_event_and_moves_its_end(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger, ends=T0 + 2_000)
    assert take(backend, trigger, head, "e1", only=True, closes_at=T0 + 3_000, size=10) == "taken"
    assert take(backend, trigger, head, "e2", only=True, closes_at=T0 + 4_500, size=7, now_ms=T0 + 2_500) == (
        "taken"
    )
    after = windows.head(tenant, trigger, head.window_id)
    assert (after.count, after.bytes, after.closes_at, after.last_at) == (2, 7, T0 + 4_500, T0 + 2_500)
    [last] = windows.events(tenant, trigger, head.window_id)
    assert (last.event_id, last.at, last.event["id"]) == ("e2", T0 + 2_500, "e2")


def test_a_correlation_keeps_one_event_that_matches_two_patterns_with_both(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger)
    assert take(backend, trigger, head, "e1", dedup="e1#0", pattern=0) == "taken"
    assert take(backend, trigger, head, "e1", dedup="e1#1", pattern=1, now_ms=T0 + 1_500) == "taken"
    assert take(backend, trigger, head, "e1", dedup="e1#1", pattern=1) == "duplicate"
    assert take(backend, trigger, head, "e2", dedup="e2#2", pattern=2, now_ms=T0 + 2_000) == "taken"
    after = windows.head(tenant, trigger, head.window_id)
    assert (after.count, after.matched) == (3, frozenset({0, 1, 2}))
    found = {c.event_id: c for c in windows.events(tenant, trigger, head.window_id)}
    assert set(found) == {"e1", "e2"}
    assert (found["e1"].patterns, found["e1"].at) == (frozenset({0, 1}), T0 + 1_000)
    assert found["e2"].patterns == frozenset({2})


def test_racing_events_fill_a_window_exactly_and_one_event_counts_once(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def racer(n: int) -> None:
        barrier.wait()
        # each racer sends its own event and the same shared one
        for event_id in (f"own-{n}", "shared"):
            try:
                outcome = take(backend, trigger, head, event_id, max_count=5)
            except Exception as exc:  # a conflict the service tries again: not a count
                outcome = type(exc).__name__
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [c.event_id for c in windows.events(tenant, trigger, head.window_id)]
    assert len(taken) == outcomes.count("taken") == windows.head(tenant, trigger, head.window_id).count
    assert len(taken) <= 5
    assert taken.count("shared") <= 1
    assert outcomes.count("taken") + outcomes.count("duplicate") + outcomes.count("refused") >= 5


# -- closing ---------------------------------------------------------------------------------------


def test_a_close_seals_once_then_finishes_once_naming_its_task(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger)
    assert take(backend, trigger, head, "e1") == "taken"
    windows.finish(tenant, trigger, head.window_id, "task-early")  # not sealed yet: nothing
    assert windows.head(tenant, trigger, head.window_id).state == "OPEN"
    sealed = windows.seal(tenant, trigger, head.window_id, "full", T0 + 2_000)
    assert (sealed.state, sealed.reason, sealed.count) == ("CLOSING", "full", 1)
    assert take(backend, trigger, head, "e2") == "refused"  # no event after the seal
    again = windows.seal(tenant, trigger, head.window_id, "time", T0 + 3_000)
    assert (again.state, again.reason) == ("CLOSING", "full")  # a retried close keeps the reason
    windows.finish(tenant, trigger, head.window_id, "task-1")
    closed = windows.head(tenant, trigger, head.window_id)
    assert (closed.state, closed.reason, closed.task_id) == ("CLOSED", "full", "task-1")
    windows.finish(tenant, trigger, head.window_id, "task-2")
    assert windows.seal(tenant, trigger, head.window_id, "time", T0 + 4_000).task_id == "task-1"
    assert windows.seal(tenant, trigger, backend.unique("w"), "time", T0) is None


def test_a_window_closed_without_a_task_names_none(backend):
    windows, tenant, trigger = backend.windows, backend.tenant, backend.unique("tr")
    head = opened(backend, trigger)
    windows.seal(tenant, trigger, head.window_id, "time", T0 + 10_000)
    windows.finish(tenant, trigger, head.window_id, None)
    closed = windows.head(tenant, trigger, head.window_id)
    assert (closed.state, closed.reason, closed.task_id, closed.count) == ("CLOSED", "time", None, 0)


# -- the wheel's ring ------------------------------------------------------------------------------


def test_the_ring_is_written_only_over_the_version_read(backend):
    rings = backend.make_rings()
    assert rings.read(consistent=True) is None
    first = Ring(version=1, weights={0: 1.0, 1: 1.0}, changed_at=T0)
    assert rings.write(first, expected_version=None)
    assert rings.read(consistent=True) == first
    assert not rings.write(Ring(version=1, weights={0: 1.0}), expected_version=None)
    second = Ring(version=2, weights={0: 1.0, 2: 0.625}, draining={1: T0 + 3_600_000}, changed_at=T0 + 60_000)
    assert not rings.write(second, expected_version=0)
    assert rings.write(second, expected_version=1)
    assert not rings.write(Ring(version=2, weights={3: 1.0}), expected_version=1)
    stored = rings.read(consistent=True)
    assert stored == second
    assert stored.shard_for("any-key") in (0, 2)


def test_racing_ring_changes_one_wins(backend):
    rings = backend.make_rings()
    assert rings.write(Ring(version=1, weights={0: 1.0}), expected_version=None)
    wins: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        if rings.write(Ring(version=2, weights={0: 1.0, n + 1: 1.0}), expected_version=1):
            with lock:
                wins.append(n)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert rings.read(consistent=True).weights == {0: 1.0, wins[0] + 1: 1.0}
