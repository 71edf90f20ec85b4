"""Fault suite: inject faults while tasks run, then check the invariant after each.

Invariant: no accepted task lost (each is terminal, or still SCHEDULED), no attempt of any task ran
twice, and none started before its run_at. Faults: duplicate deliveries, DynamoDB throttling, SQS
refusing part of a batch, workers killed mid-task; and around the wait for due times: a delivery
redelivered while its worker waits (a wait crossing the visibility timeout), a delivery far ahead of
its due time, a worker dying while its retry waits, deliveries sent a lead ahead handled twice by
workers with skewed clocks. (A lease lost mid-tick, ticks crashing at 38 points, idle hand-backs and
wakes are in test_wheel.py.) The figures are printed with ``-s`` for the hardening report.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskplane.adapters.queues import LaneMessage, parse_body
from taskplane.domain.clock import FixedClock
from taskplane.domain.models import TaskSubmit
from taskplane.domain.states import TERMINAL, TaskState
from taskplane.domain.timeouts import GRACE_MS
from taskplane.domain.wheel import DISPATCH_LEAD_MS, slot_of

pytestmark = pytest.mark.integration

fixed_clock = pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed"])
FIGURES: Counter[str] = Counter()


class WorkerKilled(BaseException):
    pass


class Runner:
    """Echo that counts runs per (task, attempt), and kills its worker for chosen runs."""

    def __init__(self, kill: set[tuple[str, int]] | None = None) -> None:
        self.runs: Counter[tuple[str, int]] = Counter()
        self.kill = kill or set()
        self.lock = threading.Lock()

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        key = (envelope["task_id"], envelope["attempt"])
        with self.lock:
            self.runs[key] += 1
        if key in self.kill:
            FIGURES["faults: worker killed mid-task"] += 1
            raise WorkerKilled()
        return envelope["payload"]


class ThrottlingDynamoDB:
    """A DynamoDB client whose writes are throttled at random (seeded)."""

    def __init__(self, inner: Any, rate: float, seed: int = 7) -> None:
        self.inner, self.rate, self.rng = inner, rate, random.Random(seed)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name not in ("update_item", "put_item", "delete_item"):
            return real

        def maybe_throttle(**kwargs: Any) -> Any:
            if self.rng.random() < self.rate:
                FIGURES["faults: DynamoDB throttled"] += 1
                raise ClientError({"Error": {"Code": "ThrottlingException"}}, name)
            return real(**kwargs)

        return maybe_throttle


def deliver_all(aws: Any, duplicate: bool = False) -> int:
    """Receive every lane message and hand it to the executor (twice when ``duplicate``), like the
    event source mapping: a handler that raises leaves the message for redelivery."""
    sqs = aws.client("sqs")
    handled = 0
    for url in aws.settings.queue_urls.values():
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for m in messages:
                delivery = parse_body(m["Body"])
                ok = True
                for _ in range(2 if duplicate else 1):
                    if duplicate:
                        FIGURES["faults: duplicate delivery"] += 1
                    try:
                        aws.platform.executor.handle(delivery)
                    except (WorkerKilled, Exception):
                        ok = False
                handled += 1
                if ok:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                else:
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
            if handled > 5_000:
                raise AssertionError("deliveries do not converge")
    return handled


def fire_watches(aws: Any) -> None:
    """Advance past every attempt's timeout + grace and let the tick send the due watches."""
    clock = aws.platform.tasks.clock
    wheel = aws.platform.executor.wheel
    now = clock.now_ms()
    entries = []
    for slot in {slot_of(now + d) for d in range(-120_000, 120_000, 10_000)}:
        entries += [e for e in wheel.load(0, slot, "", None) if e.kind == "watch"]
    clock.advance(GRACE_MS + 5_000)
    if entries:
        aws.platform.ticker._send_batch(entries)


def settle(aws: Any, rounds: int = 12, duplicate: bool = False) -> None:
    clock = aws.platform.tasks.clock
    for i in range(rounds):
        deliver_all(aws, duplicate=duplicate)
        clock.advance(1_000)
        if i % 3 == 2:
            fire_watches(aws)


def check_invariant(aws: Any, accepted: list[str], runner: Runner) -> None:
    FIGURES["tasks checked"] += len(accepted)
    lost = []
    for task_id in accepted:
        task = aws.platform.tasks.get("acme", task_id)
        if task.state not in TERMINAL and task.state is not TaskState.SCHEDULED:
            lost.append((task_id, task.state.value))
    FIGURES["tasks lost"] += len(lost)
    twice = {k: n for k, n in runner.runs.items() if n > 1}
    FIGURES["attempts run twice"] += len(twice)
    assert lost == [], lost
    assert twice == {}, twice


def submit_many(aws: Any, n: int) -> list[str]:
    body = TaskSubmit.model_validate(
        {
            "target": {"type": "builtin", "name": "echo"},
            "payload": 1,
            "timeout_s": 1,
            "retry": {"max_attempts": 6, "base_delay_ms": 1, "max_delay_ms": 1},
        }
    )
    return [
        t.task_id for t in aws.platform.tasks.submit_batch("acme", [body] * n) if not isinstance(t, Exception)
    ]


@fixed_clock
def test_duplicate_deliveries_run_each_attempt_once(aws):
    # Given 20 tasks and every message delivered twice
    runner = Runner()
    aws.platform.executor.runners = runner
    accepted = submit_many(aws, 20)
    # When they run
    settle(aws, duplicate=True)
    # Then the invariant holds and every task succeeded
    check_invariant(aws, accepted, runner)
    assert all(aws.platform.tasks.get("acme", t).state is TaskState.SUCCEEDED for t in accepted)


@fixed_clock
def test_dynamodb_throttling_loses_nothing_and_runs_nothing_twice(aws):
    # Given 20 tasks, then a quarter of the worker's DynamoDB writes throttled
    runner = Runner()
    aws.platform.executor.runners = runner
    accepted = submit_many(aws, 20)
    store = aws.platform.executor.store
    store._client = ThrottlingDynamoDB(store._client, rate=0.25)
    # When they run through the throttling (and the throttling then stops)
    settle(aws, rounds=9)
    store._client = store._client.inner
    settle(aws, rounds=9)
    # Then the invariant holds
    check_invariant(aws, accepted, runner)


@fixed_clock
def test_sqs_refusing_part_of_a_batch_accepts_only_what_was_queued(aws):
    # Given SQS refusing every third entry of a batch send
    real = aws.platform.tasks.lanes.client
    refused: list[str] = []

    class PartialSqs:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> Any:
            keep = [e for i, e in enumerate(Entries) if i % 3 != 2]
            failed = [
                {"Id": e["Id"], "Code": "InternalError", "SenderFault": False}
                for i, e in enumerate(Entries)
                if i % 3 == 2
            ]
            FIGURES["faults: SQS entry refused"] += len(failed)
            refused.extend(e["Id"] for e in failed)
            resp = real.send_message_batch(QueueUrl=QueueUrl, Entries=keep) if keep else {}
            return {"Successful": resp.get("Successful", []), "Failed": failed}

    aws.platform.tasks.lanes._client = PartialSqs()
    runner = Runner()
    aws.platform.executor.runners = runner
    # When 30 tasks are submitted in one batch
    body = TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "payload": 1})
    outcomes = aws.platform.tasks.submit_batch("acme", [body] * 30)
    aws.platform.tasks.lanes._client = real
    accepted = [o.task_id for o in outcomes if not isinstance(o, Exception)]
    # Then the refused ones were reported as errors, not accepted, and left no task behind
    assert len(accepted) == 30 - len(refused) and refused
    listed, _ = aws.platform.tasks.list("acme", limit=100)
    assert {t.task_id for t in listed} == set(accepted)
    # And every accepted one runs once to success
    settle(aws, rounds=3)
    check_invariant(aws, accepted, runner)
    assert all(aws.platform.tasks.get("acme", t).state is TaskState.SUCCEEDED for t in accepted)


@fixed_clock
def test_workers_killed_mid_task_lose_nothing(aws):
    # Given 20 tasks whose first attempt's worker dies for every other task
    accepted = submit_many(aws, 20)
    runner = Runner(kill={(t, 1) for t in accepted[::2]})
    aws.platform.executor.runners = runner
    # When they run, the dead workers' messages come back and the watches fire
    settle(aws, rounds=12)
    # Then the invariant holds and the killed attempts were retried as attempt 2
    check_invariant(aws, accepted, runner)
    for t in accepted[::2]:
        task = aws.platform.tasks.get("acme", t)
        assert task.state is TaskState.SUCCEEDED and task.attempts == 2, (task.state, task.attempts)


def teardown_module() -> None:
    print("\nfault suite figures:", dict(FIGURES))


# -- the wait for due times (issue 16) ----------------------------------------------------------------
def test_two_deliveries_waiting_for_one_due_time_start_it_once(aws):
    # Given a task due in 0.4 s (straight to its lane, its due time in the message) whose lane message
    # comes back while its first worker still waits (a wait longer than the message's visibility
    # timeout): two workers wait for the same due time
    runner = Runner()
    aws.platform.executor.runners = runner
    task, _ = aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 400})
    )
    sqs, url = aws.client("sqs"), aws.settings.queue_urls["default"]
    (message,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    (again,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]  # redelivered at once
    assert again["MessageId"] == message["MessageId"]
    FIGURES["faults: redelivered while its worker waited"] += 1
    deliveries = [parse_body(message["Body"]), parse_body(again["Body"])]
    assert all(d.due_ms == task.run_at for d in deliveries)
    outcomes: list[Any] = []
    # When both handle it at the same time
    threads = [
        threading.Thread(target=lambda d=d: outcomes.append(aws.platform.executor.handle(d)))
        for d in deliveries
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Then it started once, not before its run_at, and the other delivery found it taken (started:
    # it watches it, as it would for a dead worker's redelivery; or already ended)
    check_invariant(aws, [task.task_id], runner)
    done = aws.platform.tasks.get("acme", task.task_id)
    assert done.state is TaskState.SUCCEEDED and done.started_at >= done.run_at
    assert sorted(o.value for o in outcomes)[1] == "succeeded"
    assert sorted(o.value for o in outcomes)[0] in ("duplicate", "requeued")


@fixed_clock
def test_a_delivery_far_ahead_of_its_due_time_goes_round_again(aws):
    # Given a delivery that says its task is due in 5 s (a lane message's whole seconds, a skewed
    # clock): more than a worker waits
    runner = Runner()
    aws.platform.executor.runners = runner
    task, _ = aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 5_000})
    )
    early = LaneMessage("acme", task.task_id, 1, state="SCHEDULED", due_ms=task.run_at)
    FIGURES["faults: delivered early"] += 1
    sent: list[Any] = []
    lanes = aws.platform.executor.lanes
    real = lanes.send

    def recording(messages: list[Any]) -> list[Any]:
        sent.extend(messages)
        return real(messages)

    lanes.send = recording
    # When a worker takes it
    outcome = aws.platform.executor.handle(early)
    # Then nothing started and it was sent round with the whole seconds that bring it back a lead ahead
    assert outcome.value == "requeued" and runner.runs == Counter()
    (back,) = sent
    assert back.due_ms == task.run_at and back.delay_s == (5_000 - DISPATCH_LEAD_MS) // 1000
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.SCHEDULED


@fixed_clock
def test_worker_dying_while_its_retry_waits_loses_nothing_and_runs_nothing_twice(aws):
    # Given tasks whose first attempt fails and whose retry (due 0.5 s later) waits in the same worker,
    # which dies during the wait (its message is redelivered: nothing acknowledged it)
    body = TaskSubmit.model_validate(
        {
            "target": {"type": "builtin", "name": "fail"},
            "payload": {"times": 1},
            "retry": {"max_attempts": 3, "base_delay_ms": 500, "max_delay_ms": 500, "jitter": "none"},
        }
    )
    accepted = [t.task_id for t in aws.platform.tasks.submit_batch("acme", [body] * 5)]
    executor = aws.platform.executor
    real_runners = executor.runners
    runs: Counter[tuple[str, int]] = Counter()

    class Counting:
        def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **kw: Any) -> Any:
            runs[(envelope["task_id"], envelope["attempt"])] += 1
            return real_runners.run(target, envelope, timeout_s, cancel, **kw)

    executor.runners = Counting()
    real_wait = executor.wait_until

    def dies_waiting_for_a_retry(due_ms: int) -> int:
        if executor.clock.now_ms() < due_ms and not getattr(dies_waiting_for_a_retry, "armed", False):
            dies_waiting_for_a_retry.armed = True  # type: ignore[attr-defined]
            raise WorkerKilled()
        return real_wait(due_ms)

    # When each delivery's worker dies waiting for the retry (its message then comes back)
    sqs, url = aws.client("sqs"), aws.settings.queue_urls["default"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == len(accepted)
    executor.wait_until = dies_waiting_for_a_retry
    for message in messages:
        dies_waiting_for_a_retry.armed = False  # type: ignore[attr-defined]
        FIGURES["faults: worker died waiting for a retry"] += 1
        with pytest.raises(WorkerKilled):
            executor.handle(parse_body(message["Body"]))
        task_id = parse_body(message["Body"]).task_id
        assert aws.platform.tasks.get("acme", task_id).state is TaskState.RETRYING
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    executor.wait_until = real_wait
    aws.platform.tasks.clock.advance(1_000)
    settle(aws, rounds=4)
    # Then each task's retry ran once (as attempt 2) and succeeded; no attempt ran twice
    for task_id in accepted:
        task = aws.platform.tasks.get("acme", task_id)
        assert task.state is TaskState.SUCCEEDED and task.attempts == 2, (task.state, task.attempts)
    assert {k: n for k, n in runs.items() if n > 1} == {}
    FIGURES["tasks checked"] += len(accepted)


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed"])
@pytest.mark.parametrize("skew_ms", [-300, 0, 300])
def test_delayed_tasks_sent_ahead_run_once_never_early_with_duplicates_and_skewed_workers(aws, skew_ms):
    # Given delayed tasks the tick sends a lead ahead, every delivery handled twice, by a worker whose
    # clock is skew_ms off the tick's and the API's
    from taskplane.services.tasks import wheel_entry_for

    runner = Runner()
    clock = aws.platform.tasks.clock
    body = TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 2_000})
    accepted = [t.task_id for t in aws.platform.tasks.submit_batch("acme", [body] * 12)]
    entries = [wheel_entry_for(aws.platform.tasks.get("acme", t), 1) for t in accepted]

    class Skewed:
        def now_ms(self) -> int:
            return clock.now_ms() + skew_ms

        def sleep_until(self, when_ms: int) -> None:
            clock.sleep_until(when_ms - skew_ms)

    worker = dataclasses.replace(
        aws.platform.executor, runners=runner, clock=Skewed(), sleep_until=Skewed().sleep_until
    )
    # When the tick sends them a lead ahead (by its clock) and each delivery reaches two workers
    clock.advance(entries[0].due_ms - DISPATCH_LEAD_MS - clock.now_ms())
    assert aws.platform.ticker._send_batch(entries[:10]) == [None] * 10
    assert aws.platform.ticker._send_batch(entries[10:]) == [None] * 2
    sqs, url = aws.client("sqs"), aws.settings.queue_urls["default"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            for _ in range(2):
                FIGURES["faults: duplicate delivery"] += 1
                worker.handle(parse_body(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # Then each ran once, and none started before its run_at by the worker's own clock
    check_invariant(aws, accepted, runner)
    for task_id in accepted:
        task = aws.platform.tasks.get("acme", task_id)
        assert task.state is TaskState.SUCCEEDED
        assert task.started_at >= task.run_at, (task.started_at - task.run_at, skew_ms)
        FIGURES["starts checked for earliness"] += 1
