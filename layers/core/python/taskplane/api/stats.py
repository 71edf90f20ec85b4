"""``GET /v1/stats``: the dashboard header's figures for the calling tenant."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from taskplane import wiring
from taskplane.api.common import tenant_of

router = Router()


def _stats() -> Any:
    """Stats over the platform's own lane-depth cache (the one backpressure reads), never SQS per request."""
    from taskplane.services.stats import StatsService

    platform = wiring.platform()
    return StatsService(
        tasks=platform.tasks,
        depths=platform.tasks.admission.depths,
        clock=platform.tasks.clock,
        latencies=platform.executor.latencies,
        breakers=platform.executor.breakers,
    )


@router.get(
    "/v1/stats",
    summary=(
        "This tenant's newest tasks by state, throughput, lane depths (cached a few seconds), and its "
        "targets' durations, auto timeouts and circuit breakers"
    ),
    tags=["meta"],
)
def get_stats() -> dict[str, Any]:
    return _stats().for_tenant(tenant_of(router.current_event))
