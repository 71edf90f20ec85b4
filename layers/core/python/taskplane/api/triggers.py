"""Trigger routes: an EventBridge event pattern that starts a task from a template."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from taskplane import wiring
from taskplane.api.common import IdempotencyKeyHeader, json_response, tenant_of
from taskplane.domain.triggers import TriggerCreate

router = Router()


@router.post("/v1/triggers", summary="Start a task for every event matching a pattern", tags=["triggers"])
def create_trigger(
    trigger: Annotated[TriggerCreate, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> Response[dict[str, Any]]:
    created, fresh = wiring.platform().triggers.create_once(
        tenant_of(router.current_event), trigger, idempotency_key=idempotency_key
    )
    return json_response(created.to_api(), 201 if fresh else 200)


@router.get("/v1/triggers", summary="List triggers", tags=["triggers"])
def list_triggers() -> dict[str, Any]:
    return {"items": [t.to_api() for t in wiring.platform().triggers.list(tenant_of(router.current_event))]}


@router.get("/v1/triggers/<trigger_id>", summary="Get a trigger", tags=["triggers"])
def get_trigger(trigger_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().triggers.get(tenant_of(router.current_event), trigger_id).to_api()


@router.delete("/v1/triggers/<trigger_id>", summary="Delete a trigger and its rule", tags=["triggers"])
def delete_trigger(trigger_id: Annotated[str, Path(max_length=64)]) -> Response[None]:
    wiring.platform().triggers.delete(tenant_of(router.current_event), trigger_id)
    return Response(status_code=204, body=None)
