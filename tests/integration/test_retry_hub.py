"""Retry hub: per-target circuit breakers shared through DynamoDB, deadline-aware attempts."""

from __future__ import annotations

from typing import Any

import pytest

from taskplane.adapters.targets import TargetFailure
from taskplane.domain.clock import FixedClock
from taskplane.domain.models import TaskSubmit
from taskplane.domain.states import TaskState
from taskplane.services.execute import Outcome

pytestmark = pytest.mark.integration

fixed_clock = pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed"])
HTTP = {"type": "http", "url": "https://pay.example/charge", "method": "POST"}


class Flaky:
    """An HTTP target that answers 503 while ``down`` and counts the calls that reached it."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        self.calls += 1
        if self.down:
            raise TargetFailure("HttpError", "503 Service Unavailable", retryable=True)
        return {"ok": True}


def run_one(aws: Any, body: dict[str, Any], *, flush: bool = True) -> tuple[str, Outcome]:
    """Submit a task and run its delivery as a batch of one (flushed at its end, as the worker does)."""
    task, _ = aws.platform.tasks.submit("acme", TaskSubmit.model_validate(body))
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    from taskplane.adapters.queues import parse_body

    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        delivery = parse_body(m["Body"])
        if delivery.task_id == task.task_id:
            outcome = aws.platform.executor.handle(delivery)
            if flush:
                aws.platform.executor.flush()
            return task.task_id, outcome
    raise AssertionError("no delivery")


class Counted:
    """A Telemetry that keeps every count (the platform's metrics port)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def count(self, name: str, **dims: Any) -> None:
        self.names.append(name)

    def duration_ms(self, ms: float, **dims: Any) -> None:
        return None


#: Opens at a window error rate over 50% once 4 calls were made, or after 3 timeouts in a row.
RULES = {"window_ms": 10_000, "error_rate": 0.5, "min_calls": 4, "consecutive_timeouts": 3, "open_ms": 30_000}
ONCE = {"target": HTTP, "retry": {"max_attempts": 1, "breaker": RULES}}


def history(aws: Any, task_id: str) -> str:
    return " | ".join(h.detail or "" for h in aws.platform.tasks.get("acme", task_id).history)


@fixed_clock
def test_breaker_opens_on_the_window_error_rate_fails_fast_then_one_probe_closes_it(aws):
    # Given a target that is down, and tasks whose policy names the breaker's rules
    clock = aws.platform.tasks.clock
    aws.platform.executor.telemetry = counted = Counted()
    aws.platform.executor.runners = flaky = Flaky()
    # When 3 calls fail in the window: under min_calls, the breaker stays closed
    for _ in range(3):
        assert run_one(aws, ONCE)[1] is Outcome.FAILED
        clock.advance(1_000)
    assert "breaker_opened" not in counted.names
    # When the 4th fails (4 of 4 calls in 10 s: 100% > 50%), and its batch ends
    run_one(aws, ONCE, flush=False)
    assert aws.platform.executor.breakers.store.get("acme#http:pay.example:").state.value == "closed"
    aws.platform.executor.flush()
    # Then the breaker opened at the end of the batch, saying why
    record = aws.platform.executor.breakers.store.get("acme#http:pay.example:")
    assert record.state.value == "open"
    assert record.reason.startswith("error rate 100% over 10 s (4 of 4 calls")
    assert counted.names.count("breaker_opened") == 1
    # And the next task fails fast without calling the target (a retryable CircuitOpen)
    retry = {"max_attempts": 2, "base_delay_ms": 5_000, "jitter": "none", "breaker": RULES}
    task_id, outcome = run_one(aws, {"target": HTTP, "retry": retry})
    assert outcome is Outcome.RETRYING and flaky.calls == 4
    error = aws.platform.tasks.get("acme", task_id).error
    assert error.type == "CircuitOpen" and "error rate 100%" in error.message
    # When the open period passes and the target is back
    clock.advance(30_000)
    flaky.down = False
    # Then one probe goes through, closes the breaker, and everyone calls again
    probe, outcome = run_one(aws, ONCE)
    assert outcome is Outcome.SUCCEEDED
    assert "half-open: this attempt is its probe" in history(aws, probe)
    assert "half-open probe answered: circuit breaker for http:pay.example: closed" in history(aws, probe)
    assert run_one(aws, ONCE)[1] is Outcome.SUCCEEDED
    assert flaky.calls == 6
    assert {"breaker_open", "breaker_half_open", "breaker_closed"} <= set(counted.names)


@fixed_clock
def test_errors_that_left_the_window_or_a_rate_at_the_threshold_do_not_open_it(aws):
    # Given a target failing every other call
    clock = aws.platform.tasks.clock
    aws.platform.executor.telemetry = counted = Counted()

    class Alternating(Flaky):
        def run(self, *a: Any, **k: Any) -> Any:
            self.down = not self.down
            return super().run(*a, **k)

    aws.platform.executor.runners = alternating = Alternating()
    # When 10 calls in 10 s are half failures (50%: not past 50%)
    for _ in range(10):
        run_one(aws, ONCE)
        clock.advance(900)
    assert "breaker_opened" not in counted.names
    # And 3 failures, then 11 s later 3 more: never 4 calls with most of them failures in 10 s
    alternating.down = True
    aws.platform.executor.runners = flaky = Flaky()
    clock.advance(11_000)
    for _ in range(3):
        run_one(aws, ONCE)
    clock.advance(11_000)
    for _ in range(3):
        run_one(aws, ONCE)
    # Then the breaker never opened and every call reached the target
    assert "breaker_opened" not in counted.names and flaky.calls == 6


@fixed_clock
def test_timeouts_in_a_row_open_it_whatever_the_rate_and_an_answer_resets_the_streak(aws):
    # Given a target that times out, with a window rule that would need 100 calls
    rules = {**RULES, "min_calls": 100}
    once = {"target": HTTP, "retry": {"max_attempts": 1, "breaker": rules}}

    class Slow(Flaky):
        def run(self, *a: Any, **k: Any) -> Any:
            self.calls += 1
            if self.down:
                raise TargetFailure("Timeout", "read timed out", retryable=True)
            return {"ok": True}

    aws.platform.executor.runners = slow = Slow()
    # When two time out, one answers, two time out: no 3 in a row
    for down in (True, True, False, True, True):
        slow.down = down
        run_one(aws, once)
    assert aws.platform.executor.breakers.store.get("acme#http:pay.example:").state.value == "closed"
    # When a third in a row times out
    run_one(aws, once)
    # Then it opened, and the next task fails fast saying why
    task_id, _ = run_one(aws, once)
    assert slow.calls == 6
    assert "3 timeouts in a row" in aws.platform.tasks.get("acme", task_id).error.message


@fixed_clock
def test_failed_probe_opens_the_breaker_again(aws):
    # Given an open breaker whose open period has passed, and a target still down
    clock = aws.platform.tasks.clock
    rules = {**RULES, "min_calls": 1, "open_ms": 10_000}
    once = {"target": HTTP, "retry": {"max_attempts": 1, "breaker": rules}}
    aws.platform.executor.runners = flaky = Flaky()
    run_one(aws, once)
    clock.advance(10_000)
    # When the probe fails
    probe, _ = run_one(aws, once)
    # Then the breaker is open again and the next call fails fast
    assert "opened again: the half-open probe failed" in history(aws, probe)
    assert aws.platform.executor.breakers.store.get("acme#http:pay.example:").state.value == "open"
    run_one(aws, once)
    assert flaky.calls == 2


@fixed_clock
def test_only_one_caller_gets_the_half_open_probe(aws):
    # Given an open breaker past its open period
    breakers = aws.platform.executor.breakers
    clock = aws.platform.tasks.clock
    from taskplane.domain.retry import BreakerPolicy

    rules = BreakerPolicy(min_calls=1, open_ms=5_000)
    aws.platform.executor.runners = Flaky()
    run_one(aws, {"target": HTTP, "retry": {"max_attempts": 1, "breaker": rules.model_dump()}})
    clock.advance(5_000)
    # When two callers ask at once (both read the open record before either writes)
    first = breakers.store.get("acme#http:pay.example:")
    real_get = breakers.store.get
    breakers.store.get = lambda key: first
    got: list[Any] = []
    for _ in range(2):
        try:
            got.append(breakers.before("acme", HTTP, rules))
        except TargetFailure as exc:
            got.append(exc.error_type)
    breakers.store.get = real_get
    # Then the conditional write gave the probe to exactly one of them
    assert sum(1 for g in got if getattr(g, "probe", False)) == 1
    assert "CircuitOpen" in got


@fixed_clock
def test_one_tenants_failures_never_open_another_tenants_breaker(aws):
    # Given acme's breaker for the host is open
    rules = {**RULES, "min_calls": 1}
    aws.platform.executor.runners = flaky = Flaky()
    run_one(aws, {"target": HTTP, "retry": {"max_attempts": 1, "breaker": rules}})
    # When globex calls the same host
    breakers = aws.platform.executor.breakers
    # Then its own breaker lets the call through
    assert breakers.before("globex", HTTP) is not None
    assert breakers.store.get("globex#http:pay.example:").state.value == "closed"
    assert flaky.calls == 1


@fixed_clock
def test_non_retryable_failures_do_not_trip_the_breaker(aws):
    # Given a target answering 400 (the caller's fault, not the target's health)
    class BadRequest(Flaky):
        def run(self, *a: Any, **k: Any) -> Any:
            self.calls += 1
            raise TargetFailure("HttpError", "400 Bad Request", retryable=False)

    aws.platform.executor.runners = bad = BadRequest()
    # When many tasks fail that way / Then every one still reached the target
    for _ in range(6):
        run_one(aws, ONCE)
    assert bad.calls == 6


@fixed_clock
def test_attempt_that_cannot_finish_by_the_deadline_is_not_started(aws):
    # Given a task whose deadline is 10 s away but whose timeout is 60 s
    from taskplane.domain.clock import to_rfc3339

    clock = aws.platform.tasks.clock
    aws.platform.executor.runners = flaky = Flaky()
    body = {"target": HTTP, "timeout_s": 60, "deadline": to_rfc3339(clock.now_ms() + 10_000)}
    # When a worker takes it
    task_id, outcome = run_one(aws, body)
    # Then the target was never called and the task failed with a reason naming the deadline
    assert outcome is Outcome.FAILED and flaky.calls == 0
    task = aws.platform.tasks.get("acme", task_id)
    assert task.state is TaskState.FAILED and task.error.type == "DeadlineExceeded"
    assert "could not finish by the deadline" in task.history[-1].detail


@fixed_clock
def test_no_retry_is_scheduled_that_could_not_finish_by_the_deadline(aws):
    # Given a task with a 5 s timeout, a 20 s deadline, and a 10 s backoff
    from taskplane.domain.clock import to_rfc3339

    clock = aws.platform.tasks.clock
    aws.platform.executor.runners = Flaky()
    body = {
        "target": HTTP,
        "timeout_s": 5,
        "deadline": to_rfc3339(clock.now_ms() + 20_000),
        "retry": {"max_attempts": 5, "base_delay_ms": 16_000, "max_delay_ms": 16_000, "jitter": "none"},
    }
    # When its first attempt fails (a retry at +16 s could run until +21 s, past the deadline)
    task_id, outcome = run_one(aws, body)
    # Then it is not retried but failed, saying why
    assert outcome is Outcome.FAILED
    assert (
        "no retry could finish by the deadline" in aws.platform.tasks.get("acme", task_id).history[-1].detail
    )


@fixed_clock
def test_the_worker_reads_and_writes_each_breaker_once_per_delivery_batch(aws, drain):
    # Given 10 tasks calling one HTTP host, on one lane
    aws.platform.executor.runners = flaky = Flaky()
    flaky.down = False
    store = aws.platform.executor.breakers.store
    calls: list[str] = []
    real_get, real_count = store.get, store.count
    store.get = lambda key: calls.append("get") or real_get(key)
    store.count = lambda *a: calls.append("count") or real_count(*a)
    for _ in range(10):
        aws.platform.tasks.submit("acme", TaskSubmit.model_validate({"target": HTTP}))
    # When the worker handler takes them in one delivery batch
    drain(lanes=("default",))
    # Then all 10 reached the target under one read of the breaker and one counting write
    assert flaky.calls == 10
    assert calls == ["get", "count"]
    assert sum(c for c, _ in real_get("acme#http:pay.example:").buckets.values()) == 10


@fixed_clock
def test_a_payload_read_from_the_bucket_holds_room_in_the_worker_until_its_call_ends(aws):
    # Given a worker with a payload budget, and a task whose 100 KiB payload is kept in the bucket
    from taskplane.services.payload_budget import PayloadBudget

    budget = aws.platform.executor.payload_budget = PayloadBudget(1 << 20)
    seen: list[int] = []

    class Seeing(Flaky):
        def run(self, target: dict, envelope: dict, *a: Any, **k: Any) -> Any:
            seen.append(budget.used)
            assert len(envelope["payload"]["blob"]) == 100 * 1024  # read and sent inline
            return {"ok": True}

    aws.platform.executor.runners = Seeing()
    task_id, outcome = run_one(aws, {"target": HTTP, "payload": {"blob": "x" * (100 * 1024)}})
    # Then its call ran holding the payload's size, and gave it back when it ended
    size = aws.platform.tasks.get("acme", task_id).payload_ref.size
    assert outcome is Outcome.SUCCEEDED and seen == [size] and size > 100 * 1024
    assert budget.used == 0
