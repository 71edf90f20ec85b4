"""bench/wheel_lateness.py's Throttle: a throttled tick is charged its real adapters' CPU per entry."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import wheel_lateness
from wheel_lateness import Throttle, Throttled

pytestmark = pytest.mark.unit


class Adapter:
    """A fake adapter: ``load`` returns ``n`` entries, ``send`` takes messages; neither costs anything."""

    def load(self, n: int) -> list[int]:
        return list(range(n))

    def send(self, messages: list[int]) -> list[None]:
        return [None] * len(messages)


class FakeTime:
    """The Throttle's clocks, moved by hand: ``cpu`` is the calling thread's CPU (time.thread_time),
    ``slept`` what it was asked to sleep; the wall clock stands still."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.slept: list[float] = []

    def thread_time(self) -> float:
        return self.cpu

    def monotonic(self) -> float:
        return 100.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_tick_is_charged_the_real_cpu_per_entry_read_less_what_its_own_code_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeTime()
    monkeypatch.setattr(wheel_lateness, "time", clock)
    throttle = Throttle(1769, real_ms=2.0, send_ms=0.5)  # a full vCPU: what is owed is slept as is
    adapter = Throttled(Adapter(), throttle)
    adapter.load(10)  # no CPU of ours yet: the ten entries' real CPU is charged whole
    assert (throttle.read, throttle.charged_read_s) == (10, pytest.approx(0.020))
    clock.cpu += 0.004  # our code spends 4 ms (the heap, the batches)
    adapter.send(list(range(10)))  # 0.5 ms per message, whatever the read charged
    assert (throttle.sent, throttle.charged_send_s) == (10, pytest.approx(0.005))
    assert throttle.own_s == pytest.approx(0.004)
    clock.cpu += 0.001
    adapter.load(5)  # 30 ms owed for 15 entries: 20 charged, 5 ours, 5 at the send: 0 more
    assert throttle.charged_read_s == pytest.approx(0.020)
    clock.cpu += 0.001
    adapter.load(10)  # 50 ms owed for 25: 20 + 6 ours + 5 at the send so far: 19 more
    assert throttle.charged_read_s == pytest.approx(0.039)
    # Over the run: our code's CPU + what was charged = the real CPU per entry read, nothing twice.
    report = throttle.report()
    assert report["entries_read"] == 25 and report["messages_sent"] == 10
    assert report["cpu_ms_per_entry"] == pytest.approx(2.0)
    assert report["own_cpu_ms_per_entry"] == pytest.approx(0.24)
    # Every part of it on the tick's quota at the share (here all of it): 50 ms after the wall clock.
    assert throttle.busy_until == pytest.approx(100.05)


def test_without_a_real_figure_nothing_is_charged_and_a_send_costs_nothing() -> None:
    throttle = Throttle(1769, send_ms=0.5)
    adapter = Throttled(Adapter(), throttle)
    adapter.load(10)
    adapter.send([1, 2, 3])
    assert (throttle.charged_read_s, throttle.charged_send_s) == (0.0, 0.0)


def test_the_threads_of_one_tick_share_its_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads each owing 20 ms of CPU at a quarter of a vCPU: the first waits 80 ms, the second
    160 ms (its turn on the tick's one quota comes after the first's), on a clock that stands still."""
    clock = FakeTime()
    monkeypatch.setattr(wheel_lateness, "time", clock)
    throttle = Throttle(1769)
    throttle.share = 0.25
    for _ in range(2):
        thread = threading.Thread(target=throttle.pay, args=(0.020,))
        thread.start()
        thread.join()
    assert clock.slept == [pytest.approx(0.08), pytest.approx(0.16)]
    assert throttle.busy_until == pytest.approx(100.16)


def test_the_charges_come_from_cost_json_and_tick_reads_json(tmp_path: Path) -> None:
    assert wheel_lateness._adapter_cpu(tmp_path) == {}
    (tmp_path / "cost.json").write_text(json.dumps({"tick": {"cpu_ms_per_task": 0.211}}))
    assert wheel_lateness._adapter_cpu(tmp_path) == {"real_ms": 0.211}
    (tmp_path / "tick_reads.json").write_text(json.dumps({"send_10_ms": 0.5052}))
    assert wheel_lateness._adapter_cpu(tmp_path) == {"real_ms": 0.211, "send_ms": 0.0505}
