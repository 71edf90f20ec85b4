"""Windowed triggers' rules (domain/windows.py) and the window service over an in-memory store with
the DynamoDB adapter's conditional semantics, driven by Hypothesis: window assembly, dedup by event
id, debounce bursts and correlation completion, against reference models written independently."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.adapters.queues import LaneMessage, TriggerMessage, WindowMessage, parse_body
from taskplane.domain.clock import FixedClock
from taskplane.domain.errors import Conflict
from taskplane.domain.triggers import Trigger
from taskplane.domain.wheel import DISPATCH_LEAD_MS, NEAR_MS
from taskplane.domain.windows import (
    BatchWindow,
    Collected,
    CorrelateWindow,
    DebounceWindow,
    WindowHead,
    key_text,
    key_value,
    parse_key_path,
)
from taskplane.services.payload_budget import PayloadBudget
from taskplane.services.windows import WindowService

pytestmark = pytest.mark.unit
PROPERTY = settings(max_examples=150, deadline=None)
T0 = 1_767_225_600_000


# -- key paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$.detail.user", ("detail", "user")),
        ("$['detail']['user-id']", ("detail", "user-id")),
        ('$.detail["a.b"][2].x', ("detail", "a.b", 2, "x")),
        ("$.detail.user_id", ("detail", "user_id")),
    ],
)
def test_key_paths_that_name_one_value(path, steps):
    assert parse_key_path(path) == steps


@pytest.mark.parametrize(
    "path", ["detail.user", "$", "$..user", "$.detail[*]", "$.a[?(@.b)]", "$.a[1:2]", "$.", "$.a b", "$['a"]
)
def test_key_paths_that_do_not_name_one_value_are_refused(path):
    with pytest.raises(ValueError):
        parse_key_path(path)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=8,
    )
)
def test_a_quoted_path_finds_what_it_names(value):
    event = {"detail": {"k'ey": value}}
    assert key_value(event, parse_key_path("$.detail['k\\'ey']")) == value
    assert key_value(event, parse_key_path("$.detail.other")) is None


def test_keys_of_different_types_are_different_keys():
    assert key_text("1") != key_text(1) and key_text(None) == "null"
    assert key_text({"b": 1, "a": 2}) == key_text({"a": 2, "b": 1})


# -- an in-memory store with the adapter's conditions ---------------------------------------------------
@dataclass
class MemoryWindows:
    pointers: dict[tuple[str, str, str], str] = field(default_factory=dict)
    heads: dict[tuple[str, str, str], WindowHead] = field(default_factory=dict)
    stored: dict[tuple[str, str, str], dict[str, Collected]] = field(default_factory=dict)
    marks: set[tuple[str, str, str]] = field(default_factory=set)

    def current(self, tenant: str, trigger_id: str, digest: str) -> str | None:
        return self.pointers.get((tenant, trigger_id, digest))

    def head(self, tenant: str, trigger_id: str, window_id: str) -> WindowHead | None:
        return self.heads.get((tenant, trigger_id, window_id))

    def seen(self, tenant: str, trigger_id: str, dedup: str) -> bool:
        return (tenant, trigger_id, dedup) in self.marks

    def events(self, tenant: str, trigger_id: str, window_id: str) -> list[Collected]:
        return list(self.stored.get((tenant, trigger_id, window_id), {}).values())

    def open(self, tenant, trigger_id, digest, head, previous, expires_at) -> bool:
        if self.pointers.get((tenant, trigger_id, digest)) != previous:
            return False
        self.pointers[(tenant, trigger_id, digest)] = head.window_id
        self.heads[(tenant, trigger_id, head.window_id)] = replace(head, last_at=head.opened_at)
        return True

    def take(
        self,
        tenant,
        trigger_id,
        head,
        *,
        dedup,
        event_id,
        doc,
        size,
        now_ms,
        max_count,
        room,
        pattern,
        closes_at,
        only,
        expires_at,
    ):
        if (tenant, trigger_id, dedup) in self.marks:
            return "duplicate"
        h = self.heads.get((tenant, trigger_id, head.window_id))
        if h is None or h.state != "OPEN" or h.closes_at <= now_ms or h.count >= max_count:
            return "refused"
        if not only and not (h.count == 0 or h.bytes <= room - size):
            return "refused"
        self.marks.add((tenant, trigger_id, dedup))
        window = self.stored.setdefault((tenant, trigger_id, head.window_id), {})
        sk = "last" if only else event_id
        previous = window.get(sk)
        patterns = frozenset({pattern} if pattern is not None else set())
        if previous is not None and not only:
            patterns |= previous.patterns
        window[sk] = Collected(
            at=now_ms if previous is None or only else previous.at,
            event_id=event_id,
            event=json.loads(doc),
            patterns=patterns,
        )
        self.heads[(tenant, trigger_id, head.window_id)] = replace(
            h,
            count=h.count + 1,
            bytes=size if only else h.bytes + size,
            last_at=now_ms,
            matched=h.matched | patterns,
            closes_at=closes_at if closes_at is not None else h.closes_at,
        )
        return "taken"

    def seal(self, tenant, trigger_id, window_id, reason, now_ms):
        h = self.heads.get((tenant, trigger_id, window_id))
        if h is not None and h.state == "OPEN":
            h = self.heads[(tenant, trigger_id, window_id)] = replace(h, state="CLOSING", reason=reason)
        return h

    def finish(self, tenant, trigger_id, window_id, task_id):
        h = self.heads[(tenant, trigger_id, window_id)]
        if h.state == "CLOSING":
            self.heads[(tenant, trigger_id, window_id)] = replace(h, state="CLOSED", task_id=task_id)


@dataclass
class Tasks:
    made: dict[str, Any] = field(default_factory=dict)

    def create(self, task: Any) -> None:
        if task.task_id in self.made:
            raise Conflict("exists")
        self.made[task.task_id] = task

    def get(self, tenant: str, task_id: str) -> Any:
        return self.made.get(task_id)


@dataclass
class Wheel:
    entries: dict[tuple[int, str], Any] = field(default_factory=dict)

    def put(self, entry: Any) -> None:
        self.entries[(entry.due_ms, entry.item_id)] = entry


class Lanes:
    def __init__(self) -> None:
        self.sent: list[Any] = []  # task deliveries
        self.ends: list[WindowMessage] = []  # window ends sent straight to a lane

    def send_one(self, message: Any) -> None:
        (self.ends if isinstance(message, WindowMessage) else self.sent).append(message)


class Triggers:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def get(self, tenant: str, trigger_id: str) -> Trigger | None:
        return self.trigger if trigger_id == self.trigger.trigger_id else None


def harness(**mode: Any) -> tuple[WindowService, FixedClock, Wheel, Tasks, Trigger]:
    fields: dict[str, Any] = {
        "trigger_id": "01TRIGGER00000000000000000",
        "tenant": "acme",
        "bus": "taskplane",
        "event_pattern": {"source": ["s"]},
        "task": {"target": {"type": "builtin", "name": "echo"}},
        "rule_name": "r",
        "created_at": T0,
    }
    trigger = Trigger(**{**fields, **mode})
    clock = FixedClock(T0)
    wheel, tasks = Wheel(), Tasks()
    ids = iter(range(10**6))
    service = WindowService(
        records=MemoryWindows(),
        triggers=Triggers(trigger),
        tasks=tasks,
        lanes=Lanes(),
        wheel=wheel,
        clock=clock,
        make_id=lambda now: f"{now:013d}W{next(ids):08d}",
    )
    return service, clock, wheel, tasks, trigger


def fire_due(service: WindowService, clock: FixedClock, wheel: Wheel, until_ms: int) -> None:
    """The tick and the worker: every window end due up to ``until_ms`` (a wheel entry, or one sent
    straight to its lane because it was due soon), in due order, closed at its due time."""
    while True:
        due = sorted(k for k in wheel.entries if k[0] <= until_ms)
        ends = sorted((m.due_ms, i) for i, m in enumerate(service.lanes.ends) if m.due_ms <= until_ms)
        if not due and not ends:
            break
        if ends and (not due or ends[0][0] <= due[0][0]):
            end = service.lanes.ends.pop(ends[0][1])
            clock._now = max(clock.now_ms(), end.due_ms)
            assert service.delivered(end) != "requeued"
            continue
        entry = wheel.entries.pop(due[0])
        clock._now = max(clock.now_ms(), entry.due_ms)
        assert service.delivered(end_of(entry)) != "requeued"
    clock._now = max(clock.now_ms(), until_ms)


def end_of(entry: Any) -> WindowMessage:
    """The lane message the tick sends for a window's wheel entry."""
    return WindowMessage(tenant=entry.tenant, window=entry.item_id, due_ms=entry.due_ms, lane=entry.lane)


def event(event_id: str, key: str, size: int = 0, kind: str = "a") -> dict[str, Any]:
    return {"id": event_id, "detail-type": kind, "detail": {"user": key, "pad": "x" * size}}


#: (ms after the previous delivery, key, event number: a number seen before is a redelivery)
deliveries = st.lists(
    st.tuples(st.integers(0, 700), st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 40)), max_size=60
)


def run(service, clock, wheel, steps, *, kind_of=None, pattern_of=None, size_of=None):
    """Deliver each step's event at its time (the tick firing what is due before it); then close
    everything. Returns the first arrival time and key of each distinct event, in arrival order."""
    first: dict[str, tuple[int, str]] = {}
    for gap, key, number in steps:
        fire_due(service, clock, wheel, clock.now_ms() + gap)
        eid = f"e{number}"
        if eid in first:
            key = first[eid][1]  # a redelivery is the same event
        else:
            first[eid] = (clock.now_ms(), key)
        ev = event(eid, key, size_of(number) if size_of else 0, kind_of(number) if kind_of else "a")
        trigger = service.triggers.trigger
        service.collect(trigger, ev, pattern_of(number) if pattern_of else None)
    fire_due(service, clock, wheel, clock.now_ms() + 10**8)
    return first


# -- batch ----------------------------------------------------------------------------------------------
@PROPERTY
@given(steps=deliveries, max_events=st.integers(1, 5), window_ms=st.integers(100, 2_000))
def test_batches_hold_every_event_once_within_their_limits(steps, max_events, window_ms):
    # Given a batch trigger, and deliveries (with redeliveries) of events for three keys over time
    spec = BatchWindow(max_events=max_events, window_ms=window_ms, key="$.detail.user")
    service, clock, wheel, tasks, _ = harness(batch=spec)
    first = run(service, clock, wheel, steps)
    # Then every distinct event is in exactly one task, with its key's events only
    payloads = [t.payload for t in tasks.made.values()]
    seen = [e["id"] for p in payloads for e in p["events"]]
    assert sorted(seen) == sorted(first)
    for p in payloads:
        assert 1 <= len(p["events"]) <= max_events
        assert {e["detail"]["user"] for e in p["events"]} == {p["key"]}
        # all of a batch arrived within its window, in arrival order
        times = [first[e["id"]][0] for e in p["events"]]
        assert times == sorted(times)
        assert times[-1] - p["window"]["opened_at"] < window_ms
        assert p["window"]["reason"] == ("full" if len(times) == max_events else "time")
    # And the reference: per key, a window opens at an event outside any open window, and takes
    # events until it is full or its time is up
    expected: list[list[str]] = []
    open_: dict[str, tuple[int, list[str]]] = {}
    for eid, (at, key) in first.items():
        current = open_.get(key)
        if current is None or at >= current[0] + window_ms:
            if current is not None:
                expected.append(current[1])
            current = open_[key] = (at, [])
        current[1].append(eid)
        if len(current[1]) == max_events:
            expected.append(current[1])
            del open_[key]
    expected += [ids for _, ids in open_.values()]
    got = sorted(sorted(e["id"] for e in p["events"]) for p in payloads)
    assert got == sorted(sorted(ids) for ids in expected), (steps, max_events, window_ms)


@PROPERTY
@given(sizes=st.lists(st.integers(0, 3_000), min_size=1, max_size=30))
def test_a_batch_never_holds_more_bytes_than_its_limit_unless_one_event_does(sizes):
    spec = BatchWindow(max_events=1_000, window_ms=60_000, key="$.detail.user", max_bytes=4_096)
    service, clock, wheel, tasks, _ = harness(batch=spec)
    run(service, clock, wheel, [(1, "u1", n) for n in range(len(sizes))], size_of=lambda n: sizes[n])
    payloads = [t.payload for t in tasks.made.values()]
    assert sum(len(p["events"]) for p in payloads) == len(sizes)
    for p in payloads:
        total = sum(len(json.dumps(e, separators=(",", ":"))) for e in p["events"])
        assert total <= 4_096 or len(p["events"]) == 1


# -- debounce -------------------------------------------------------------------------------------------
@PROPERTY
@given(steps=deliveries, window_ms=st.integers(100, 1_500), extra=st.none() | st.integers(0, 3_000))
def test_debounce_starts_one_task_per_burst_with_its_last_event(steps, window_ms, extra):
    max_wait = None if extra is None else window_ms + extra
    spec = DebounceWindow(window_ms=window_ms, key="$.detail.user", max_wait_ms=max_wait)
    service, clock, wheel, tasks, _ = harness(debounce=spec)
    first = run(service, clock, wheel, steps)
    # The reference: per key, a burst starts at an event when none is open; it ends window_ms
    # after its last event (or max_wait after its first); the task gets its last event
    bursts: list[tuple[str, int]] = []  # (last event id, end)
    open_: dict[str, list[Any]] = {}
    for eid, (at, key) in first.items():
        burst = open_.get(key)
        if burst is not None and at >= burst[2]:
            bursts.append((burst[1], burst[2]))
            burst = None
        if burst is None:
            burst = open_[key] = [
                at,
                eid,
                at + window_ms if max_wait is None else at + min(window_ms, max_wait),
            ]
        else:
            burst[1] = eid
            end = at + window_ms
            burst[2] = end if max_wait is None else min(end, burst[0] + max_wait)
    bursts += [(b[1], b[2]) for b in open_.values()]
    got = sorted((t.payload["id"], t.created_at) for t in tasks.made.values())
    assert got == sorted(bursts)


# -- correlate ------------------------------------------------------------------------------------------
@PROPERTY
@given(
    steps=deliveries,
    within=st.integers(100, 2_000),
    patterns=st.integers(2, 3),
    on_timeout=st.booleans(),
)
def test_a_correlation_completes_exactly_when_every_pattern_matched_in_time(
    steps, within, patterns, on_timeout
):
    spec = CorrelateWindow(
        within_ms=within,
        key="$.detail.user",
        events=[{"detail-type": [str(i)]} for i in range(patterns)],
        on_timeout={"target": {"type": "builtin", "name": "echo"}, "labels": {"timeout": "yes"}}
        if on_timeout
        else None,
    )
    service, clock, wheel, tasks, _ = harness(event_pattern=None, correlate=spec)
    pattern_of = lambda n: n % patterns  # noqa: E731 - an event's kind picks the rule that matched it
    first = run(service, clock, wheel, steps, pattern_of=pattern_of, kind_of=lambda n: str(n % patterns))
    # The reference: per key, a window opens at an event when none is open and lasts `within`;
    # it completes at the first event that makes every pattern matched
    complete: list[list[str]] = []
    timed_out: list[list[str]] = []
    open_: dict[str, tuple[int, list[str]]] = {}
    for eid, (at, key) in first.items():
        window = open_.get(key)
        if window is not None and at >= window[0] + within:
            timed_out.append(window[1])
            window = None
        if window is None:
            window = open_[key] = (at, [])
        window[1].append(eid)
        if {int(e[1:]) % patterns for e in window[1]} == set(range(patterns)):
            complete.append(window[1])
            del open_[key]
    timed_out += [ids for _, ids in open_.values()]
    made = list(tasks.made.values())
    got_complete = sorted(sorted(e["id"] for e in t.payload["events"]) for t in made if not t.labels)
    got_timeout = sorted(sorted(e["id"] for e in t.payload["events"]) for t in made if t.labels)
    assert got_complete == sorted(sorted(ids) for ids in complete)
    assert got_timeout == (sorted(sorted(ids) for ids in timed_out) if on_timeout else [])
    for t in made:
        p = t.payload
        assert p["window"]["reason"] == ("time" if t.labels else "complete")
        for i, matched in enumerate(p["matched"]):
            assert all(int(e[1:]) % patterns == i for e in matched)


#: A window long enough for its end to go through the wheel (ends due within NEAR_MS go to the lane).
WHEELED_MS = NEAR_MS + 1_000


def test_a_close_tried_again_starts_its_task_once():
    spec = BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.detail.user")
    service, clock, wheel, tasks, trigger = harness(batch=spec)
    service.collect(trigger, event("e1", "u1"), None)
    (entry,) = wheel.entries.values()
    clock._now = entry.due_ms
    service.delivered(end_of(entry))
    service.delivered(end_of(entry))  # delivered again (at least once)
    assert len(tasks.made) == 1 and len(service.lanes.sent) == 1


# -- a window's end delivered by its lane (the worker) ---------------------------------------------------
def delivered_end(clock: FixedClock, wheel: Wheel) -> WindowMessage:
    """The lane message the tick sends for the one window end in the wheel."""
    (entry,) = wheel.entries.values()
    return end_of(entry)


def test_a_window_end_that_comes_in_ahead_is_held_until_due_and_closes_then():
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    message = delivered_end(clock, wheel)
    clock._now = message.due_ms - 350  # sent the tick's lead ahead
    waits: list[int] = []

    def wait_until(due_ms: int) -> int:
        assert not tasks.made, "closed before its end"
        waits.append(due_ms)
        clock._now = due_ms
        return clock.now_ms()

    service.wait_until = wait_until
    assert service.delivered(message) == "closed"
    (task,) = tasks.made.values()
    assert waits == [message.due_ms] and task.created_at == message.due_ms


@pytest.mark.parametrize("early_ms", [1, 350, 2_500])
def test_a_window_end_still_early_after_its_wait_goes_round_again_and_closes_nothing(early_ms):
    # (a sleep that ended short, or no way to wait): never a close before the window's end
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    message = delivered_end(clock, wheel)
    clock._now = message.due_ms - early_ms
    service.wait_until = lambda due_ms: clock.now_ms()
    assert service.delivered(message) == "requeued"
    assert not tasks.made
    # (whole seconds that bring it back at most the lead ahead: none under 1.35 s early)
    assert service.lanes.ends == [replace(message, delay_s=max(0, early_ms - 350) // 1000)]


def test_a_window_end_far_too_early_is_sent_round_with_a_delay_not_held():
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=60_000, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    message = delivered_end(clock, wheel)  # due in 60 s (a redrive, a skewed clock)
    service.wait_until = lambda due_ms: pytest.fail("held for a minute")
    assert service.delivered(message) == "requeued"
    (again,) = service.lanes.ends
    assert again == replace(message, delay_s=(60_000 - 350) // 1000) and not tasks.made


def test_a_window_end_delivered_twice_starts_one_task():
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    message = delivered_end(clock, wheel)
    clock._now = message.due_ms
    assert service.delivered(message) == "closed"
    assert service.delivered(message) == "duplicate"
    assert len(tasks.made) == 1 and len(service.lanes.sent) == 1


def test_the_end_of_a_deleted_trigger_s_window_starts_nothing():
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    message = delivered_end(clock, wheel)
    clock._now = message.due_ms
    service.triggers = Triggers(trigger.model_copy(update={"trigger_id": "01OTHER0000000000000000000"}))
    assert service.delivered(message) == "duplicate"
    assert not tasks.made and not service.lanes.sent


@pytest.mark.parametrize(
    ("window_ms", "on_lane"), [(100, True), (NEAR_MS, True), (NEAR_MS + 1, False), (60_000, False)]
)
def test_a_window_end_due_too_soon_for_the_tick_s_lead_goes_straight_to_its_lane(window_ms, on_lane):
    service, _clock, wheel, _tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=window_ms, key="$.a")
    )
    service.collect(trigger, event("e1", "u1"), None)
    if on_lane:  # (within NEAR_MS: the tick might not read it in time to send it its lead ahead)
        (end,) = service.lanes.ends
        assert not wheel.entries and end.due_ms == T0 + window_ms
        # (delayed in whole seconds so that it arrives at most the tick's lead ahead of its end)
        assert end.delay_s == max(0, window_ms - DISPATCH_LEAD_MS) // 1000
        assert end.dispatched_at == T0
    else:
        (entry,) = wheel.entries.values()
        assert not service.lanes.ends and entry.due_ms == T0 + window_ms and entry.kind == "window"


class WatchedBudget(PayloadBudget):
    """A payload budget noting what each close took and what was in use while the events were read."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.taken: list[int] = []

    def take(self, size: int, max_wait_s: float = 60.0) -> int:
        got = super().take(size, max_wait_s)
        self.taken.append(got)
        return got


@pytest.mark.parametrize(("events", "counted"), [(3, True), (1, False)])
def test_a_large_window_s_close_holds_room_in_the_worker_s_payload_budget(events, counted):
    service, clock, wheel, tasks, trigger = harness(
        batch=BatchWindow(max_events=10, window_ms=WHEELED_MS, key="$.a", max_bytes=1_000_000)
    )
    service.has_bucket = True  # (without one a window holds at most 60 KiB)
    budget = service.payload_budget = WatchedBudget(8 * 2**20)
    for n in range(events):
        service.collect(trigger, event(f"e{n}", "u1", size=30_000), None)  # 3 x ~30 KB: over 64 KiB
    in_use: list[int] = []
    real_events = service.records.events
    service.records.events = lambda *args: (in_use.append(budget.used), real_events(*args))[1]
    (entry,) = wheel.entries.values()
    clock._now = entry.due_ms
    assert service.delivered(end_of(entry)) == "closed"
    (task,) = tasks.made.values()
    size = sum(len(json.dumps(e["detail"])) for e in task.payload["events"])
    if counted:  # the window's bytes, held while its events were read and its task made, then given back
        (taken,) = budget.taken
        assert taken > 64 * 1024 and taken >= size and in_use == [taken]
    else:
        assert budget.taken == [] and in_use == [0]
    assert budget.used == 0


def test_window_messages_round_trip_and_old_bodies_still_parse():
    message = WindowMessage(tenant="acme", window="01T.01W", due_ms=T0, lane="high", dispatched_at=T0 - 350)
    assert parse_body(message.body()) == message
    assert parse_body(replace(message, lane="default").body()) == replace(message, lane="default")
    # a task delivery and a trigger event written before window ends travelled on the lanes
    old = parse_body('{"v":1,"tenant":"acme","task_id":"01T","attempt":1,"state":"SCHEDULED","due":5}')
    assert isinstance(old, LaneMessage) and old.due_ms == 5
    event_ = parse_body('{"tenant":"acme","trigger_id":"01T","event":{"window":"x"}}')
    assert isinstance(event_, TriggerMessage)


@pytest.mark.parametrize(
    "body",
    [
        {"v": 1, "tenant": "acme", "window": "01T.01W"},
        {"v": 1, "tenant": "acme", "window": "01T01W", "due": T0},
        {"v": 1, "tenant": 7, "window": "01T.01W", "due": T0},
        {"v": 1, "tenant": "acme", "window": "01T.01W", "due": "soon"},
        {"v": 1, "tenant": "acme", "window": "01T.01W", "due": T0, "lane": 3},
        {"v": 1, "tenant": "acme", "window": "01T.01W", "due": T0, "dispatched_at": 1.5},
    ],
)
def test_a_malformed_window_message_is_refused_by_name(body):
    with pytest.raises(ValueError, match=r"window|due|lane|dispatched_at"):
        parse_body(json.dumps(body))


# -- the CLI's window options -------------------------------------------------------------------------
def test_the_cli_builds_a_windowed_trigger_body():
    from taskplane.cli import build_parser
    from taskplane.cli.triggers import trigger_body_from_args

    args = build_parser().parse_args(
        [
            "trigger",
            "create",
            "--pattern",
            '{"source": ["shop.web"]}',
            "--target",
            "builtin:echo",
            "--batch",
            "key=$.detail.user,window_ms=5000,max_events=100",
        ]
    )
    assert trigger_body_from_args(args) == {
        "task": {"target": {"type": "builtin", "name": "echo"}},
        "event_pattern": {"source": ["shop.web"]},
        "batch": {"key": "$.detail.user", "window_ms": 5000, "max_events": 100},
    }
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["trigger", "create", "--target", "builtin:echo", "--batch", "window_ms=soon"]
        )
