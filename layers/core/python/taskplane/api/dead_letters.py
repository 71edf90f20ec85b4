"""Dead-letter routes: list this tenant's failed tasks, redrive them as fresh tasks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from taskplane import wiring
from taskplane.api.common import json_response, tenant_of
from taskplane.services.dead_letters import MAX_REDRIVE

router = Router()


class Redrive(BaseModel):
    """Which dead letters to redrive: ``ids`` (failed task ids), or every one still dead when omitted."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[StrictStr, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=MAX_REDRIVE
    )


@router.get(
    "/v1/dead-letters", summary="List this tenant's dead letters, newest first", tags=["dead letters"]
)
def list_dead_letters(
    status: Annotated[Literal["dead", "redriving", "redriven"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    items, next_cursor = wiring.platform().dead_letters.list(
        tenant_of(router.current_event), limit=limit, cursor=cursor, status=status
    )
    return {"items": [d.to_api() for d in items], "next_cursor": next_cursor}


@router.post(
    "/v1/dead-letters/redrive",
    summary="Redrive dead letters as fresh tasks (all, or the chosen ids)",
    description=(
        "results[i] is {task_id, redriven_as} or {task_id, error}. A fresh task is held to the same "
        "backpressure as a submission: one refused because its lane is full or the tenant is over its "
        "in-flight quota has error.code throttled and retry_after_s, stays dead and may be redriven "
        "again; the answer then carries Retry-After (the largest retry_after_s)."
    ),
    tags=["dead letters"],
)
def redrive(body: Annotated[Redrive | None, Body()] = None) -> Response[dict[str, Any]]:
    ids = body.ids if body is not None else None
    results = wiring.platform().dead_letters.redrive(tenant_of(router.current_event), ids)
    waits = [r["retry_after_s"] for r in results if "retry_after_s" in r]
    headers = {"Retry-After": str(max(waits))} if waits else None
    return json_response({"results": results}, headers=headers)
