"""Workflow step: runs one Step Functions task of a run (a gate, a node, a compensation, a verdict).

The event is the task's Parameters, ``{"action": ..., "run": {...}, "node"?, "retry"?, "token"?}``
(see taskplane.domain.asl). A node failure is raised as ``NodeAttemptFailed`` (Step Functions may
retry it) or ``NodeFailed`` (it never does); the exception's class name is the error name.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import wiring
from taskplane.domain.errors import NodeAttemptFailed, NodeFailed
from taskplane.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Step Functions task input -> its small result (outputs stay in the run ledger)."""
    run = event.get("run") if isinstance(event, dict) else None
    if isinstance(run, dict):
        logger.append_keys(run_id=run.get("run_id"), workflow=run.get("workflow"), node=event.get("node"))
    platform = wiring.platform()
    try:
        with platform.tracing.step(event):  # a span under the run's (the execution input carries it)
            result = platform.steps.handle(event)
    except (NodeAttemptFailed, NodeFailed) as exc:
        # Routine in a workflow (retries, compensations): the ledger and the run's view have it all.
        logger.info("node attempt failed", extra={"action": event.get("action"), "error": str(exc)})
        raise
    finally:
        platform.telemetry.flush()  # EMF, and OTLP when on (metrics and spans)
    logger.debug("step done", extra={"action": event.get("action"), "result": result})
    return result
