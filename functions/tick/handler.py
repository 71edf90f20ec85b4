"""Wheel tick: a shard's rule invokes it once a minute, and writers of entries due soon wake it.

Each invocation looks first and ends at once when another tick holds the shard or nothing is due
within the idle horizon (services/tick.py); otherwise it sends the shard's due work on time until
nothing is due soon, or its span ends (it then wakes its successor).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import init_phase, wiring
from taskplane.observability import logger, tracer

#: How long before the function's own timeout a tick hands its shard over.
HANDOVER_MARGIN_MS = 5_000
#: The longest a busy tick runs before a successor takes over (the function's timeout is a minute
#: more: infra/capabilities/scheduler.py). Idle ticks end at once, busy ones hand over every 5 minutes.
TICK_SPAN_MS = 300_000


#: Shard numbers a tick accepts (the settings' bound on ``wheel_shards``).
MAX_SHARDS = 256


def shards_of(event: dict[str, Any], total: int = MAX_SHARDS) -> list[int]:
    """The rule's constant input (or a wake) names one shard (``{"shard": 3}``); without it, shard 0.
    A shard beyond the configured count may still be draining (services/ring.py decides)."""
    shard = event.get("shard", (event.get("detail") or {}).get("shard", 0))
    if type(shard) is not int or not 0 <= shard < total:
        raise ValueError(f"shard must be an integer in [0, {total}), got {shard!r}")
    return [shard]


def ticker_for(platform: Any, context: LambdaContext) -> Any:
    """The platform's ticker, able to wake its successor: the tick invokes itself (its own ARN is in
    the context; its environment cannot name it) when nothing else was set up to wake it."""
    wakes = platform.wakes
    if wakes is not None and wakes.wake is None and getattr(context, "invoked_function_arn", None):
        from taskplane.adapters.tick_waker import TickInvoker

        return dataclasses.replace(platform.ticker, handover=TickInvoker(context.invoked_function_arn))
    return platform.ticker


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled event or wake -> dispatch one shard while work is due, until its span ends."""
    platform = wiring.platform()
    (shard,) = shards_of(event)
    keeper = platform.keeper
    if shard == 0:
        # The tick of shard 0 keeps the ring: the configured shard count, weights following lag.
        try:
            keeper.maintain()
        except Exception:  # the ring stays as it is until the next minute: no entry depends on it
            logger.exception("keeping the wheel ring failed")
    if not keeper.ticks(shard):
        logger.info("not a shard of the ring", extra={"shard": shard})
        return {"shard": shard, "acquired": False, "retired": True}
    keeper.wake_drains(shard)
    ticker = ticker_for(platform, context)
    now = ticker.clock.now_ms()
    budget = min(TICK_SPAN_MS, context.get_remaining_time_in_millis() - HANDOVER_MARGIN_MS)
    try:
        report = ticker.run(shard, until_ms=now + max(0, budget))
        # (a draining shard has weight 0: it takes no new entries)
        weight = platform.ring.current().weights.get(shard, 0.0)
        platform.telemetry.shard_gauges(shard, weight=weight, lag_ms=report.lag_ms)
    finally:
        platform.telemetry.flush()
    # An invocation that only looked is the common case (once a minute per shard, idle or covered).
    log = logger.info if report.acquired else logger.debug
    log("tick done", extra={"report": report.__dict__, "woken": bool(event.get("woken"))})
    return {
        "shard": shard,
        "acquired": report.acquired,
        "dispatched": report.dispatched,
        "fired": report.fired,
        "lost_lease": report.lost_lease,
        "lease_regained": report.lease_regained,
        "idle": report.idle,
        "covered": report.covered,
    }


# Lambda's init phase (at a full vCPU on demand) builds the tracer and the platform; nothing else
# does at import (taskplane/init_phase.py says why this is the one exception to "never at import").
init_phase.warm_up()
