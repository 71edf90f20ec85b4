"""Schedule routes: create, list, get, pause, resume, delete."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from taskplane import wiring
from taskplane.api.common import IdempotencyKeyHeader, json_response, tenant_of
from taskplane.domain.schedules import ScheduleCreate

router = Router()


@router.post("/v1/schedules", summary="Create a cron schedule", tags=["schedules"])
def create_schedule(
    schedule: Annotated[ScheduleCreate, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Response[dict[str, Any]]:
    created, fresh = wiring.platform().schedules.create_once(
        tenant_of(router.current_event), schedule, idempotency_key=idempotency_key
    )
    return json_response(created.to_api(), 201 if fresh else 200)


@router.get("/v1/schedules", summary="List schedules, newest first", tags=["schedules"])
def list_schedules(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    items, nxt = wiring.platform().schedules.list(tenant_of(router.current_event), limit=limit, cursor=cursor)
    return {"items": [s.to_api() for s in items], "next_cursor": nxt}


@router.get("/v1/schedules/<schedule_id>", summary="Get a schedule", tags=["schedules"])
def get_schedule(schedule_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().schedules.get(tenant_of(router.current_event), schedule_id).to_api()


@router.post("/v1/schedules/<schedule_id>/pause", summary="Pause a schedule", tags=["schedules"])
def pause_schedule(schedule_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().schedules.pause(tenant_of(router.current_event), schedule_id).to_api()


@router.post(
    "/v1/schedules/<schedule_id>/resume", summary="Resume a paused schedule from now", tags=["schedules"]
)
def resume_schedule(schedule_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().schedules.resume(tenant_of(router.current_event), schedule_id).to_api()


@router.delete("/v1/schedules/<schedule_id>", summary="Delete a schedule", tags=["schedules"])
def delete_schedule(schedule_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
    wiring.platform().schedules.delete(tenant_of(router.current_event), schedule_id)
    return Response(status_code=204, body=None)
