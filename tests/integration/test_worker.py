"""The worker handler under moto: start guard, outcomes, retries, timeouts, dead letters, poison."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from taskplane.adapters.queues import LaneMessage
from taskplane.domain.clock import FixedClock
from taskplane.domain.models import TaskSubmit
from taskplane.domain.states import TaskState

pytestmark = pytest.mark.integration


def submit(aws: Any, body: dict[str, Any], tenant: str = "acme") -> str:
    task, _ = aws.platform.tasks.submit(tenant, TaskSubmit.model_validate(body))
    return task.task_id


def get(aws: Any, task_id: str, tenant: str = "acme") -> Any:
    return aws.platform.tasks.get(tenant, task_id)


def drain_until(drain: Any, aws: Any, task_id: str, states: set[TaskState], timeout_s: float = 10) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        drain()
        task = get(aws, task_id)
        if task.state in states:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} stuck in {get(aws, task_id).state}")


class CountingRunners:
    """Wraps the real runners and counts how many times each task's target actually ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        with self.lock:
            self.calls[envelope["task_id"]] = self.calls.get(envelope["task_id"], 0) + 1
        return self.inner.run(target, envelope, timeout_s, cancel)


@pytest.fixture
def counting(aws: Any) -> CountingRunners:
    runners = CountingRunners(aws.platform.executor.runners)
    aws.platform.executor.runners = runners
    return runners


def test_echo_task_runs_once_and_succeeds(aws, drain, counting):
    # Given an echo task on the default lane
    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}})
    # When the worker drains the lane
    drain()
    # Then it ran once and succeeded with its payload as result
    task = get(aws, task_id)
    assert task.state is TaskState.SUCCEEDED
    assert task.result == {"n": 1}
    assert [h.state for h in task.history] == [TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert task.started_at is not None and task.finished_at >= task.started_at
    assert counting.calls == {task_id: 1}
    assert aws.queue_depth() == 0


def test_duplicate_delivery_runs_the_attempt_once(aws, counting):
    # Given one task and its lane message delivered twice (at-least-once delivery)
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler

    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}, "payload": 1})
    sqs = aws.client("sqs")
    message = sqs.receive_message(QueueUrl=aws.settings.queue_urls["default"])["Messages"][0]
    from taskplane.local.poller import to_record

    record = to_record(message, "arn:aws:sqs:us-east-1:123456789012:taskplane-default")
    twin = dict(record, messageId="twin-" + record["messageId"])
    worker = load_handler("worker").lambda_handler
    # When both copies arrive, in one batch and again in a second batch
    first = worker({"Records": [record, twin]}, LocalContext("taskplane-worker"))
    second = worker({"Records": [record]}, LocalContext("taskplane-worker"))
    # Then the target ran exactly once and no copy was reported as failed
    assert counting.calls == {task_id: 1}
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    assert get(aws, task_id).attempts == 1


def test_concurrent_duplicates_start_once(aws, counting):
    # Given the same delivery handled by 8 threads at once
    task_id = submit(aws, {"target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 50}})
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def handle() -> None:
        barrier.wait()
        outcomes.append(aws.platform.executor.handle(LaneMessage("acme", task_id, 1)).value)

    threads = [threading.Thread(target=handle) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one started it; the others saw a duplicate
    assert counting.calls == {task_id: 1}
    assert sorted(outcomes).count("succeeded") == 1
    assert get(aws, task_id).state is TaskState.SUCCEEDED


def test_fail_twice_then_succeed_on_attempt_three(aws, drain):
    # Given a task that fails twice, with up to 4 attempts and tiny backoff
    task_id = submit(
        aws,
        {
            "target": {"type": "builtin", "name": "fail"},
            "payload": {"times": 2},
            "retry": {"max_attempts": 4, "base_delay_ms": 1, "max_delay_ms": 5},
        },
    )
    # When the lanes are drained until it settles
    task = drain_until(drain, aws, task_id, {TaskState.SUCCEEDED, TaskState.FAILED})
    # Then it succeeded on attempt 3, with each retry in its history
    assert task.state is TaskState.SUCCEEDED
    assert task.attempts == 3
    assert task.result == {"attempt": 3, "failed_before": 2}
    states = [h.state.value for h in task.history]
    assert states == [
        "PENDING",
        "RUNNING",
        "RETRYING",
        "PENDING",
        "RUNNING",
        "RETRYING",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
    ]


def test_exhausted_retries_fail_and_dead_letter(aws, drain):
    # Given a task that fails more often than it may be attempted
    task_id = submit(
        aws,
        {
            "target": {"type": "builtin", "name": "fail"},
            "payload": {"times": 5},
            "retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 1},
        },
    )
    # When it runs out of attempts
    task = drain_until(drain, aws, task_id, {TaskState.FAILED})
    # Then it is FAILED with the error and one dead letter names it
    assert task.attempts == 2
    assert task.error is not None and task.error.type == "BuiltinFailure"
    assert "after 2 of 2 attempts" in task.history[-1].detail
    dead = aws.client("sqs").receive_message(QueueUrl=aws.settings.dlq_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    assert [json.loads(m["Body"])["task_id"] for m in dead] == [task_id]


def test_non_retryable_failure_fails_at_once(aws, drain):
    # Given a sleep task with a payload it cannot use
    task_id = submit(aws, {"target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": "soon"}})
    # When it runs
    drain()
    # Then it failed on its first attempt without retrying
    task = get(aws, task_id)
    assert task.state is TaskState.FAILED and task.attempts == 1
    assert task.error.type == "InvalidPayload"


def test_timeout_is_enforced_and_retried(aws, drain):
    # Given a 3 s sleep with a 1 s timeout and two attempts
    task_id = submit(
        aws,
        {
            "target": {"type": "builtin", "name": "sleep"},
            "payload": {"ms": 3000},
            "timeout_s": 1,
            "retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 1},
        },
    )
    # When the worker takes it
    drain()
    # Then the first attempt was cut at about 1 s and moved through TIMED_OUT to RETRYING; its retry,
    # due 1 ms later, ran in the same worker, timed out too and failed for good (not 2 x 3 s): each
    # attempt's RUNNING -> TIMED_OUT in the history is short of the 3 s sleep (by the task's own
    # clock, so a loaded machine's slower drain does not count against it)
    task = get(aws, task_id)
    moves = [(h.state.value, h.at) for h in task.history]
    cut = [at - moves[i - 1][1] for i, (state, at) in enumerate(moves) if state == "TIMED_OUT"]
    assert len(cut) == 2 and all(900 <= ms < 3000 for ms in cut), moves
    assert [h.state.value for h in task.history][-7:] == [
        "RUNNING",
        "TIMED_OUT",
        "RETRYING",
        "PENDING",
        "RUNNING",
        "TIMED_OUT",
        "FAILED",
    ], json.dumps([(h.state.value, h.detail, h.at) for h in task.history])
    assert task.attempts == 2 and task.error.type == "Timeout"


def test_cancelled_before_delivery_never_runs(aws, drain, counting):
    # Given a pending task cancelled before the worker sees it
    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}})
    aws.platform.tasks.cancel("acme", task_id)
    # When its message is delivered
    responses = drain()
    # Then the target never ran and the message was consumed
    assert counting.calls == {}
    assert responses == [{"batchItemFailures": []}]
    assert get(aws, task_id).state is TaskState.CANCELLED


def test_poison_message_goes_to_the_dlq_without_blocking_its_batch(aws, drain, counting):
    # Given a lane holding one unreadable message and one real task
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.settings.queue_urls["default"], MessageBody="not json {")
    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}})
    # When they are delivered in one batch
    responses = drain()
    # Then the batch succeeds, the task ran, the lane is empty and the poison message is on the DLQ
    assert responses == [{"batchItemFailures": []}]
    assert counting.calls == {task_id: 1}
    assert aws.queue_depth() == 0
    dead = sqs.receive_message(
        QueueUrl=aws.settings.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in dead] == ["not json {"]
    assert "not JSON" in dead[0]["MessageAttributes"]["reason"]["StringValue"]


def test_message_for_unknown_task_is_consumed(aws, drain):
    # Given a well-formed delivery for a task that does not exist (withdrawn after a failed send)
    body = json.dumps({"v": 1, "tenant": "acme", "task_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "attempt": 1})
    aws.client("sqs").send_message(QueueUrl=aws.settings.queue_urls["default"], MessageBody=body)
    # When it is delivered
    responses = drain()
    # Then it is acknowledged, not retried forever
    assert responses == [{"batchItemFailures": []}]
    assert aws.queue_depth() == 0


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed-clock"])
def test_early_delivery_of_a_scheduled_task_is_requeued(aws, drain, counting):
    # Given a task due in 4 s whose delivery arrives now (for example after clock skew), further
    # ahead than a worker waits (2 s); the platform's clock stands still, so "now" is before run_at
    # however slow the machine is
    clock = aws.platform.executor.clock
    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}, "delay_ms": 4000})
    outcome = aws.platform.executor.handle(LaneMessage("acme", task_id, 1, state="SCHEDULED"))
    # Then it does not start early and a delayed delivery is queued again
    assert outcome.value == "requeued"
    assert counting.calls == {}
    assert get(aws, task_id).state is TaskState.SCHEDULED
    # And a delivery that comes back while it is still early is requeued again
    assert drain(rounds=1) == [] or get(aws, task_id).state is TaskState.SCHEDULED
    # And once due it runs, not before its run_at
    clock.advance(4000)
    task = drain_until(drain, aws, task_id, {TaskState.SUCCEEDED}, timeout_s=60)
    assert task.started_at >= task.run_at


def test_delivery_ahead_of_its_due_time_waits_and_starts_on_the_millisecond(aws, counting):
    # Given a task due in 1.2 s whose delivery says so and arrives now (the tick sends a lead ahead)
    task_id = submit(aws, {"target": {"type": "builtin", "name": "echo"}, "delay_ms": 1_200})
    run_at = get(aws, task_id).run_at
    calls = []
    store = aws.platform.executor.store
    real = store.transition

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    store.transition = counted
    # When a worker takes it
    outcome = aws.platform.executor.handle(LaneMessage("acme", task_id, 1, state="SCHEDULED", due_ms=run_at))
    # Then it waited until due and started then (one start write, none refused for being early)
    task = get(aws, task_id)
    assert outcome.value == "succeeded" and counting.calls == {task_id: 1}
    assert run_at <= task.started_at <= run_at + 50
    assert calls == [TaskState.SCHEDULED, TaskState.RUNNING]


def test_crash_after_retry_state_before_send_loses_nothing(aws, drain, monkeypatch):
    # Given a failing task (retry 2.5 s later, so through the wheel) whose retry entry cannot be
    # written (DynamoDB refusing at that moment)
    task_id = submit(
        aws,
        {
            "target": {"type": "builtin", "name": "fail"},
            "payload": {"times": 1},
            "retry": {"max_attempts": 3, "base_delay_ms": 2_500, "max_delay_ms": 2_500, "jitter": "none"},
        },
    )
    wheel = aws.platform.executor.wheel
    real_put = wheel.put
    broken = {"on": True}

    def flaky_put(entry):
        if broken["on"]:
            from taskplane.domain.errors import Unavailable

            raise Unavailable("DynamoDB down")
        return real_put(entry)

    monkeypatch.setattr(wheel, "put", flaky_put)
    # When the first attempt fails and the retry cannot be scheduled
    responses = drain()
    # Then the original message is reported failed (kept for redelivery) and the task waits RETRYING
    assert len(responses[0]["batchItemFailures"]) == 1
    assert get(aws, task_id).state is TaskState.RETRYING
    # And when SQS is back the redelivered message carries the task to success
    broken["on"] = False
    task = drain_until(drain, aws, task_id, {TaskState.SUCCEEDED})
    assert task.attempts == 2


def test_uneventful_deliveries_are_not_logged_at_info_failures_are(aws, drain):
    # Given the worker's log captured at INFO, a task that succeeds and one that fails for good
    import io

    from taskplane.observability import logger

    captured = io.StringIO()
    stream = logger.registered_handler.setStream(captured)
    level = logger.log_level
    logger.setLevel("INFO")
    try:
        ok = submit(aws, {"target": {"type": "builtin", "name": "echo"}})
        bad = submit(aws, {"target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": "soon"}})
        # When both are delivered
        drain()
    finally:
        logger.registered_handler.setStream(stream)
        logger.setLevel(level)
    handled = [json.loads(line) for line in captured.getvalue().splitlines() if '"delivery handled"' in line]
    # Then only the failure has an INFO line (the success is in its task's history, not the log)
    assert get(aws, ok).state is TaskState.SUCCEEDED and get(aws, bad).state is TaskState.FAILED
    assert [(h["task_id"], h["outcome"], h["level"]) for h in handled] == [(bad, "failed", "INFO")]
