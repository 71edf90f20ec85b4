"""Task routes: submit, batch, get, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field

from taskplane import wiring
from taskplane.api.common import EnvHeader, IdempotencyKeyHeader, json_response, parse_model, tenant_of
from taskplane.domain.errors import TaskplaneError, Throttled
from taskplane.domain.models import Task, TaskSubmit
from taskplane.domain.states import TaskState
from taskplane.domain.tracecontext import task_trace
from taskplane.services.tasks import MAX_BATCH

router = Router()


def task_view(task: Task) -> dict[str, Any]:
    """The task resource, with ``trace_id``: the id of the task's trace when this deployment exports
    traces over OTLP and the task is in the sample (null otherwise; the README's "Observability")."""
    platform = wiring.platform()
    return {
        **platform.tasks.view(task),
        "trace_id": platform.tracing.trace_id(task_trace(task.tenant, task.task_id)),
    }


class BatchSubmit(BaseModel):
    """Up to 500 task bodies; each is validated on its own and answered in order."""

    tasks: list[Any] = Field(
        min_length=1, max_length=MAX_BATCH, description="task bodies as for POST /v1/tasks"
    )


@router.post(
    "/v1/tasks", summary="Submit a task", tags=["tasks"], responses={201: {"description": "created"}}
)
def submit(
    task: Annotated[TaskSubmit, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
    x_env: EnvHeader = None,
) -> Response[dict[str, Any]]:
    if x_env is not None and "env" not in task.labels:
        # The x-env header is shorthand for the label env=<value> (gray-release rules match on it).
        task = task.model_copy(update={"labels": {**task.labels, "env": x_env}})
    who = tenant_of(router.current_event)
    result, fresh = wiring.platform().tasks.submit(who, task, idempotency_key=idempotency_key)
    return json_response(task_view(result), 201 if fresh else 200)


@router.post(
    "/v1/tasks/batch",
    summary="Submit up to 500 tasks",
    description=(
        "Always 200 once the batch is read: results[i] answers tasks[i], either {index, task_id, state} "
        "or {index, error: {code, message, details}}. An item refused because its lane is full has "
        "error.code throttled and retry_after_s (seconds); it was not accepted, so sending it again is "
        "safe. The answer then carries Retry-After (the largest retry_after_s)."
    ),
    tags=["tasks"],
)
def submit_batch(batch: Annotated[BatchSubmit, Body()]) -> Response[dict[str, Any]]:
    who = tenant_of(router.current_event)
    items: list[Any] = []
    for raw in batch.tasks:
        try:
            items.append(parse_model(TaskSubmit, raw))
        except TaskplaneError as exc:
            items.append(exc)
    outcomes = wiring.platform().tasks.submit_batch(who, items)
    results: list[dict[str, Any]] = []
    waits: list[int] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, TaskplaneError):
            error = {"code": outcome.code, "message": outcome.message, "details": outcome.details}
            result: dict[str, Any] = {"index": index, "error": error}
            if isinstance(outcome, Throttled):
                result["retry_after_s"] = outcome.retry_after_s
                waits.append(outcome.retry_after_s)
            results.append(result)
        else:
            results.append({"index": index, "task_id": outcome.task_id, "state": outcome.state.value})
    headers = {"Retry-After": str(max(waits))} if waits else None
    return json_response({"results": results}, headers=headers)


@router.get("/v1/tasks/<task_id>", summary="Get a task", tags=["tasks"])
def get_task(task_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return task_view(wiring.platform().tasks.get(tenant_of(router.current_event), task_id))


@router.get("/v1/tasks", summary="List tasks, newest first", tags=["tasks"])
def list_tasks(
    state: Annotated[TaskState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    items, next_cursor = wiring.platform().tasks.list(
        tenant_of(router.current_event), state=state, limit=limit, cursor=cursor
    )
    return {"items": [task_view(t) for t in items], "next_cursor": next_cursor}


@router.post("/v1/tasks/<task_id>/cancel", summary="Cancel a task that has not started", tags=["tasks"])
def cancel_task(task_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return task_view(wiring.platform().tasks.cancel(tenant_of(router.current_event), task_id))
