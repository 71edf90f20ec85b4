"""The retry policy's fallback: one call, made when retries are exhausted or skipped, whose outcome
is recorded (on the task or the node, and in the dead letter) but does not change the outcome of
the work: the task or node still fails. The same code serves the worker and the step function."""

from __future__ import annotations

import contextvars
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.entry import TARGET_REFUSED, refusal_failure_message
from taskplane.domain.models import payload_size
from taskplane.domain.results import RawJson

#: The largest fallback result kept (on the task's item or the node's, beside their own fields).
FALLBACK_RESULT_BYTES = 32 * 1024


def call_fallback(
    *,
    runners: TargetRunners,
    pool: ThreadPoolExecutor,
    targets: TargetPolicy,
    tenant: str,
    target: dict[str, Any],
    envelope: dict[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """Call ``target`` once (after checking the tenant's policy again); returns
    ``{"state": "SUCCEEDED", "result"}`` or ``{"state": "FAILED", "error": {"type", "message"}}``."""
    why = targets.refusal(tenant, target)
    if why is not None:
        return {"state": "FAILED", "error": {"type": TARGET_REFUSED, "message": refusal_failure_message(why)}}
    cancel = threading.Event()
    future = pool.submit(
        contextvars.copy_context().run, runners.run, target, envelope, timeout_s, cancel, tenant=tenant
    )
    try:
        result = future.result(timeout=timeout_s)
    except FutureTimeout:
        cancel.set()
        return _failed("Timeout", f"no answer within {timeout_s:g} s")
    except TargetFailure as failed:
        return _failed(failed.error_type, failed.message)
    except Exception as exc:  # a runner's bug is the fallback's failure, not the platform's
        return _failed(type(exc).__name__, str(exc) or repr(exc))
    try:
        if isinstance(result, RawJson):  # a large answer, checked as JSON: over the limit below
            size = result.size
        else:
            json.dumps(result, allow_nan=False)
            size = payload_size(result)
    except (TypeError, ValueError, RecursionError):
        return {"state": "SUCCEEDED", "result": None, "note": "the result was not JSON and was not kept"}
    if size > FALLBACK_RESULT_BYTES:
        note = f"the result of {size} bytes is over the {FALLBACK_RESULT_BYTES}-byte limit and was not kept"
        return {"state": "SUCCEEDED", "result": None, "note": note}
    return {"state": "SUCCEEDED", "result": result}


def _failed(kind: str, message: str) -> dict[str, Any]:
    return {"state": "FAILED", "error": {"type": kind, "message": message[:2000]}}


def fallback_note(outcome: dict[str, Any]) -> str:
    """The outcome in one line, for a history entry or a node's error."""
    if outcome["state"] == "SUCCEEDED":
        return "fallback called: it succeeded"
    error = outcome.get("error") or {}
    return f"fallback called: {outcome['state'].lower()} ({error.get('type')}: {str(error.get('message', ''))[:200]})"
