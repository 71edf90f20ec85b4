"""The retry hub's pure rules: the breaker's sliding window and transitions, the duration sketch's
error bound, the adaptive timeout's clamp, and the context rule (Hypothesis over their inputs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.adapters.targets import TargetFailure
from taskplane.domain.adaptive import ALPHA, AutoTimeout, Sketch, hard_timeout, merged, slices
from taskplane.domain.breaker import (
    Breaker,
    BreakerConfig,
    BreakerState,
    Call,
    Tally,
    second_of,
    tallied,
    trip_reason,
    window,
)
from taskplane.domain.retry import BreakerPolicy, RetryPolicy, skip_by_context
from taskplane.services.breakers import CircuitBreakers

# -- the sketch ----------------------------------------------------------------------------------

durations = st.lists(st.floats(min_value=1.0, max_value=900_000.0, allow_nan=False), min_size=1, max_size=400)


@given(durations, st.floats(min_value=0.0, max_value=1.0))
def test_a_quantile_read_from_the_sketch_is_within_alpha_of_the_true_one(samples, q):
    # Given any durations (1 ms to 15 minutes) in a sketch
    sketch = Sketch()
    for ms in samples:
        sketch.add(ms)
    # When a quantile is read / Then it is within ALPHA (1%) of the sample at the same rank
    true = sorted(samples)[math.floor(q * (len(samples) - 1))]
    estimate = sketch.quantile(q)
    assert estimate is not None
    assert abs(estimate - true) <= ALPHA * true * (1 + 1e-9)


@given(durations, durations)
def test_sketches_merge_by_adding_counts(a, b):
    # Given two workers' sketches / When merged / Then it is the sketch of all the durations
    left, right, both = Sketch(), Sketch(), Sketch()
    for ms in a:
        left.add(ms)
        both.add(ms)
    for ms in b:
        right.add(ms)
        both.add(ms)
    assert merged([left.counts, right.counts]).counts == both.counts


def test_an_empty_sketch_has_no_quantile_and_sub_millisecond_calls_count_as_one():
    assert Sketch().quantile(0.99) is None
    s = Sketch()
    s.add(0.2)
    assert s.quantile(0.5) == 1.0


def test_a_window_is_whole_minutes_ending_with_the_current_one():
    assert slices(60_000 * 10 + 5, 300) == [60_000 * i for i in range(5, 11)]


# -- the adaptive timeout ------------------------------------------------------------------------


@given(
    st.floats(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=900),
    st.integers(min_value=1, max_value=900),
    st.floats(min_value=1.0, max_value=2_000_000.0),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=60),
)
def test_the_auto_timeout_is_k_times_the_percentile_clamped(k, a, b, ms, n, min_samples):
    # Given any policy whose floor is not above its ceiling, and n durations of ms
    floor_s, ceiling_s = min(a, b), max(a, b)
    policy = AutoTimeout(k=k, floor_s=floor_s, ceiling_s=ceiling_s, min_samples=min_samples)
    sketch = Sketch()
    sketch.add(ms, n)
    # When the hard timeout is derived
    chosen = hard_timeout(policy, sketch)
    # Then it is within [floor, ceiling]; the ceiling with too few samples; else clamp(k x p)
    assert floor_s <= chosen.seconds <= ceiling_s
    if n < min_samples:
        assert chosen.seconds == ceiling_s and chosen.percentile_ms is None
    else:
        assert chosen.percentile_ms is not None
        expected = min(ceiling_s, max(floor_s, math.ceil(k * chosen.percentile_ms) / 1000))
        assert chosen.seconds == expected
        assert abs(chosen.percentile_ms - ms) <= ALPHA * ms * (1 + 1e-9)


def test_a_floor_above_the_ceiling_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"floor_s must be <= auto_timeout\.ceiling_s"):
        AutoTimeout(floor_s=60, ceiling_s=30)


# -- the context rule ----------------------------------------------------------------------------


@given(
    st.booleans(),
    st.integers(0, 10_000),
    st.integers(0, 20_000),
    st.one_of(st.none(), st.integers(0, 20_000)),
)
def test_only_a_non_critical_task_short_of_time_skips_its_retries(critical, min_remaining, now, deadline):
    policy = RetryPolicy(critical=critical, min_remaining_ms=min_remaining)
    expected = (not critical) and deadline is not None and deadline - now < min_remaining
    assert skip_by_context(policy, now, deadline) is expected


# -- the breaker ---------------------------------------------------------------------------------


@given(
    st.dictionaries(st.integers(0, 60), st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=40),
    st.integers(0, 70_000),
    st.sampled_from([1_000, 5_000, 10_000, 30_000]),
    st.integers(0, 60),
)
def test_the_window_counts_whole_seconds_within_it_after_the_last_close(raw, now_ms, window_ms, since):
    buckets = {s: (c + e, e) for s, (c, e) in raw.items()}  # errors never exceed calls
    b = Breaker("k", buckets=buckets, since_s=since)
    now_s = now_ms // 1000
    inside = [v for s, v in buckets.items() if now_s - window_ms // 1000 < s <= now_s and s > since]
    assert window(b, now_ms, BreakerPolicy(window_ms=window_ms)) == (
        sum(c for c, _ in inside),
        sum(e for _, e in inside),
    )


@dataclass
class MemoryBreakers:
    """The BreakerRecords port in memory, with the adapters' semantics (contract-tested on both)."""

    records: dict[str, Breaker] = field(default_factory=dict)
    reads: int = 0
    counts: int = 0

    def get(self, key: str) -> Breaker:
        self.reads += 1
        return self.records.get(key, Breaker(key=key))

    def count(self, key: str, tally: Tally, stale: list[int]) -> Breaker:
        self.counts += 1
        b = tallied(self.records.get(key, Breaker(key=key)), tally, stale)
        self.records[key] = b
        return b

    def replace(self, old: Breaker, new: Breaker) -> bool:
        current = self.records.get(new.key, Breaker(key=new.key))
        if current.version != old.version:
            return False
        self.records[new.key] = replace(new, buckets=current.buckets)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000_000

    def now_ms(self) -> int:
        return self.now


TARGET = {"type": "lambda", "function": "f"}
#: (wait ms, how the call would end, whether its delivery batch ends after it)
events = st.lists(
    st.tuples(st.integers(0, 4_000), st.sampled_from([Call.OK, Call.ERROR, Call.TIMEOUT]), st.booleans()),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    events,
    st.sampled_from([0.25, 0.5, 0.75]),
    st.integers(1, 6),
    st.integers(1, 4),
    st.sampled_from([2_000, 10_000]),
)
def test_breaker_transitions_follow_the_rules_against_a_model(calls, rate, min_calls, timeouts, window_ms):
    # Given a breaker with any rules, and any sequence of (wait, how the call would end, end of batch)
    policy = BreakerPolicy(
        window_ms=window_ms,
        error_rate=rate,
        min_calls=min_calls,
        consecutive_timeouts=timeouts,
        open_ms=5_000,
    )
    clock = Clock()
    store = MemoryBreakers()
    hub = CircuitBreakers(store, clock.now_ms, BreakerConfig(default=policy))
    # The model: raw (time, call) since the last close, the batch's calls not yet written, the
    # state, when it opened. Calls are counted, and the rules checked, only at the batch's end.
    seen: list[tuple[int, Call]] = []
    batch: list[tuple[int, Call]] = []
    state, opened_at, streak, closed_s = "closed", 0, 0, 0
    for wait, call, batch_ends in calls:
        clock.now += wait
        now = clock.now
        try:
            guard = hub.before("acme", TARGET)
        except TargetFailure as exc:
            # Then a call is refused only while open (before open_ms) or while a probe is out
            assert exc.error_type == "CircuitOpen"
            assert state == "open" and now - opened_at < policy.open_ms
            guard = None
        if guard is not None and state == "open":
            # Then after open_ms exactly this caller probes, and its outcome is written at once
            assert guard.probe and now - opened_at >= policy.open_ms
            hub.after(guard, call)
            if call is Call.OK:
                state, seen, streak, closed_s = "closed", [], 0, second_of(now)
            else:
                opened_at = now
            assert store.get("acme#lambda:f").state.value == state
        elif guard is not None:
            assert not guard.probe
            hub.after(guard, call)
            batch.append((now, call))
        if not batch_ends:
            continue
        # When the batch ends: one write for its calls, then the rules on what it returned
        writes_before = store.counts
        hub.flush()
        assert store.counts == writes_before + (1 if batch else 0)
        for _, c in batch:
            streak = streak + 1 if c is Call.TIMEOUT else 0
        seen += batch
        batch = []
        if state != "closed":
            continue
        now_s = second_of(now)
        recent = [
            c
            for t, c in seen
            if now_s - window_ms // 1000 < second_of(t) <= now_s and second_of(t) > closed_s
        ]
        errors = sum(c is not Call.OK for c in recent)
        should_open = streak >= timeouts or (len(recent) >= min_calls and errors > rate * len(recent))
        if should_open:
            state, opened_at = "open", now
        record = store.get("acme#lambda:f")
        assert (record.state is BreakerState.OPEN) == should_open, (record, recent, streak)
        if should_open:
            assert trip_reason(record, now, policy) is not None


def test_a_batch_reads_each_breaker_once_and_writes_once_at_its_end():
    # Given a closed breaker and a hub whose cache starts empty
    clock = Clock()
    store = MemoryBreakers()
    hub = CircuitBreakers(store, clock.now_ms, BreakerConfig(default=BreakerPolicy(min_calls=100)))
    # When a batch makes 10 calls through it
    for i in range(10):
        guard = hub.before("acme", TARGET)
        clock.now += 30
        hub.after(guard, Call.ERROR if i % 2 else Call.OK)
    # Then it was read once and nothing was written yet
    assert (store.reads, store.counts) == (1, 0)
    # When the batch ends / Then one write holds all 10 calls
    assert hub.flush() == (1, [])
    assert sum(c for c, _ in store.records["acme#lambda:f"].buckets.values()) == 10
    # And the next batch, a moment later, reuses the record the flush wrote; a later one reads again
    hub.before("acme", TARGET)
    assert store.reads == 1
    hub.flush()
    clock.now += 1_000
    hub.before("acme", TARGET)
    assert store.reads == 2
    # And records no batch may use any more are forgotten (a long-lived process calls many targets)
    hub.flush()
    clock.now += 5_000
    hub.flush()
    assert hub._cache == {} and hub._reading == {}


def test_timeouts_in_a_row_span_batches_and_any_answer_resets_the_run():
    # Given a breaker that opens at 3 timeouts in a row (the window rule out of reach)
    clock = Clock()
    store = MemoryBreakers()
    hub = CircuitBreakers(store, clock.now_ms, BreakerConfig(default=BreakerPolicy(min_calls=1000)))

    def batch(*calls: Call) -> None:
        for call in calls:
            hub.after(hub.before("acme", TARGET), call)
        hub.flush()
        clock.now += 2_000

    # When a batch ends in 2 timeouts after an answer, and the next starts with an answer
    batch(Call.TIMEOUT, Call.OK, Call.TIMEOUT, Call.TIMEOUT)
    assert store.records["acme#lambda:f"].timeouts == 2
    batch(Call.OK, Call.TIMEOUT)
    # Then the run restarted from the batch's trailing timeouts
    assert store.records["acme#lambda:f"].timeouts == 1
    # When two batches of timeouts follow / Then the run adds up across them and opens it at 3
    batch(Call.TIMEOUT)
    assert store.records["acme#lambda:f"].state is BreakerState.CLOSED
    batch(Call.TIMEOUT)
    assert store.records["acme#lambda:f"].state is BreakerState.OPEN
    assert store.records["acme#lambda:f"].reason == "3 timeouts in a row"


def test_a_flush_that_fails_loses_the_counts_and_never_raises():
    # Given a store whose counting write fails
    clock = Clock()
    store = MemoryBreakers()
    hub = CircuitBreakers(store, clock.now_ms, BreakerConfig(default=BreakerPolicy(min_calls=1)))

    def down(key: str, tally: Tally, stale: list[int]) -> Breaker:
        raise ConnectionError("table unreachable")

    for _ in range(3):
        hub.after(hub.before("acme", TARGET), Call.ERROR)
    real = store.count
    store.count = down  # type: ignore[method-assign]
    # When the batch ends / Then nothing is written, nothing raised, and nothing opened
    assert hub.flush() == (0, [])
    assert store.records == {}
    # And the next batch reads the record afresh (a failed write drops the cached one), counts and
    # writes only its own calls
    store.count = real  # type: ignore[method-assign]
    reads = store.reads
    hub.after(hub.before("acme", TARGET), Call.ERROR)
    assert store.reads == reads + 1
    writes, changes = hub.flush()
    assert writes == 2 and [c.metric for c in changes] == ["breaker_opened"]
    assert store.records["acme#lambda:f"].buckets == {second_of(clock.now): (1, 1)}


def test_calls_of_one_batch_on_threads_are_all_counted_in_one_write():
    # Given 8 threads each making 25 calls through the same breaker in one batch
    import threading

    clock = Clock()
    store = MemoryBreakers()
    hub = CircuitBreakers(store, clock.now_ms, BreakerConfig(default=BreakerPolicy(min_calls=1000)))

    def calls() -> None:
        for _ in range(25):
            hub.after(hub.before("acme", TARGET), Call.OK)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # When the batch ends / Then one read, one write, 200 calls
    assert hub.flush()[0] == 1 and store.reads == 1
    assert store.records["acme#lambda:f"].buckets == {second_of(clock.now): (200, 0)}


def test_a_long_target_name_is_shortened_to_fit_a_partition_key_and_stays_distinct():
    from taskplane.domain.breaker import MAX_KEY_CHARS, breaker_key

    base = "https://sqs.us-east-1.amazonaws.com/123456789012/" + "q" * 1900
    a = breaker_key({"type": "sqs", "queue_url": base + "a"})
    b = breaker_key({"type": "sqs", "queue_url": base + "b"})
    assert a is not None and b is not None and a != b
    assert len(a) == MAX_KEY_CHARS and len(b) == MAX_KEY_CHARS
    assert breaker_key({"type": "lambda", "function": "f"}) == "lambda:f"


@pytest.mark.parametrize("url", ["http://h:99999999/", "http://h:http/", "http://[::1"])
def test_a_stored_url_the_door_now_refuses_still_has_a_breaker_key(url):
    # Given an http target accepted before the door checked its port (a stored task, schedule, node)
    from taskplane.domain.breaker import breaker_key

    # When its breaker key is taken (by the worker, before the attempt)
    key = breaker_key({"type": "http", "url": url})
    # Then it is a key, not an exception that would leave the attempt RUNNING for its watch to end
    assert key is not None and key.startswith("http:")
