"""The rules every door applies to a task body before any work is accepted.

Work enters taskplane by many doors: ``POST /v1/tasks`` and its batch, a schedule's template, a
trigger's template, a workflow's nodes and their compensations, a run, a redrive, and (at the far
end) the worker and the step function just before they call a target. A rule kept at one door and
not at another is a hole, so the doors share these functions instead of repeating the checks:

- :func:`check_task_body`: the payload limit (413, as for tasks) and the tenant's target policy (400)
  for the target and the retry policy's ``fallback`` (:func:`check_retry`, also for workflow nodes);
- :func:`refusal_failure_message`: the one wording of a refusal found at run time, when the policy
  changed after the work was accepted (a schedule made before its target left the allow-list).
"""

from __future__ import annotations

from typing import Any

from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.errors import InvalidRequest, PayloadTooLarge
from taskplane.domain.models import MAX_PAYLOAD_BYTES, TaskSubmit, payload_size
from taskplane.domain.retry import RetryPolicy

#: ``error.type`` of a task or node whose target the tenant may no longer call (never retried).
TARGET_REFUSED = "TargetRefused"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check_payload(payload: Any, *, field: str = "payload", limit: int = MAX_PAYLOAD_BYTES) -> None:
    """413 when ``payload`` is over ``limit`` bytes of compact JSON."""
    size = payload_size(payload)
    if size > limit:
        raise PayloadTooLarge(
            f"{field} is {size} bytes; the limit is {limit} bytes",
            details=[{"field": field, "size": size, "limit": limit}],
        )


def check_target(policy: TargetPolicy, tenant: str, target: dict[str, Any], *, field: str = "target") -> None:
    """400 naming ``field`` when ``tenant`` may not call ``target``."""
    why = policy.refusal(tenant, target)
    if why is not None:
        raise InvalidRequest(
            f"target refused: {why}",
            details=[{"field": field, "problem": "target_refused", "message": why}],
        )


def check_task_body(
    policy: TargetPolicy,
    tenant: str,
    body: TaskSubmit,
    *,
    prefix: str = "",
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> None:
    """Everything a task body must pass at any door; ``prefix`` names where the body sits (``task``)."""
    check_payload(body.payload, field=_join(prefix, "payload"), limit=max_payload_bytes)
    check_target(policy, tenant, body.target.model_dump(), field=_join(prefix, "target"))
    check_retry(policy, tenant, body.retry, field=_join(prefix, "retry"))


def check_retry(
    policy: TargetPolicy, tenant: str, retry: RetryPolicy | None, *, field: str = "retry"
) -> None:
    """400 naming ``<field>.fallback`` when the retry policy's fallback is a target ``tenant`` may not call."""
    if retry is not None and retry.fallback is not None:
        check_target(policy, tenant, retry.fallback.model_dump(), field=f"{field}.fallback")


def refusal_failure_message(why: str) -> str:
    """The error message of an attempt not made because its target is refused."""
    return f"not called: {why} (the tenant's target policy changed after the work was accepted)"
