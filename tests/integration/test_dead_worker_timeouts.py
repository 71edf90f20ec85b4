"""Timeouts that survive a dead worker: the wheel's watch times out an abandoned attempt."""

from __future__ import annotations

from typing import Any

import pytest

from taskplane.adapters.queues import parse_body
from taskplane.domain.clock import FixedClock
from taskplane.domain.models import TaskSubmit
from taskplane.domain.states import TaskState
from taskplane.domain.timeouts import GRACE_MS
from taskplane.domain.wheel import slot_of
from taskplane.services.execute import Outcome

pytestmark = pytest.mark.integration

fixed_clock = pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed"])


class WorkerKilled(BaseException):
    """The process died mid-task: nothing after this line runs, nothing is acknowledged."""


class Dies:
    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        raise WorkerKilled()


class Echo:
    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        self.runs.append((envelope["task_id"], envelope["attempt"]))
        return envelope["payload"]


def take_delivery(aws: Any) -> Any:
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return parse_body(message["Body"])


def watches(aws: Any) -> list[Any]:
    wheel = aws.platform.executor.wheel
    now = aws.platform.tasks.clock.now_ms()
    found = []
    for slot in {slot_of(now + d) for d in range(0, 1_000_000, 10_000)}:
        found += [e for e in wheel.load(0, slot, "", None) if e.kind == "watch"]
    return found


def start_and_kill(aws: Any, body: dict[str, Any]) -> str:
    """Submit a task and let a worker start it and die mid-task."""
    task, _ = aws.platform.tasks.submit("acme", TaskSubmit.model_validate(body))
    aws.platform.executor.runners = Dies()
    with pytest.raises(WorkerKilled):
        aws.platform.executor.handle(take_delivery(aws))
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.RUNNING
    return task.task_id


@fixed_clock
def test_dead_worker_attempt_is_timed_out_and_retried(aws):
    # Given a task (timeout 5 s, two attempts) whose worker died mid-task
    clock = aws.platform.tasks.clock
    task_id = start_and_kill(
        aws,
        {
            "target": {"type": "builtin", "name": "echo"},
            "payload": 7,
            "timeout_s": 5,
            "retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 1},
        },
    )
    (watch,) = watches(aws)
    assert watch.due_ms == aws.platform.tasks.get("acme", task_id).started_at + 5_000 + GRACE_MS
    # When the watch comes due (the tick sends it to the lane) and a worker takes it
    clock.advance(5_000 + GRACE_MS)
    assert aws.platform.ticker._send_batch([watch]) == [None]
    echo = Echo()
    aws.platform.executor.runners = echo
    outcome = aws.platform.executor.handle(take_delivery(aws))
    # Then the abandoned attempt went RUNNING -> TIMED_OUT -> RETRYING, with a clear reason, and the
    # retry (due 1 ms later: it waits in the same worker) ran attempt 2 once and succeeded; attempt 1
    # never ran again
    assert outcome is Outcome.SUCCEEDED
    task = aws.platform.tasks.get("acme", task_id)
    assert [h.state.value for h in task.history][-6:] == [
        "RUNNING",
        "TIMED_OUT",
        "RETRYING",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert echo.runs == [(task_id, 2)]
    assert task.result == 7 and task.attempts == 2


@fixed_clock
def test_watch_before_the_timeout_looks_again_later(aws):
    # Given a started attempt whose worker died, and its watch delivered early (clock skew)
    clock = aws.platform.tasks.clock
    task_id = start_and_kill(aws, {"target": {"type": "builtin", "name": "echo"}, "timeout_s": 5})
    (watch,) = watches(aws)
    aws.platform.ticker._send_batch([watch])
    clock.advance(1_000)
    # When a worker takes it before timeout + grace
    outcome = aws.platform.executor.handle(take_delivery(aws))
    # Then the task is left RUNNING and the watch stays armed
    assert outcome is Outcome.REQUEUED
    assert aws.platform.tasks.get("acme", task_id).state is TaskState.RUNNING
    assert len(watches(aws)) == 1


@fixed_clock
def test_abandoned_last_attempt_fails_with_a_dead_letter(aws):
    # Given a one-attempt task whose worker died
    clock = aws.platform.tasks.clock
    task_id = start_and_kill(
        aws, {"target": {"type": "builtin", "name": "echo"}, "timeout_s": 2, "retry": {"max_attempts": 1}}
    )
    (watch,) = watches(aws)
    # When the watch fires after timeout + grace
    clock.advance(2_000 + GRACE_MS)
    aws.platform.ticker._send_batch([watch])
    outcome = aws.platform.executor.handle(take_delivery(aws))
    # Then it is FAILED through TIMED_OUT and listed as a dead letter
    assert outcome is Outcome.FAILED
    task = aws.platform.tasks.get("acme", task_id)
    assert [h.state.value for h in task.history][-2:] == ["TIMED_OUT", "FAILED"]
    records, _ = aws.platform.dead_letters.list("acme")
    assert [r.task_id for r in records] == [task_id]


@fixed_clock
def test_zombie_worker_cannot_finish_a_later_attempt(aws):
    # Given attempt 1 timed out by the watch and attempt 2 now RUNNING
    clock = aws.platform.tasks.clock
    task_id = start_and_kill(
        aws,
        {
            "target": {"type": "builtin", "name": "echo"},
            "timeout_s": 1,
            "retry": {"max_attempts": 3, "base_delay_ms": 1, "max_delay_ms": 1},
        },
    )
    zombie = aws.platform.tasks.get("acme", task_id)
    (watch,) = watches(aws)
    clock.advance(1_000 + GRACE_MS)
    aws.platform.ticker._send_batch([watch])
    # (attempt 1 is timed out, and attempt 2, due 1 ms later, runs in the same worker, which dies)
    aws.platform.executor.runners = Dies()
    with pytest.raises(WorkerKilled):
        aws.platform.executor.handle(take_delivery(aws))
    # When attempt 1's worker comes back to life and reports success
    outcome = aws.platform.executor._succeeded(
        zombie, "late", {"tenant": "acme", "target_type": "x", "lane": "d"}
    )
    # Then its write is refused: attempt 2 is still RUNNING
    assert outcome is Outcome.DUPLICATE
    task = aws.platform.tasks.get("acme", task_id)
    assert task.state is TaskState.RUNNING and task.attempts == 2


@fixed_clock
def test_redelivered_started_message_arms_the_watch(aws):
    # Given a worker that died after starting the attempt but before arming the watch
    clock = aws.platform.tasks.clock
    task, _ = aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "timeout_s": 3})
    )
    delivery = take_delivery(aws)
    wheel = aws.platform.executor.wheel
    aws.platform.executor.wheel = None  # the watch write never happens
    aws.platform.executor.runners = Dies()
    with pytest.raises(WorkerKilled):
        aws.platform.executor.handle(delivery)
    aws.platform.executor.wheel = wheel
    assert watches(aws) == []
    # When SQS redelivers the unacknowledged message
    clock.advance(500)
    outcome = aws.platform.executor.handle(delivery)
    # Then the attempt is not started again, and it is now watched
    assert outcome is Outcome.REQUEUED
    assert aws.platform.tasks.get("acme", task.task_id).attempts == 1
    assert len(watches(aws)) == 1


@fixed_clock
def test_finished_attempt_removes_its_watch(aws):
    # Given a task run to success by a live worker
    aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}})
    )
    aws.platform.executor.runners = Echo()
    # When it finishes
    assert aws.platform.executor.handle(take_delivery(aws)) is Outcome.SUCCEEDED
    # Then no watch is left for the tick to send
    assert watches(aws) == []


# -- the worker's hold: the lane message itself is the watch ---------------------------------------


def receive_records(aws: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Receive the default lane's messages (not deleted) as the event source mapping's event."""
    from taskplane.local.poller import to_record

    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return {"Records": [to_record(m, arn) for m in messages]}, messages


def count_calls(aws: Any) -> dict[str, list[dict[str, Any]]]:
    """Every SQS and DynamoDB request from now on, by operation name, with its parameters."""
    calls: dict[str, list[dict[str, Any]]] = {}

    def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.setdefault(model.name, []).append(params)

    executor = aws.platform.executor
    # the platform's one SQS client and one DynamoDB client
    for client in {executor.lanes.client, executor.wheel.client}:
        client.meta.events.register("before-parameter-build.*.*", hook)
    return calls


@fixed_clock
def test_worker_holds_a_started_delivery_until_it_counts_as_abandoned(aws):
    # Given a task (timeout 5 s, two attempts) delivered to the worker handler, whose process dies mid-task
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler

    worker = load_handler("worker").lambda_handler
    clock = aws.platform.tasks.clock
    task, _ = aws.platform.tasks.submit(
        "acme",
        TaskSubmit.model_validate(
            {
                "target": {"type": "builtin", "name": "echo"},
                "payload": 7,
                "timeout_s": 5,
                "retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 1},
            }
        ),
    )
    event, (message,) = receive_records(aws)
    calls = count_calls(aws)
    aws.platform.executor.runners = Dies()
    with pytest.raises(WorkerKilled):
        worker(event, LocalContext(function_name="taskplane-worker"))
    # Then its lane message was held until timeout + grace, and nothing was written to the wheel
    (request,) = calls["ChangeMessageVisibilityBatch"]
    (held,) = request["Entries"]
    assert held["ReceiptHandle"] == message["ReceiptHandle"]
    assert held["VisibilityTimeout"] == 5 + GRACE_MS // 1000
    assert watches(aws) == []
    sqs, url = aws.client("sqs"), aws.settings.queue_urls["default"]
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # still invisible
    # When the hold ends (SQS brings the message back then) and a worker takes the redelivery
    clock.advance(5_000 + GRACE_MS)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    echo = Echo()
    aws.platform.executor.runners = echo
    event, _ = receive_records(aws)
    assert worker(event, LocalContext(function_name="taskplane-worker")) == {"batchItemFailures": []}
    # Then the abandoned attempt was timed out and retried (due 1 ms later: in the same worker, under
    # the same held message), and attempt 1 never ran again
    stored = aws.platform.tasks.get("acme", task.task_id)
    assert [h.state.value for h in stored.history][-6:] == [
        "RUNNING",
        "TIMED_OUT",
        "RETRYING",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert echo.runs == [(task.task_id, 2)] and stored.result == 7


@fixed_clock
def test_held_delivery_that_finishes_writes_no_watch(aws, monkeypatch):
    # Given three tasks taken by the worker handler in one batch (however slowly moto starts them)
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.services import holds

    monkeypatch.setattr(holds, "WINDOW_S", 10.0)

    for i in range(3):
        aws.platform.tasks.submit(
            "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "payload": i})
        )
    event, _ = receive_records(aws)
    assert len(event["Records"]) == 3
    calls = count_calls(aws)
    # When they run to success
    response = load_handler("worker").lambda_handler(event, LocalContext(function_name="taskplane-worker"))
    # Then one request held the three messages, and the wheel was never written or deleted from
    assert response == {"batchItemFailures": []}
    (request,) = calls["ChangeMessageVisibilityBatch"]
    assert sorted(e["ReceiptHandle"] for e in request["Entries"]) == sorted(
        r["receiptHandle"] for r in event["Records"]
    )
    assert "ChangeMessageVisibility" not in calls
    wheel_table = aws.settings.wheel_table
    assert not [
        p for op in ("PutItem", "DeleteItem") for p in calls.get(op, []) if p["TableName"] == wheel_table
    ]
    assert watches(aws) == []


@fixed_clock
def test_refused_hold_falls_back_to_a_wheel_watch(aws):
    # Given a delivery whose hold SQS refuses (a receipt handle that is no longer valid)
    task, _ = aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "timeout_s": 4})
    )
    delivery = take_delivery(aws)
    url = aws.settings.queue_urls["default"]
    arn = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    from taskplane.services.holds import HoldBatch

    hold = HoldBatch(aws.platform.executor.lanes.hold_many, size=1).hold_for(arn, "not-a-receipt")
    aws.platform.executor.runners = Dies()
    # When its worker starts it and dies
    with pytest.raises(WorkerKilled):
        aws.platform.executor.handle(delivery, hold=hold)
    # Then the attempt is watched through the wheel instead, due at timeout + grace
    (watch,) = watches(aws)
    assert watch.due_ms == aws.platform.tasks.get("acme", task.task_id).started_at + 4_000 + GRACE_MS
