"""Both adapter sets tell the tracing port of every task and run they store (its root span)."""

from __future__ import annotations

from typing import Any

import pytest

from taskplane.domain.ids import new_id
from taskplane.domain.models import TaskSubmit, new_task
from taskplane.domain.workflow import Phase, RunState
from taskplane.tracing import NullTracing

pytestmark = pytest.mark.contract


T0 = 1_780_000_000_000


def task(tenant: str, n: int) -> Any:
    submit = TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}})
    return new_task(submit, task_id=new_id(T0 + n), tenant=tenant, now_ms=T0 + n)


class Recorder(NullTracing):
    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.runs: list[str] = []

    def tasks_created(self, tasks: Any, began_ns: int) -> None:
        assert began_ns > 0
        self.tasks += [t.task_id for t in tasks]

    def run_created(self, tenant: str, run_id: str, workflow: str, version: int, began_ns: int) -> None:
        self.runs.append(run_id)


def test_every_stored_task_and_run_is_told_once(backend):
    from taskplane.adapters.run_store import RunRecord

    recorder = Recorder()
    backend.tasks.tracing = backend.runs.tracing = recorder
    one, many = task(backend.tenant, 1), [task(backend.tenant, n) for n in (2, 3)]
    backend.tasks.create(one)
    backend.tasks.create_many(many)
    run = RunRecord(
        tenant=backend.tenant,
        run_id=new_id(T0),
        workflow="w",
        version=1,
        version_arn="arn:v:1",
        state=RunState.RUNNING,
        phase=Phase.NODES,
        input={},
        created_at=T0,
    )
    backend.runs.create(run)
    assert recorder.tasks == [one.task_id, *(t.task_id for t in many)]
    assert recorder.runs == [run.run_id]
