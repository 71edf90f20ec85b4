"""How often a process writes its duration sketches (services/latency.py): a target it has not written
yet at once, then at most once per FLUSH_EVERY_MS, every sample into the minute it was measured in."""

from __future__ import annotations

from collections.abc import Mapping

from taskplane.domain.adaptive import MAX_WINDOW_S, SLICE_MS, AutoTimeout, bucket_of
from taskplane.services.latency import FLUSH_EVERY_MS, Latencies

A = {"type": "http", "url": "https://a.example/x"}
B = {"type": "http", "url": "https://b.example/x"}


class Store:
    def __init__(self) -> None:
        self.adds: list[tuple[str, str, int, dict[int, int]]] = []
        self.fail = False

    def add(self, tenant: str, target: str, slice_ms: int, counts: Mapping[int, int], expires_at: int) -> int:
        if self.fail:
            raise RuntimeError("throttled")
        self.adds.append((tenant, target, slice_ms, dict(counts)))
        return 1

    def read_many(self, tenant: str, wanted: Mapping[str, list[int]]) -> dict[str, list[dict[int, int]]]:
        return {t: [] for t in wanted}

    def remember(self, tenant: str, target: str) -> None:
        pass

    def targets(self, tenant: str) -> list[str]:
        return []


def make(start: int = 10 * SLICE_MS) -> tuple[Latencies, Store, list[int]]:
    now = [start]
    store = Store()
    return Latencies(store, lambda: now[0]), store, now


def test_a_new_target_is_written_at_once_then_at_most_once_per_interval():
    lat, store, now = make()
    # Given a first duration of target A / Then the batch's flush writes it (and lists the target)
    lat.record("acme", A, 100.0)
    assert lat.flush() == 2 and [a[1] for a in store.adds] == ["http:a.example:"]
    # When batches end every second for less than the interval / Then nothing more is written
    for _ in range(FLUSH_EVERY_MS // 1_000 - 1):
        now[0] += 1_000
        lat.record("acme", A, 200.0)
        assert lat.flush() == 0
    # And a target new to this process is written at once, beside A's waiting durations
    lat.record("acme", B, 50.0)
    assert lat.flush() == 2 and store.adds[-1][1] == "http:b.example:"
    # When the interval has passed since A's write / Then one write carries every waiting duration
    now[0] += 1_000
    assert lat.flush() == 1
    assert store.adds[-1][1:] == (
        "http:a.example:",
        10 * SLICE_MS,
        {bucket_of(200.0): FLUSH_EVERY_MS // 1_000 - 1},
    )


def test_waiting_durations_go_to_the_minute_they_were_measured_in_and_force_writes_all():
    lat, store, now = make()
    lat.record("acme", A, 100.0)
    lat.flush()
    # Given durations on both sides of a minute's end, within the interval
    now[0] += SLICE_MS - 1_000
    lat.record("acme", A, 100.0)
    now[0] += 2_000
    lat.record("acme", A, 100.0)
    # When the process is asked to write everything (as at shutdown) / Then one write per minute
    assert lat.flush(force=True) == 2
    assert sorted(a[2] for a in store.adds[1:]) == [10 * SLICE_MS, 11 * SLICE_MS]


def test_durations_no_window_can_read_are_dropped_not_written():
    lat, store, now = make()
    lat.record("acme", A, 100.0)
    lat.flush()
    lat.record("acme", A, 100.0)
    # Given an instance frozen longer than the longest window with a duration waiting / When it thaws
    now[0] += (MAX_WINDOW_S + 120) * 1_000
    lat.record("acme", A, 300.0)
    # Then only the fresh duration is written: the old minute is out of every window
    assert lat.flush() == 1
    assert store.adds[-1][2:] == (now[0] - now[0] % SLICE_MS, {bucket_of(300.0): 1})


def test_a_failed_write_loses_its_durations_and_never_raises():
    lat, store, now = make()
    store.fail = True
    lat.record("acme", A, 100.0)
    assert lat.flush() == 1  # the target's listing; the write of its durations failed
    store.fail = False
    now[0] += FLUSH_EVERY_MS
    assert lat.flush() == 0 and store.adds == []


def test_a_process_forgets_targets_it_has_not_used_lately():
    # Given a warm process that meets 10,000 different hosts over a few minutes (a wildcard allow-list)
    from taskplane.services.latency import MAX_TRACKED

    latencies, store, now = make()
    for i in range(10_000):
        target = {"type": "http", "url": f"https://h{i}.example/x"}
        latencies.record("acme", target, 12.0)
        latencies.flush()
        latencies.timeout_for("acme", target, AutoTimeout())
        now[0] += 20  # 200 s in all
    # Then what it holds stays bounded, and every host was still written once, at once
    assert len(latencies._written) <= MAX_TRACKED + 1
    assert len(latencies._known) <= MAX_TRACKED + 1
    assert len(latencies._cache) <= MAX_TRACKED + 1
    assert len(store.adds) == 10_000
    # And a host it used lately is still remembered: its next duration waits for its next write
    recent = {"type": "http", "url": "https://h9999.example/x"}
    latencies.record("acme", recent, 12.0)
    assert latencies.flush() == 0
