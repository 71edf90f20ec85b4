"""Task contract (what callers send), task entity (what we keep) and the mapping between them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)

from taskplane.domain.adaptive import AutoTimeout, TimeoutSpec, auto_only
from taskplane.domain.blobs import BlobRef
from taskplane.domain.clock import from_datetime, to_rfc3339
from taskplane.domain.retry import RetryPolicy
from taskplane.domain.states import TaskState
from taskplane.domain.targets import (  # noqa: F401  (re-exported: the API's shapes live with the task's)
    MAX_HEADER_BYTES,
    TARGET_TYPES,
    BuiltinTarget,
    EventBridgeTarget,
    HttpTarget,
    LambdaTarget,
    SqsTarget,
    Target,
)

#: Largest accepted ``payload``, serialized as compact JSON (SQS bills per 64 KiB; DynamoDB items cap at 400 KB).
MAX_PAYLOAD_BYTES = 64 * 1024
#: Deepest accepted ``payload`` nesting (the response serializer gives up at 255 levels).
MAX_PAYLOAD_DEPTH = 64
#: Largest ``run_at`` / ``delay_ms`` horizon.
MAX_DELAY_MS = 366 * 24 * 3600 * 1000
MAX_TIMEOUT_S = 900
Priority = Literal["high", "default", "low"]
PRIORITIES: tuple[str, ...] = ("high", "default", "low")

#: The instants ``run_at`` and ``deadline`` may name (epoch milliseconds inside, RFC 3339 outside).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def representable(value: datetime | None) -> datetime | None:
    """``value`` when it is an instant the platform can store and render, else ValueError (for a
    validator). An offset can push a valid-looking time out of datetime's range in UTC
    (9999-12-31T23:00-14:00), which would only fail later, when the accepted resource is rendered;
    every door that takes an instant (a task's ``run_at`` and ``deadline``, a schedule's window) uses it.
    """
    if value is None:
        return value
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or utc < _EARLIEST:
        raise ValueError("must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return value


def payload_size(payload: Any) -> int:
    # surrogatepass: JSON may carry a lone surrogate ("\ud800"), which strict UTF-8 cannot encode.
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def payload_depth(payload: Any) -> int:
    """How deeply arrays and objects nest in ``payload`` (a scalar is 0); iterative, so any depth is safe."""
    depth, level = 0, [payload]
    while containers := [v for v in level if isinstance(v, list | dict)]:
        depth += 1
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return depth


class TaskSubmit(BaseModel):
    """The body of ``POST /v1/tasks``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"target": {"type": "builtin", "name": "echo"}, "payload": {"hello": "world"}}]
        },
    )

    target: Target
    payload: Any = None
    run_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with an offset; not with delay_ms"
    )
    delay_ms: StrictInt | None = Field(default=None, ge=0, le=MAX_DELAY_MS)
    timeout_s: TimeoutSpec = Field(
        default=300, description='seconds, or "auto": from the target\'s observed durations (auto_timeout)'
    )
    auto_timeout: AutoTimeout | None = Field(
        default=None,
        description='with timeout_s "auto": k, quantile, floor_s, ceiling_s, window_s, min_samples',
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    priority: Priority = "default"
    labels: dict[
        Annotated[StrictStr, Field(min_length=1, max_length=64)], Annotated[StrictStr, Field(max_length=256)]
    ] = Field(default_factory=dict, max_length=20)
    deadline: AwareDatetime | None = None
    idempotency_key: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None
    payload_ref: Annotated[StrictStr, Field(pattern=r"^up_[0-9A-Za-z]{26}$")] | None = Field(
        default=None,
        description="the upload_id of a payload PUT to a URL from POST /v1/uploads (instead of payload)",
    )

    @field_validator("auto_timeout")
    @classmethod
    def _auto_only(cls, value: AutoTimeout | None, info: ValidationInfo) -> AutoTimeout | None:
        return auto_only(value, info.data)

    def hard_timeout_s(self) -> int:
        """The timeout the platform plans with: the number given, or the auto policy's ceiling."""
        return self.timeout_s if isinstance(self.timeout_s, int) else self.auto_policy().ceiling_s

    def auto_policy(self) -> AutoTimeout:
        return self.auto_timeout or AutoTimeout()

    @field_validator("payload_ref")
    @classmethod
    def _one_payload(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("payload") is not None:
            raise ValueError("give payload or payload_ref, not both")
        return value

    @field_validator("payload")
    @classmethod
    def _not_too_deep(cls, value: Any) -> Any:
        if payload_depth(value) > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"must not nest arrays and objects more than {MAX_PAYLOAD_DEPTH} levels deep")
        return value

    @field_validator("run_at", "deadline")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        return representable(value)

    @field_validator("delay_ms")
    @classmethod
    def _one_start_time(cls, value: int | None, info: ValidationInfo) -> int | None:
        # A field validator (run_at is validated first) so the error's location names delay_ms.
        if value is not None and info.data.get("run_at") is not None:
            raise ValueError("give run_at or delay_ms, not both")
        return value

    def due_ms(self, now_ms: int) -> int:
        """When the task should start (``now`` when neither run_at nor delay_ms is given)."""
        if self.run_at is not None:
            return from_datetime(self.run_at)
        return now_ms + (self.delay_ms or 0)


class TaskErrorInfo(BaseModel):
    type: str
    message: str


class HistoryEntry(BaseModel):
    state: TaskState
    at: int
    detail: str | None = None


class Task(BaseModel):
    """A task as the platform keeps it (times are epoch milliseconds)."""

    task_id: str
    tenant: str
    state: TaskState
    target: dict[str, Any]
    payload: Any = None
    run_at: int
    created_at: int
    dispatched_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    next_attempt_at: int | None = None
    #: when the worker running the current attempt last said it is alive (long attempts only)
    heartbeat_at: int | None = None
    attempts: int = 0
    #: the most an attempt may run (with ``auto_timeout``: its ceiling; each attempt's own is in its history)
    timeout_s: int = 300
    #: ``timeout_s: "auto"``: how each attempt's hard timeout is derived (domain/adaptive.py)
    auto_timeout: AutoTimeout | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    #: the retry policy's fallback, once called: {"state", "result" | "error", "at"}
    fallback: dict[str, Any] | None = None
    priority: Priority = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    deadline: int | None = None
    result: Any = None
    #: where a payload or a result too large to keep inline is (domain/blobs.py)
    payload_ref: BlobRef | None = None
    result_ref: BlobRef | None = None
    error: TaskErrorInfo | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    idempotency_key: str | None = None
    #: counted against its tenant's in-flight quota at admission (given back when it ends)
    counted: bool = False
    #: the gray-release route chosen at submission: {"rule", "variant", "target"} (domain/gray.py)
    route: dict[str, Any] | None = None
    #: set on tasks a schedule or a trigger started
    schedule_id: str | None = None
    fire_at: int | None = None
    trigger_id: str | None = None

    @property
    def target_type(self) -> str:
        return str(self.target.get("type", "unknown"))

    @property
    def effective_target(self) -> dict[str, Any]:
        """What the worker calls: the routed variant when a gray-release rule chose one."""
        return dict(self.route["target"]) if self.route else self.target

    def to_api(self) -> dict[str, Any]:
        """The task resource of the HTTP contract (RFC 3339 times, no tenant)."""
        return {
            "task_id": self.task_id,
            "state": self.state.value,
            "target": self.target,
            "payload": self.payload,
            "priority": self.priority,
            "labels": self.labels,
            "run_at": to_rfc3339(self.run_at),
            "created_at": to_rfc3339(self.created_at),
            "dispatched_at": to_rfc3339(self.dispatched_at),
            "started_at": to_rfc3339(self.started_at),
            "finished_at": to_rfc3339(self.finished_at),
            "next_attempt_at": to_rfc3339(self.next_attempt_at),
            "deadline": to_rfc3339(self.deadline),
            "attempts": self.attempts,
            "timeout_s": "auto" if self.auto_timeout is not None else self.timeout_s,
            **({"auto_timeout": self.auto_timeout.model_dump()} if self.auto_timeout is not None else {}),
            "retry": self.retry.to_api(),
            **({"fallback": _fallback_view(self.fallback)} if self.fallback is not None else {}),
            "result": self.result,
            # Large values: their size here; the API adds a short-lived URL to read them.
            **({"payload_size": self.payload_ref.size} if self.payload_ref else {}),
            **({"result_size": self.result_ref.size} if self.result_ref else {}),
            "error": self.error.model_dump() if self.error else None,
            "history": [
                {"state": h.state.value, "at": to_rfc3339(h.at), "detail": h.detail} for h in self.history
            ],
            "schedule_id": self.schedule_id,
            "fire_at": to_rfc3339(self.fire_at),
            "trigger_id": self.trigger_id,
            "route": {"rule": self.route["rule"], "variant": self.route["variant"]} if self.route else None,
        }


def _fallback_view(record: dict[str, Any]) -> dict[str, Any]:
    view = dict(record)
    if "at" in view:
        view["at"] = to_rfc3339(view["at"])
    return view


def new_task(body: TaskSubmit, *, task_id: str, tenant: str, now_ms: int) -> Task:
    """Build the entity for a freshly accepted submission: PENDING when due, else SCHEDULED."""
    due = body.due_ms(now_ms)
    state = TaskState.SCHEDULED if due > now_ms else TaskState.PENDING
    return Task(
        task_id=task_id,
        tenant=tenant,
        state=state,
        target=body.target.model_dump(),
        payload=body.payload,
        run_at=due,
        created_at=now_ms,
        timeout_s=body.hard_timeout_s(),
        auto_timeout=body.auto_policy() if body.timeout_s == "auto" else None,
        retry=body.retry,
        priority=body.priority,
        labels=dict(body.labels),
        deadline=from_datetime(body.deadline) if body.deadline else None,
        history=[HistoryEntry(state=state, at=now_ms, detail="submitted")],
        idempotency_key=body.idempotency_key,
    )
