"""``GET /v1/stats``: the dashboard header's figures for the calling tenant."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from taskplane import wiring
from taskplane.api.common import tenant_of

router = Router()

_service: tuple[Any, Any] | None = None  # (the platform it was built for, StatsService)


def _stats() -> Any:
    """One StatsService per platform, so its cached lane depths outlive a request."""
    global _service
    from taskplane.adapters.lane_depths import LaneDepths
    from taskplane.services.stats import StatsService

    platform = wiring.platform()
    if _service is None or _service[0] is not platform:
        depths = LaneDepths(
            platform.settings.queue_urls, platform.tasks.lanes.client, clock=platform.tasks.clock
        )
        _service = (platform, StatsService(tasks=platform.tasks, depths=depths, clock=platform.tasks.clock))
    return _service[1]


@router.get(
    "/v1/stats",
    summary="This tenant's newest tasks by state, throughput, and lane depths (cached a few seconds)",
    tags=["meta"],
)
def get_stats() -> dict[str, Any]:
    return _stats().for_tenant(tenant_of(router.current_event))
