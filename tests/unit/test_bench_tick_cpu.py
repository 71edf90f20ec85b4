"""bench/cost.py's fit of the tick's CPU: a part per window read and a part per entry sent, stated at
a reference rate, so the figure does not depend on how long a run happened to hold the shard."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cost import TickSampler, design_reads_per_s, fit_tick_cpu

pytestmark = pytest.mark.unit


def _samples(seconds: list[tuple[int, int]], per_load_ms: float, per_entry_ms: float, noise_ms: float = 0.0):
    """Cumulative (time, CPU s, loads, sent) from per-second (loads, entries), CPU as the model says."""
    rng = random.Random(7)
    t = cpu = 0.0
    loads = sent = 0
    out = [(t, cpu, loads, sent)]
    for n_loads, n_sent in seconds:
        t += 1.0
        cpu += (per_load_ms * n_loads + per_entry_ms * n_sent + rng.uniform(-noise_ms, noise_ms)) / 1000
        loads += n_loads
        sent += n_sent
        out.append((t, cpu, loads, sent))
    return out


def test_the_fit_recovers_both_parts_whatever_the_share_of_idle_seconds() -> None:
    busy = [(10, 250)] * 40 + [(10, 80)] * 20
    for idle_seconds in (10, 60, 120):  # the held tail: the run-to-run difference the fit removes
        fit = fit_tick_cpu(_samples(busy + [(10, 0)] * idle_seconds, 2.0, 0.05, noise_ms=0.5))["cpu_fit"]
        assert fit["ms_per_window_read"] == pytest.approx(2.0, abs=0.02)
        assert fit["ms_per_entry"] == pytest.approx(0.05, abs=0.001)
        assert fit["window_reads_per_s"] == pytest.approx(10.0)
        # at 100 tasks/s: 10 reads x 2 ms + 100 x 0.05 ms per second = 0.25 ms a task
        assert fit["cpu_ms_per_task_at_reference"] == pytest.approx(0.25, abs=0.003)


def test_the_figure_is_stated_at_the_design_read_rate_not_the_runs() -> None:
    # Two runs of the same code whose loops polled at different rates (moto slowed one of them)
    slow = _samples([(5, 250)] * 30 + [(5, 80)] * 30, 2.0, 0.05)
    fast = _samples([(9, 250)] * 30 + [(9, 80)] * 30, 2.0, 0.05)
    stated = [fit_tick_cpu(s, reads_per_s=10.0)["cpu_fit"] for s in (slow, fast)]
    # Then both state the same figure at 10 reads a second; their own rates differ
    assert [f["cpu_ms_per_task_at_reference"] for f in stated] == pytest.approx([0.25, 0.25], abs=0.003)
    assert stated[0]["cpu_ms_per_task_at_run_reads"] < stated[1]["cpu_ms_per_task_at_run_reads"]
    # And the design's rate: a read every POLL_MS, a few more where a read crosses a slot's end
    from taskplane.domain.wheel import POLL_MS

    assert 1000 / POLL_MS < design_reads_per_s() < 1.1 * 1000 / POLL_MS


def test_the_run_total_per_task_would_not_have_been_stable() -> None:
    """What the fit replaces: the same model's total over tasks grows with the idle tail."""
    busy = [(10, 250)] * 40
    totals = []
    for idle_seconds in (10, 120):
        samples = _samples(busy + [(10, 0)] * idle_seconds, 2.0, 0.05)
        totals.append(samples[-1][1] * 1000 / samples[-1][3])
    assert totals[1] > 2 * totals[0]


def test_seconds_that_cannot_separate_the_parts_give_no_fit() -> None:
    # every second the same proportion of reads to entries: the two parts cannot be told apart
    assert fit_tick_cpu(_samples([(10, 100)] * 30, 2.0, 0.05))["cpu_fit"] is None
    assert fit_tick_cpu([(0.0, 0.0, 0, 0)])["cpu_fit"] is None
    # seconds where the tick did nothing at all are left out
    fit = fit_tick_cpu(_samples([(0, 0)] * 50 + [(10, 200), (10, 0)] * 10, 2.0, 0.05))["cpu_fit"]
    assert fit["seconds"] == 20


def test_the_sampler_reads_its_counters_until_stopped() -> None:
    state = {"cpu": 0.0, "loads": 0, "sent": 0}
    sampler = TickSampler(lambda: state["cpu"], lambda: state["loads"], lambda: state["sent"], every_s=0.0)
    stop = threading.Event()
    stop.set()
    sampler.run(stop)  # a first sample and a last one, even when stopped at once
    assert len(sampler.samples) == 2
    state.update(cpu=0.02, loads=10, sent=0)
    sampler.sample()
    state.update(cpu=0.05, loads=20, sent=100)
    sampler.sample()
    fit = sampler.report()["cpu_fit"]
    assert fit["ms_per_window_read"] == pytest.approx(2.0)
    assert fit["ms_per_entry"] == pytest.approx(0.1)
