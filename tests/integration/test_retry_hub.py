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


def run_one(aws: Any, body: dict[str, Any]) -> tuple[str, Outcome]:
    task, _ = aws.platform.tasks.submit("acme", TaskSubmit.model_validate(body))
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    from taskplane.adapters.queues import parse_body

    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        delivery = parse_body(m["Body"])
        if delivery.task_id == task.task_id:
            return task.task_id, aws.platform.executor.handle(delivery)
    raise AssertionError("no delivery")


@fixed_clock
def test_breaker_opens_fails_fast_then_half_opens_and_closes(aws):
    # Given a target that is down and a breaker opening after 3 failures for 30 s
    clock = aws.platform.tasks.clock
    breakers = aws.platform.executor.breakers
    breakers.config = type(breakers.config)(failure_threshold=3, open_ms=30_000)
    flaky = Flaky()
    aws.platform.executor.runners = flaky
    once = {"target": HTTP, "retry": {"max_attempts": 1}}
    # When 3 tasks fail against it
    for _ in range(3):
        assert run_one(aws, once)[1] is Outcome.FAILED
    # Then the next task fails fast without calling the target, as a retryable CircuitOpen
    # (its retry due 5 s later, through the wheel: a retry due within a second would wait in the worker)
    retry = {"max_attempts": 2, "base_delay_ms": 5_000, "jitter": "none"}
    task_id, outcome = run_one(aws, {"target": HTTP, "retry": retry})
    assert outcome is Outcome.RETRYING and flaky.calls == 3
    assert aws.platform.tasks.get("acme", task_id).error.type == "CircuitOpen"
    # When the open period passes and the target is back
    clock.advance(30_000)
    flaky.down = False
    # Then one probe goes through, succeeds, and closes the breaker for everyone
    assert run_one(aws, once)[1] is Outcome.SUCCEEDED
    assert run_one(aws, once)[1] is Outcome.SUCCEEDED
    assert flaky.calls == 5
    assert breakers.store.get("http:pay.example:").state.value == "closed"


@fixed_clock
def test_failed_probe_opens_the_breaker_again(aws):
    # Given an open breaker whose open period has passed, and a target still down
    clock = aws.platform.tasks.clock
    breakers = aws.platform.executor.breakers
    breakers.config = type(breakers.config)(failure_threshold=1, open_ms=10_000)
    aws.platform.executor.runners = flaky = Flaky()
    once = {"target": HTTP, "retry": {"max_attempts": 1}}
    run_one(aws, once)
    clock.advance(10_000)
    # When the probe fails
    run_one(aws, once)
    # Then the breaker is open again and the next call fails fast
    assert breakers.store.get("http:pay.example:").state.value == "open"
    run_one(aws, once)
    assert flaky.calls == 2


@fixed_clock
def test_non_retryable_failures_do_not_trip_the_breaker(aws):
    # Given a target answering 400 (the caller's fault, not the target's health)
    class BadRequest(Flaky):
        def run(self, *a: Any, **k: Any) -> Any:
            self.calls += 1
            raise TargetFailure("HttpError", "400 Bad Request", retryable=False)

    aws.platform.executor.breakers.config = type(aws.platform.executor.breakers.config)(failure_threshold=2)
    aws.platform.executor.runners = bad = BadRequest()
    # When many tasks fail that way / Then every one still reached the target
    for _ in range(4):
        run_one(aws, {"target": HTTP, "retry": {"max_attempts": 1}})
    assert bad.calls == 4


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
