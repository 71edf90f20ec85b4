"""Retry context, fallbacks and adaptive timeouts through the worker (moto)."""

from __future__ import annotations

from typing import Any

import pytest
from test_retry_hub import HTTP, Counted, Flaky, fixed_clock, history, run_one

from taskplane.domain.adaptive import SLICE_MS, Sketch
from taskplane.domain.clock import to_rfc3339
from taskplane.domain.states import TaskState
from taskplane.services.execute import Outcome
from taskplane.services.latency import FLUSH_EVERY_MS

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}


class Recording(Flaky):
    """Fails the task's own target while ``down``; answers any other target (a fallback) and keeps
    what each call received."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[dict, dict, float]] = []

    def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **k: Any) -> Any:
        self.seen.append((target, envelope, timeout_s))
        if target.get("url") != HTTP["url"]:
            return {"degraded": True, "for": envelope["task_id"]}
        return super().run(target, envelope, timeout_s, cancel, **k)


@fixed_clock
def test_a_non_critical_task_short_of_time_is_not_retried_and_goes_to_its_fallback(aws):
    # Given a non-critical task with 5 retries, 30 s before its deadline, wanting 60 s left to retry
    clock = aws.platform.tasks.clock
    aws.platform.executor.telemetry = counted = Counted()
    aws.platform.executor.runners = runner = Recording()
    fallback = {"type": "http", "url": "https://cache.example/stale", "method": "POST"}
    body = {
        "target": HTTP,
        "timeout_s": 5,
        "deadline": to_rfc3339(clock.now_ms() + 30_000),
        "retry": {"max_attempts": 5, "critical": False, "min_remaining_ms": 60_000, "fallback": fallback},
    }
    # When its first attempt fails
    task_id, outcome = run_one(aws, body)
    # Then it is not retried: the fallback ran once, with the failure, and its result is recorded
    assert outcome is Outcome.FAILED and runner.calls == 1
    (_, envelope, _) = runner.seen[-1]
    assert runner.seen[-1][0]["url"] == fallback["url"] and envelope["fallback"] is True
    assert envelope["error"]["type"] == "HttpError"
    task = aws.platform.tasks.get("acme", task_id)
    assert task.state is TaskState.FAILED and task.error.type == "HttpError"
    assert task.fallback["state"] == "SUCCEEDED" and task.fallback["result"] == {
        "degraded": True,
        "for": task_id,
    }
    text = history(aws, task_id)
    assert "retry skipped: not critical, 30000 ms left before the deadline (min_remaining_ms=60000)" in text
    assert "fallback called: it succeeded" in text
    assert {"retry_skipped", "fallback_succeeded"} <= set(counted.names)
    # And the API shows it, and the dead letter keeps both outcomes
    view = task.to_api()
    assert view["fallback"]["state"] == "SUCCEEDED" and view["error"]["type"] == "HttpError"
    dead = aws.platform.dead_letters.records.get("acme", task_id)
    assert dead.error["type"] == "HttpError" and dead.fallback["result"]["degraded"] is True
    assert dead.reason == "HttpError: retry skipped by context"


@fixed_clock
def test_a_critical_task_in_the_same_spot_is_retried(aws):
    # Given the same task, critical (the default)
    clock = aws.platform.tasks.clock
    aws.platform.executor.runners = Recording()
    body = {
        "target": HTTP,
        "timeout_s": 5,
        "deadline": to_rfc3339(clock.now_ms() + 30_000),
        "retry": {
            "max_attempts": 5,
            "min_remaining_ms": 60_000,
            "base_delay_ms": 2_000,
            "jitter": "none",
            "fallback": ECHO,
        },
    }
    # When its first attempt fails / Then it is retried, and no fallback ran
    task_id, outcome = run_one(aws, body)
    assert outcome is Outcome.RETRYING
    assert aws.platform.tasks.get("acme", task_id).fallback is None


@fixed_clock
def test_exhausted_retries_call_the_fallback_and_a_failing_fallback_is_recorded(aws):
    # Given a task with one attempt whose fallback fails too
    aws.platform.executor.telemetry = counted = Counted()
    aws.platform.executor.runners = Recording()
    fail = {"type": "builtin", "name": "fail"}

    class FallbackDown(Recording):
        def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **k: Any) -> Any:
            if target == fail:
                from taskplane.adapters.targets import TargetFailure

                raise TargetFailure("Failed", "fallback is down too", retryable=True)
            return super().run(target, envelope, timeout_s, cancel, **k)

    aws.platform.executor.runners = FallbackDown()
    # When it fails
    task_id, outcome = run_one(aws, {"target": HTTP, "retry": {"max_attempts": 1, "fallback": fail}})
    # Then it is FAILED with both failures recorded, on the task and in the dead letter
    task = aws.platform.tasks.get("acme", task_id)
    assert outcome is Outcome.FAILED and task.fallback["state"] == "FAILED"
    assert task.fallback["error"] == {"type": "Failed", "message": "fallback is down too"}
    assert "fallback called: failed (Failed: fallback is down too)" in history(aws, task_id)
    dead = aws.platform.dead_letters.records.get("acme", task_id)
    assert dead.error["type"] == "HttpError" and dead.fallback["state"] == "FAILED"
    assert "fallback_failed" in counted.names


@fixed_clock
def test_a_fallback_is_never_called_twice(aws):
    # Given a task whose fallback was claimed by a worker that then stopped
    aws.platform.executor.runners = runner = Recording()
    body = {"target": HTTP, "retry": {"max_attempts": 1, "fallback": ECHO}}
    store = aws.platform.executor.store
    real = store.claim_fallback

    def claimed_then_died(tenant: str, task_id: str, attempts: int, at_ms: int) -> bool:
        assert real(tenant, task_id, attempts, at_ms)  # the first worker's claim
        return real(tenant, task_id, attempts, at_ms)  # what the next worker finds

    store.claim_fallback = claimed_then_died
    # When the attempt ends
    task_id, _ = run_one(aws, body)
    # Then the fallback was not called again: its outcome is recorded as unknown
    assert [t["url"] for t, _, _ in runner.seen] == [HTTP["url"]]
    assert aws.platform.tasks.get("acme", task_id).fallback["state"] == "UNKNOWN"


@fixed_clock
def test_a_fallback_off_the_allow_list_by_run_time_is_refused_not_called(aws):
    # Given a fallback the tenant's policy no longer allows
    from taskplane.domain.allowlist import TargetPolicy

    aws.platform.executor.runners = runner = Recording()
    aws.platform.executor.targets = TargetPolicy(allowlists={"acme": ["http:pay.example"]})
    fallback = {"type": "lambda", "function": "not-allowed"}
    task_id, _ = run_one(aws, {"target": HTTP, "retry": {"max_attempts": 1, "fallback": fallback}})
    # Then it is recorded as refused, never called
    assert [t["url"] for t, _, _ in runner.seen] == [HTTP["url"]]
    assert aws.platform.tasks.get("acme", task_id).fallback["error"]["type"] == "TargetRefused"


def seed_durations(aws: Any, target: str, ms: float, n: int) -> None:
    """Durations a worker measured (as its flush writes them) in the current minute."""
    sketch = Sketch()
    sketch.add(ms, n)
    now = aws.platform.tasks.clock.now_ms()
    slice_ms = now - now % SLICE_MS
    aws.platform.executor.latencies.store.add(
        "acme", target, slice_ms, sketch.counts, slice_ms // 1000 + 3600
    )


@fixed_clock
def test_auto_timeout_follows_the_targets_p99_within_floor_and_ceiling(aws):
    # Given 100 calls to the target took 2 s each (and another tenant's took 100 s)
    aws.platform.executor.runners = runner = Recording()
    runner.down = False
    seed_durations(aws, "http:pay.example:", 2_000, 100)
    body = {"target": HTTP, "timeout_s": "auto", "auto_timeout": {"k": 3, "floor_s": 1, "ceiling_s": 60}}
    # When an auto task runs
    task_id, outcome = run_one(aws, body)
    # Then its attempt ran with 3 x p99 (2 s, within the sketch's 1%) as its hard timeout
    assert outcome is Outcome.SUCCEEDED
    limit = runner.seen[-1][2]
    assert 6.0 * 0.99 <= limit <= 6.0 * 1.01
    assert f"timeout {limit:g} s (auto: 3 x p99 " in history(aws, task_id)
    view = aws.platform.tasks.get("acme", task_id).to_api()
    assert view["timeout_s"] == "auto" and view["auto_timeout"]["ceiling_s"] == 60
    # And a tighter ceiling wins over the percentile
    body["auto_timeout"] = {"k": 3, "ceiling_s": 4}
    run_one(aws, body)
    assert runner.seen[-1][2] == 4.0


@fixed_clock
def test_auto_timeout_with_too_few_samples_is_the_ceiling_and_attempts_feed_the_sketch(aws):
    # Given a target never measured (its calls all measured at 0 ms: in one bucket of the sketch,
    # however slow this machine is, so the counts of writes below do not depend on its speed)
    aws.platform.executor.runners = runner = Recording()
    aws.platform.executor.timer = lambda: 0.0
    runner.down = False
    body = {"target": HTTP, "timeout_s": "auto", "auto_timeout": {"ceiling_s": 45, "min_samples": 5}}
    # When an auto task runs
    task_id, _ = run_one(aws, body, flush=False)
    # Then it had the ceiling, saying why
    assert runner.seen[-1][2] == 45.0
    assert "timeout 45 s (auto: 0 of 5 samples, the ceiling)" in history(aws, task_id)
    # When the worker flushes its batch's durations / Then the stats show this tenant's target
    # (the tenant's list of targets, the target's list of sketch parts, the one part of the minute its
    # duration falls in, and the breaker's count of the batch's calls)
    assert aws.platform.executor.flush() == 4
    from taskplane.services.stats import StatsService

    stats = StatsService(
        tasks=aws.platform.tasks,
        depths=aws.platform.tasks.admission.depths,
        clock=aws.platform.tasks.clock,
        latencies=aws.platform.executor.latencies,
        breakers=aws.platform.executor.breakers,
    )
    (row,) = stats.targets("acme")
    assert row["target"] == "http:pay.example:" and row["samples"] == 1
    assert row["breaker"]["state"] == "closed" and row["breaker"]["window_calls"] == 1
    assert stats.targets("globex") == []
    # When the next batch ends a moment later / Then only the breaker is written (every batch: its
    # rules are exact); the duration waits in memory for the target's next sketch write
    clock = aws.platform.tasks.clock
    clock.advance(1_000)
    run_one(aws, body, flush=False)
    assert aws.platform.executor.flush() == 1
    (row,) = stats.targets("acme")
    assert row["samples"] == 1 and row["breaker"]["window_calls"] == 2
    # When FLUSH_EVERY_MS has passed since the target's last sketch write / Then the batch's end
    # writes both waiting durations (one ADD to the minute's part) and the breaker's count
    clock.advance(FLUSH_EVERY_MS)
    run_one(aws, body, flush=False)
    assert aws.platform.executor.flush() == 2
    (row,) = stats.targets("acme")
    assert row["samples"] == 3


@fixed_clock
def test_a_fallback_ends_before_the_attempts_watch_would_count_it_abandoned(aws):
    # Given a long task (it heartbeats: its watch looks for a beat every 3 minutes) with a fallback
    aws.platform.executor.runners = runner = Recording()
    aws.platform.executor.heartbeat_ms = 60_000
    body = {"target": HTTP, "timeout_s": 600, "retry": {"max_attempts": 1, "fallback": ECHO}}
    # When its only attempt fails at once
    run_one(aws, body)
    # Then the fallback got the time left before a watch would find no recent beat (180 - 60 s, less 1 s),
    # not the task's 600 s; a short task's fallback gets its timeout_s
    assert runner.seen[-1][0] == ECHO and runner.seen[-1][2] == 119.0
    run_one(aws, {**body, "timeout_s": 20})
    assert runner.seen[-1][2] == 20.0


@fixed_clock
def test_a_long_call_heartbeats_from_its_first_interval_and_a_short_one_starts_no_thread(aws, monkeypatch):
    import time

    executor = aws.platform.executor
    executor.heartbeat_ms = 20  # (real time: the beats come from their own thread)
    beats: list[tuple[Any, ...]] = []
    heartbeat = executor.store.heartbeat

    def counted_beat(*args: Any, **kwargs: Any) -> bool:
        beats.append(args)
        return heartbeat(*args, **kwargs)

    monkeypatch.setattr(executor.store, "heartbeat", counted_beat)
    threads: list[Any] = []
    beat = executor._beat

    def counted_thread(*args: Any) -> None:
        threads.append(args)
        beat(*args)

    monkeypatch.setattr(executor, "_beat", counted_thread)

    class Slow:
        """Answers once its attempt has beaten twice (or after 10 s, to fail rather than hang)."""

        def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **k: Any) -> Any:
            deadline = time.monotonic() + 10
            while len(beats) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            return {"ok": True}

    body = {"target": HTTP, "timeout_s": 600}  # long enough to need heartbeats (over STALE_MS)
    # Given a call that runs past its first heartbeat interval
    executor.runners = Slow()
    task_id, outcome = run_one(aws, body)
    # Then its attempt beat (a thread of its own, started once the interval had passed) and succeeded
    assert outcome is Outcome.SUCCEEDED and len(threads) == 1 and len(beats) >= 2
    assert aws.platform.tasks.get("acme", task_id).heartbeat_at is not None
    # When a call answers at once / Then no heartbeat thread is started for it
    executor.runners = runner = Recording()
    runner.down = False
    assert run_one(aws, body)[1] is Outcome.SUCCEEDED
    assert len(threads) == 1
