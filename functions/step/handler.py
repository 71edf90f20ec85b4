"""Workflow step: runs one Step Functions task of a run (a gate, a node, a compensation, a verdict).

The event is the task's Parameters, ``{"action": ..., "run": {...}, "node"?, "retry"?, "token"?}``
(see taskplane.domain.asl). A node failure is raised as ``NodeAttemptFailed`` (Step Functions may
retry it) or ``NodeFailed`` (it never does); the exception's class name is the error name.

Any other exception is the platform's own fault (a bug, a table it cannot reach, a missing grant):
it is counted as ``step_platform_errors``, which the step function's canary rolls back on, because
its Lambda error count mixes those with tenants' failing targets.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import init_phase, wiring
from taskplane.domain.errors import NodeAttemptFailed, NodeFailed
from taskplane.observability import MetricsBuffer, logger, tracer

#: Counted for every step task that failed for a reason other than its node's target (the alarm in
#: infra/capabilities/workflows.py reads the same name).
PLATFORM_ERRORS_METRIC = "step_platform_errors"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Step Functions task input -> its small result (outputs stay in the run ledger)."""
    run = event.get("run") if isinstance(event, dict) else None
    if isinstance(run, dict):
        logger.append_keys(run_id=run.get("run_id"), workflow=run.get("workflow"), node=event.get("node"))
    platform = None
    try:
        platform = wiring.platform()
        with platform.tracing.step(event):  # a span under the run's (the execution input carries it)
            result = platform.steps.handle(event)
    except (NodeAttemptFailed, NodeFailed) as exc:
        # Routine in a workflow (retries, compensations): the ledger and the run's view have it all.
        logger.info("node attempt failed", extra={"action": event.get("action"), "error": str(exc)})
        raise
    except Exception:
        tenant = str(run.get("tenant") or "-") if isinstance(run, dict) else "-"
        telemetry = platform.telemetry if platform is not None else MetricsBuffer()
        telemetry.count(PLATFORM_ERRORS_METRIC, tenant=tenant, target_type="platform", lane="workflow")
        if platform is None:
            telemetry.flush()  # the platform could not even be built: write the count now
        raise
    finally:
        if platform is not None:
            platform.telemetry.flush()  # EMF, and OTLP when on (metrics and spans)
    logger.debug("step done", extra={"action": event.get("action"), "result": result})
    return result


# Lambda's init phase (at a full vCPU on demand) builds the tracer and the platform; nothing else
# does at import (taskplane/init_phase.py says why this is the one exception to "never at import").
init_phase.warm_up()
