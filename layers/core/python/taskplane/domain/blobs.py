"""Large values in S3: payloads, results and node outputs too big to keep inline (pure rules).

A value is kept inline in its DynamoDB item up to a limit (:data:`INLINE_BYTES`); a larger one is an
object in the platform's bucket under its tenant's prefix, and the item keeps a :class:`BlobRef`
(key, size, SHA-256). Every key names its tenant (``t/<tenant>/...`` for what tasks and runs own,
``u/<tenant>/...`` for uploads not yet taken by a task): a reference is only ever resolved inside the
caller's own prefix, so another tenant's key is not found. A task that names an upload gets its own
copy, so uploads can expire after a day while payloads live as long as their tasks.

How values get there:

- a task body sent to ``POST /v1/tasks`` may carry a payload up to :data:`MAX_API_PAYLOAD_BYTES`
  (Lambda takes 6 MB of request, API Gateway 10 MB: the event around the body needs the rest);
  above :data:`INLINE_BYTES` the API writes it to S3;
- a larger payload is uploaded by the client to a presigned URL (``POST /v1/uploads``), up to
  :data:`MAX_UPLOAD_BYTES`, and the task names it with ``payload_ref``;
- results and node outputs above :data:`INLINE_BYTES`, up to what a target can answer (Lambda's 6 MB
  response), are written to S3 by the worker and the step function.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from taskplane.domain.models import Task

#: Largest value kept inline in a DynamoDB item (every write of the item is billed per KB of it).
INLINE_BYTES = 64 * 1024
#: Largest payload inside a request to the API (Lambda's 6 MB request payload, less the event).
MAX_API_PAYLOAD_BYTES = 5 * 1024 * 1024
#: Largest payload uploaded to a presigned URL.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: Largest result or node output kept (Lambda's synchronous response limit).
MAX_RESULT_BYTES = 6 * 1024 * 1024
#: The largest payload each target type gets inline in one call (Lambda takes a 6 MB request, SQS a
#: 256 KiB message, EventBridge a 256 KB entry; the envelope needs the rest). A larger payload reaches
#: the target as ``payload_url`` and ``payload_size`` instead.
TARGET_INLINE_BYTES = {
    "lambda": 5 * 1024 * 1024,
    "http": 5 * 1024 * 1024,
    "sqs": 200 * 1024,
    "eventbridge": 200 * 1024,
    "builtin": 6 * 1024 * 1024,
}
#: How long a presigned upload URL works.
UPLOAD_URL_TTL_S = 900
#: How long a presigned download URL (a large result in ``GET /v1/tasks/{id}``) works.
DOWNLOAD_URL_TTL_S = 900

_UPLOAD_ID = re.compile(r"^up_[0-9A-Za-z]{26}$")

#: Lifetimes an owned object can be given, in days past the retention: S3 lifecycle rules expire
#: objects by age, not by date, so each object is tagged with the shortest class that outlives the
#: record that names it (a payload waits for its task's run_at, up to 366 days; an output for its
#: run's end). One lifecycle rule per class (infra/capabilities/blobs.py).
EXPIRY_CLASSES_DAYS = (1, 8, 32, 128, 367)
#: The tag naming an object's class; its value is the whole lifetime in days.
EXPIRY_TAG = "taskplane-expire-days"


def expiry_days(wait_ms: int, retention_days: int) -> int:
    """Days an object must live: the wait until its record can end, plus the record's retention.

    >>> expiry_days(0, 30), expiry_days(10 * 86_400_000, 30), expiry_days(366 * 86_400_000, 30)
    (31, 62, 397)
    """
    wait_days = -(-max(0, wait_ms) // 86_400_000)
    extra = next((c for c in EXPIRY_CLASSES_DAYS if c >= wait_days + 1), EXPIRY_CLASSES_DAYS[-1])
    return retention_days + extra


def lifetime_ms(task: Task, now_ms: int) -> int:
    """How long a task can go on from now: until it is due, then every attempt and every backoff."""
    wait = max(0, task.run_at - now_ms)
    per_attempt = task.timeout_s * 1000 + task.retry.max_delay_ms
    return wait + task.retry.max_attempts * per_attempt


def expiry_classes(retention_days: int) -> list[int]:
    """Every lifetime :func:`expiry_days` can answer for this retention (one lifecycle rule each)."""
    return [retention_days + c for c in EXPIRY_CLASSES_DAYS]


class BlobRef(BaseModel):
    """Where a large value is: its object key, size in bytes and SHA-256 (hex)."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int = Field(ge=0)
    #: None for an upload the platform copied without reading it
    sha256: str | None = None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tenant_prefix(tenant: str) -> str:
    return f"{OWNED_PREFIX}{tenant}/"


#: Uploads live under their own prefix, expired a day after they were made (a lifecycle rule).
UPLOADS_PREFIX = "u/"
#: Everything tasks and runs own, expired with the tasks' retention.
OWNED_PREFIX = "t/"


def upload_key(tenant: str, upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{tenant}/{upload_id}"


def payload_key(tenant: str, task_id: str) -> str:
    return f"{tenant_prefix(tenant)}payloads/{task_id}"


def result_key(tenant: str, task_id: str, attempt: int) -> str:
    return f"{tenant_prefix(tenant)}results/{task_id}/{attempt}"


def window_event_key(tenant: str, trigger_id: str, event_digest: str) -> str:
    """A windowed trigger's event too large for its window item (domain/windows.py); the same key for
    the same event delivered again, so a redelivery writes the same object again."""
    return f"{tenant_prefix(tenant)}windows/{trigger_id}/{event_digest}"


def output_key(tenant: str, run_id: str, node: str, try_id: str) -> str:
    return f"{tenant_prefix(tenant)}runs/{run_id}/{node}/{try_id}"


def inline_limit(target: dict[str, object]) -> int:
    """The largest payload ``target`` gets inline (:data:`TARGET_INLINE_BYTES`)."""
    return TARGET_INLINE_BYTES.get(str(target.get("type")), INLINE_BYTES)


def is_upload_id(value: str) -> bool:
    return bool(_UPLOAD_ID.match(value))
