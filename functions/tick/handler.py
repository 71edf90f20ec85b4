"""Wheel tick: EventBridge runs it once a minute per shard; it dispatches that shard's due work on time."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import wiring
from taskplane.observability import logger, tracer

#: How long before the function's own timeout a tick hands its shard over.
HANDOVER_MARGIN_MS = 5_000
#: A tick runs a little over the one-minute rate, so the next one is already waiting for the lease.
TICK_SPAN_MS = 62_000


def shards_of(event: dict[str, Any], total: int) -> list[int]:
    """The rule's constant input names one shard (``{"shard": 3}``); without it, shard 0."""
    shard = event.get("shard", (event.get("detail") or {}).get("shard", 0))
    if type(shard) is not int or not 0 <= shard < total:
        raise ValueError(f"shard must be an integer in [0, {total}), got {shard!r}")
    return [shard]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled event -> dispatch one shard until just before the function's timeout."""
    platform = wiring.platform()
    (shard,) = shards_of(event, platform.settings.wheel_shards)
    now = platform.ticker.clock.now_ms()
    budget = min(TICK_SPAN_MS, context.get_remaining_time_in_millis() - HANDOVER_MARGIN_MS)
    try:
        report = platform.ticker.run(shard, until_ms=now + max(0, budget))
    finally:
        platform.telemetry.flush()
    logger.info("tick done", extra={"report": report.__dict__})
    return {
        "shard": shard,
        "acquired": report.acquired,
        "dispatched": report.dispatched,
        "fired": report.fired,
        "lost_lease": report.lost_lease,
    }
