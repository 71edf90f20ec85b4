"""Workflow and run routes: publish definitions, route canaries, start, watch, resume and cancel runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from taskplane import wiring
from taskplane.api.common import IdempotencyKeyHeader, header, json_response, tenant_of
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.tracecontext import run_trace
from taskplane.domain.workflow import Routing, RunStart

router = Router()

_Name = Annotated[str, Path(max_length=64)]
_RunId = Annotated[str, Path(max_length=64)]
_TEXT = "text/plain; charset=utf-8"


def run_traced(tenant: str, view: dict[str, Any]) -> dict[str, Any]:
    """A run resource with ``trace_id``: its trace's id when this deployment exports traces over OTLP
    and the run is in the sample (null otherwise)."""
    ids = run_trace(tenant, str(view.get("run_id")))
    return {**view, "trace_id": wiring.platform().tracing.trace_id(ids)}


def _text(body: str) -> Response[str]:
    return Response(status_code=200, content_type=_TEXT, body=body)


@router.put(
    "/v1/workflows/<name>",
    summary="Publish a workflow definition (YAML or JSON)",
    description=(
        "The body is the workflow YAML (Content-Type application/yaml) or the same as JSON: "
        "name?, description?, timeout_s, defaults {timeout_s, retry}, on_failure (compensate | stop), "
        "nodes [{id, target, needs, payload, timeout_s, retry, compensate}]. A changed definition "
        "publishes a new version (201 when the workflow is new, else 200); an unchanged one publishes "
        "nothing (published: false). Validation errors name the node and the problem. A new workflow "
        "past the tenant's share (max_workflows, 500 by default) answers 409 limit_exceeded."
    ),
    tags=["workflows"],
    responses={
        200: {"description": "updated or unchanged"},
        201: {"description": "created"},
        409: {"description": "limit_exceeded: the tenant holds as many workflows as it may"},
    },
)
def put_workflow(name: _Name) -> Response[dict[str, Any]]:
    event = router.current_event
    who = tenant_of(event)
    body = event.decoded_body
    if body is None:
        raise InvalidRequest("send the workflow definition as YAML or JSON", [{"field": "body"}])
    view, created = wiring.platform().workflows.put(who, name, body, header(event, "content-type"))
    return json_response(run_traced(who, view), 201 if created else 200)


@router.get("/v1/workflows", summary="List workflows by name", tags=["workflows"])
def list_workflows(
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    return wiring.platform().workflows.list_workflows(
        tenant_of(router.current_event), limit=limit, cursor=cursor
    )


@router.get(
    "/v1/workflows/<name>",
    summary="A workflow: definition, versions, routing and compiled ASL (or its graph as Mermaid)",
    tags=["workflows"],
)
def get_workflow(
    name: _Name,
    version: Annotated[int | None, Query(ge=1)] = None,
    format: Annotated[Literal["json", "mermaid"], Query()] = "json",
) -> Response[Any]:
    who = tenant_of(router.current_event)
    if format == "mermaid":
        return _text(wiring.platform().workflows.mermaid(who, name, version))
    return json_response(wiring.platform().workflows.get(who, name, version))


@router.put(
    "/v1/workflows/<name>/routing",
    summary="Split new runs between two versions by weight (canary); {} sends them to the latest",
    tags=["workflows"],
)
def put_routing(name: _Name, routing: Annotated[Routing, Body()]) -> dict[str, Any]:
    return wiring.platform().workflows.set_routing(tenant_of(router.current_event), name, routing.weights)


@router.post(
    "/v1/workflows/<name>/runs",
    summary="Start a run",
    tags=["runs"],
    responses={201: {"description": "started"}},
)
def start_run(
    name: _Name,
    run: Annotated[RunStart | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response[dict[str, Any]]:
    run = run or RunStart()  # no body: a run with no input
    who = tenant_of(router.current_event)
    view, created = wiring.platform().workflows.start_run(who, name, run, idempotency_key=idempotency_key)
    return json_response(run_traced(who, view), 201 if created else 200)


@router.get("/v1/workflows/<name>/runs", summary="A workflow's runs, newest first", tags=["runs"])
def list_runs(
    name: _Name,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    return wiring.platform().workflows.list_runs(
        tenant_of(router.current_event), name, limit=limit, cursor=cursor
    )


@router.get(
    "/v1/runs/<run_id>",
    summary="A run: state, each node's state, attempts, times and error, and the compensations in order",
    tags=["runs"],
)
def get_run(
    run_id: _RunId,
    format: Annotated[Literal["json", "mermaid"], Query()] = "json",
) -> Response[Any]:
    who = tenant_of(router.current_event)
    if format == "mermaid":
        return _text(wiring.platform().workflows.run_graph(who, run_id))
    return json_response(run_traced(who, wiring.platform().workflows.get_run(who, run_id)))


@router.get("/v1/runs/<run_id>/nodes/<node>", summary="One node's full output", tags=["runs"])
def get_node_output(run_id: _RunId, node: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().workflows.node_output(tenant_of(router.current_event), run_id, node)


@router.post(
    "/v1/runs/<run_id>/resume",
    summary="Run a failed or cancelled run again, skipping the nodes that succeeded",
    tags=["runs"],
)
def resume_run(run_id: _RunId) -> dict[str, Any]:
    who = tenant_of(router.current_event)
    return run_traced(who, wiring.platform().workflows.resume(who, run_id))


@router.post("/v1/runs/<run_id>/cancel", summary="Stop a running run (nothing is compensated)", tags=["runs"])
def cancel_run(run_id: _RunId) -> dict[str, Any]:
    who = tenant_of(router.current_event)
    return run_traced(who, wiring.platform().workflows.cancel(who, run_id))
