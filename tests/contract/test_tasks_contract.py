"""The task store: one behaviour on moto (DynamoDB) and on SQLite. Every move is one conditional write
on the expected state (and attempt, and due time); a lost race answers the task as it is."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from taskplane.domain.errors import Conflict
from taskplane.domain.ids import new_id
from taskplane.domain.models import TaskErrorInfo, TaskSubmit, new_task
from taskplane.domain.states import TaskState

pytestmark = pytest.mark.contract

T0 = 1_780_000_000_000
P, S, R = TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING


def task(tenant: str, n: int = 0, **body: Any) -> Any:
    submit = TaskSubmit.model_validate(
        {
            "target": {"type": "http", "url": "https://example.com/x", "headers": {"a": "b"}},
            "payload": {"f": 0.1, "big": 2**60, "s": "ünï", "list": [1, None, True]},
            "labels": {"team": "shop"},
            **body,
        }
    )
    return new_task(submit, task_id=new_id(T0 + n), tenant=tenant, now_ms=T0 + n)


def test_a_task_round_trips_exactly_and_only_for_its_tenant(backend):
    t = task(backend.tenant, delay_ms=5000, priority="high", retry={"max_attempts": 5})
    backend.tasks.create(t)
    assert backend.tasks.get(backend.tenant, t.task_id) == t
    assert backend.tasks.get("other" + backend.tenant, t.task_id) is None
    with pytest.raises(Conflict):
        backend.tasks.create(t)


def test_tasks_list_newest_first_filtered_by_state_with_cursors(backend):
    made = [task(backend.tenant, n, delay_ms=5000 if n % 3 == 0 else 0) for n in range(8)]
    assert backend.tasks.create_many(made) == [None] * 8
    backend.tasks.create(task("other" + backend.tenant, 99))
    seen, cursor = [], None
    for _ in range(10):
        page, cursor = backend.tasks.list(backend.tenant, limit=3, cursor=cursor)
        seen += [t.task_id for t in page]
        if cursor is None:
            break
    assert seen == sorted((t.task_id for t in made), reverse=True)
    scheduled, more = backend.tasks.list(backend.tenant, limit=10, state=S)
    assert [t.task_id for t in scheduled] == sorted((t.task_id for t in made if t.state is S), reverse=True)
    assert more is None


def test_a_move_lands_only_from_the_expected_state_and_records_its_path(backend):
    t = task(backend.tenant)
    backend.tasks.create(t)
    started = backend.tasks.transition(
        backend.tenant,
        t.task_id,
        P,
        [R],
        at_ms=T0 + 10,
        detail="attempt 1",
        fields={"started_at": T0 + 10, "expires_at": 2_000_000_000},
        add_attempt=True,
    )
    assert started.ok and started.task.state is R and started.task.attempts == 1
    assert started.task.started_at == T0 + 10
    lost = backend.tasks.transition(backend.tenant, t.task_id, P, [R], at_ms=T0 + 11, add_attempt=True)
    assert not lost.ok and lost.task == started.task  # the task as it is, not an error
    failed = backend.tasks.transition(
        backend.tenant,
        t.task_id,
        R,
        [TaskState.TIMED_OUT, TaskState.RETRYING],
        at_ms=T0 + 20,
        detail="too slow",
        fields={"error": {"type": "Timeout", "message": "no answer"}, "next_attempt_at": T0 + 99},
        expected_attempts=1,
        return_task=False,
    )
    assert failed.ok and failed.task is None
    got = backend.tasks.get(backend.tenant, t.task_id)
    assert got.error == TaskErrorInfo(type="Timeout", message="no answer")
    assert [(h.state, h.at, h.detail) for h in got.history[1:]] == [
        (R, T0 + 10, "attempt 1"),
        (TaskState.TIMED_OUT, T0 + 20, None),
        (TaskState.RETRYING, T0 + 20, "too slow"),
    ]
    wrong_attempt = backend.tasks.transition(
        backend.tenant, t.task_id, TaskState.RETRYING, [P], at_ms=T0 + 30, expected_attempts=2
    )
    assert not wrong_attempt.ok
    again = backend.tasks.transition(
        backend.tenant, t.task_id, TaskState.RETRYING, [P], at_ms=T0 + 30, remove=("error", "next_attempt_at")
    )
    assert (again.task.state, again.task.error, again.task.next_attempt_at) == (P, None, None)
    done = backend.tasks.transition(backend.tenant, t.task_id, P, [R], at_ms=T0 + 40, add_attempt=True).task
    finished = backend.tasks.transition(
        backend.tenant,
        t.task_id,
        R,
        [TaskState.SUCCEEDED],
        at_ms=T0 + 50,
        fields={"result": {"x": [1.5, None]}},
    )
    assert (done.attempts, finished.task.result, finished.task.state) == (
        2,
        {"x": [1.5, None]},
        TaskState.SUCCEEDED,
    )
    gone = backend.tasks.transition("other" + backend.tenant, t.task_id, P, [R], at_ms=0)
    assert (gone.ok, gone.task) == (False, None)


def test_an_illegal_path_or_field_is_refused_before_anything_is_written(backend):
    t = task(backend.tenant)
    backend.tasks.create(t)
    with pytest.raises(ValueError):
        backend.tasks.transition(backend.tenant, t.task_id, P, [TaskState.SUCCEEDED], at_ms=T0)
    with pytest.raises(ValueError):
        backend.tasks.transition(backend.tenant, t.task_id, P, [R], at_ms=T0, fields={"attempts": 9})
    assert backend.tasks.get(backend.tenant, t.task_id) == t


def test_a_start_is_refused_before_the_task_is_due_by_the_writers_clock(backend):
    t = task(backend.tenant, delay_ms=5000)
    backend.tasks.create(t)
    early = backend.tasks.transition(
        backend.tenant, t.task_id, S, [P, R], at_ms=T0 + 100, due_field="run_at", due_by=t.run_at - 1
    )
    assert not early.ok and early.task.state is S
    on_time = backend.tasks.transition(
        backend.tenant, t.task_id, S, [P, R], at_ms=t.run_at, due_field="run_at", due_by=t.run_at
    )
    assert on_time.ok and on_time.task.state is R
    # A due field the task does not have is never due
    other = task(backend.tenant, 1)
    backend.tasks.create(other)
    assert not backend.tasks.transition(
        backend.tenant, other.task_id, P, [R], at_ms=T0, due_field="next_attempt_at", due_by=T0 * 2
    ).ok


def test_eight_workers_racing_to_start_one_task_one_wins(backend):
    t = task(backend.tenant)
    backend.tasks.create(t)
    wins: list[bool] = []
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        wins.append(
            backend.tasks.transition(backend.tenant, t.task_id, P, [R], at_ms=T0, add_attempt=True).ok
        )

    threads = [threading.Thread(target=run) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert backend.tasks.get(backend.tenant, t.task_id).attempts == 1


def test_heartbeats_notes_and_withdrawals_follow_their_conditions(backend):
    t = task(backend.tenant)
    backend.tasks.create(t)
    assert not backend.tasks.heartbeat(backend.tenant, t.task_id, 1, T0 + 5)  # not running
    backend.tasks.transition(backend.tenant, t.task_id, P, [R], at_ms=T0 + 1, add_attempt=True)
    assert not backend.tasks.heartbeat(backend.tenant, t.task_id, 2, T0 + 5)  # another attempt
    assert backend.tasks.heartbeat(backend.tenant, t.task_id, 1, T0 + 6)
    assert backend.tasks.get(backend.tenant, t.task_id).heartbeat_at == T0 + 6
    assert not backend.tasks.note(backend.tenant, t.task_id, TaskState.FAILED, at_ms=T0 + 7, detail="x")
    assert backend.tasks.note(backend.tenant, t.task_id, R, at_ms=T0 + 7, detail="still here")
    assert backend.tasks.get(backend.tenant, t.task_id).history[-1].detail == "still here"
    backend.tasks.delete_unstarted(backend.tenant, t.task_id)  # running: stays
    assert backend.tasks.get(backend.tenant, t.task_id) is not None
    pending = task(backend.tenant, 1)
    backend.tasks.create(pending)
    backend.tasks.delete_unstarted(backend.tenant, pending.task_id)
    backend.tasks.delete_unstarted(backend.tenant, pending.task_id)  # absent: fine
    assert backend.tasks.get(backend.tenant, pending.task_id) is None
