"""``POST /v1/events``: publish events on the platform's bus for this tenant's triggers."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskplane import wiring
from taskplane.api.common import IdempotencyKeyHeader, tenant_of
from taskplane.domain.events import EventsPublish

router = Router()


@router.post(
    "/v1/events",
    summary="Publish up to 10 events to this tenant's triggers",
    description=(
        "Each event is put on the platform's event bus with this tenant written into "
        "`detail.taskplane_tenant` by the platform, so it reaches this tenant's triggers and no other's. "
        "Answers per event, in order, its `event_id` or an `error`. With an Idempotency-Key, the same "
        "key and body answer the first request's results without putting the events again."
    ),
    tags=["triggers"],
)
def publish_events(
    events: Annotated[EventsPublish, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> dict[str, Any]:
    results = wiring.platform().events.publish(
        tenant_of(router.current_event), events, idempotency_key=idempotency_key
    )
    return {"results": results}
