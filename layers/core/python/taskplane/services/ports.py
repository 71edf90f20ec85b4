"""The seams a use case depends on (a real adapter and a test fake exist for each)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from taskplane.adapters.run_store import CompensationRecord, NodeRecord, RunRecord, RunSummary
    from taskplane.adapters.task_store import TransitionResult
    from taskplane.adapters.workflow_store import VersionRecord, WorkflowRecord
    from taskplane.domain.blobs import BlobRef
    from taskplane.domain.breaker import Breaker, Tally
    from taskplane.domain.dead_letters import DeadLetter
    from taskplane.domain.models import Task
    from taskplane.domain.schedules import Schedule
    from taskplane.domain.states import TaskState
    from taskplane.domain.triggers import Trigger
    from taskplane.domain.wheel import WheelEntry
    from taskplane.domain.workflow import NodeState, Phase, RunState


class Telemetry(Protocol):
    """Metrics: counts and attempt durations per tenant, target type and lane. ``attempt`` (the
    attempt they concern) and ``error_type`` (why an attempt failed) go to OTLP only: as CloudWatch
    dimensions they would multiply the billed custom metrics (observability.py)."""

    def count(
        self,
        name: str,
        *,
        tenant: str,
        target_type: str,
        lane: str,
        value: float = 1,
        attempt: int | None = None,
        error_type: str | None = None,
    ) -> None: ...

    def duration_ms(
        self, ms: float, *, tenant: str, target_type: str, lane: str, attempt: int | None = None
    ) -> None: ...


class NullTelemetry:
    def count(
        self,
        name: str,
        *,
        tenant: str,
        target_type: str,
        lane: str,
        value: float = 1,
        attempt: int | None = None,
        error_type: str | None = None,
    ) -> None:
        return None

    def duration_ms(
        self, ms: float, *, tenant: str, target_type: str, lane: str, attempt: int | None = None
    ) -> None:
        return None


class Idempotency(Protocol):
    def register(self, context: Any) -> None:
        """The Lambda invocation now running (its remaining time bounds a key left in progress)."""
        ...

    def once(
        self, tenant: str, key: str, fingerprint: Any, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``action`` once per (tenant, key); returns (its result, replayed?).

        The same key with another fingerprint raises :class:`~taskplane.domain.errors.Conflict`.
        """
        ...


T = TypeVar("T")


def created_once(
    store: Idempotency | None,
    tenant: str,
    key: str | None,
    fingerprint: Any,
    create: Callable[[], T],
    id_field: str,
    load: Callable[[str], T],
) -> tuple[T, bool]:
    """Create once per idempotency ``key``: (the thing, created?). Without a key (or a store) it just
    creates; with one, the first request creates and records the new id under ``id_field``, and a
    replay answers the thing recorded then (``load``), a different ``fingerprint`` a Conflict."""
    if key is None or store is None:
        return create(), True
    made: list[T] = []

    def action() -> dict[str, Any]:
        made.append(create())
        return {id_field: getattr(made[0], id_field)}

    result, replayed = store.once(tenant, key, fingerprint, action)
    return (made[0] if made else load(result[id_field])), not replayed


# -- stores with two implementations: DynamoDB/EventBridge (adapters/) and SQLite (adapters/sqlite/) --
# A lost conditional write answers False or None (never raises); failures of the store itself raise
# domain errors (Unavailable, Throttled). tests/contract runs the same tests against both.


class TaskRecords(Protocol):
    def create(self, task: Task) -> None: ...

    def create_many(self, tasks: list[Task]) -> list[Exception | None]: ...

    def get(self, tenant: str, task_id: str) -> Task | None: ...

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, state: TaskState | None = None
    ) -> tuple[list[Task], str | None]: ...

    def transition(
        self,
        tenant: str,
        task_id: str,
        expected: TaskState,
        path: builtins.list[TaskState],
        *,
        at_ms: int,
        detail: str | None = None,
        fields: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
        add_attempt: bool = False,
        expected_attempts: int | None = None,
        return_task: bool = True,
        due_field: str | None = None,
        due_by: int | None = None,
    ) -> TransitionResult: ...

    def claim_fallback(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool: ...

    def heartbeat(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool: ...

    def note(self, tenant: str, task_id: str, state: TaskState, *, at_ms: int, detail: str) -> bool: ...

    def delete_unstarted(self, tenant: str, task_id: str) -> None: ...


class BreakerRecords(Protocol):
    def get(self, key: str) -> Breaker: ...

    def count(self, key: str, tally: Tally, stale: list[int]) -> Breaker: ...

    def replace(self, old: Breaker, new: Breaker) -> bool: ...


class LatencyRecords(Protocol):
    def add(self, tenant: str, target: str, slice_ms: int, counts: Mapping[int, int], expires_at: int) -> int:
        """Add bucket counts to one target's minute; returns the writes it took."""
        ...

    def read_many(self, tenant: str, wanted: Mapping[str, list[int]]) -> dict[str, list[dict[int, int]]]: ...

    def remember(self, tenant: str, target: str) -> None: ...

    def targets(self, tenant: str) -> list[str]: ...


class InflightCounts(Protocol):
    def acquire(self, tenant: str, n: int, quota: int) -> bool: ...

    def release(self, tenant: str, n: int = 1) -> None: ...

    def current(self, tenant: str) -> int: ...


class DeadLetterRecords(Protocol):
    def put(self, record: DeadLetter) -> None: ...

    def get(self, tenant: str, task_id: str) -> DeadLetter | None: ...

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[DeadLetter], str | None]: ...

    def claim(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool: ...

    def finish(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool: ...

    def release(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool: ...


class ScheduleRecords(Protocol):
    def create(self, schedule: Schedule, entry: WheelEntry | None) -> None: ...

    def get(self, tenant: str, schedule_id: str) -> Schedule | None: ...

    def list(self, tenant: str, *, limit: int, cursor: str | None) -> tuple[list[Schedule], str | None]: ...

    def update(
        self,
        schedule: Schedule,
        *,
        expected_next: int | None,
        entry: WheelEntry | None = None,
        expected_updated: int | None = None,
    ) -> bool: ...

    def delete(self, tenant: str, schedule_id: str) -> bool: ...


class TriggerRecords(Protocol):
    def put(self, trigger: Trigger) -> None: ...

    def get(self, tenant: str, trigger_id: str) -> Trigger | None: ...

    def list(self, tenant: str) -> list[Trigger]: ...

    def delete(self, tenant: str, trigger_id: str) -> None: ...


class TriggerRuleSet(Protocol):
    """The rule that routes a trigger's events to its lane (raises InvalidRequest for a bad pattern/bus)."""

    def create(self, trigger: Trigger, lane: str) -> None: ...

    def delete(self, trigger: Trigger) -> None: ...


class WorkflowRecords(Protocol):
    def get(self, tenant: str, name: str) -> WorkflowRecord | None: ...

    def list_workflows(
        self, tenant: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowRecord], str | None]: ...

    def publish(
        self, before: WorkflowRecord | None, after: WorkflowRecord, version: VersionRecord
    ) -> None: ...

    def set_routing(self, record: WorkflowRecord, routing: dict[int, int], now_ms: int) -> None: ...

    def versions(self, tenant: str, name: str) -> list[VersionRecord]: ...

    def version(self, tenant: str, name: str, version: int) -> VersionRecord | None: ...


class RunLedger(Protocol):
    def create(self, run: RunRecord, *, expires_at: int | None = None) -> None: ...

    def get(self, tenant: str, run_id: str) -> RunRecord | None: ...

    def ledger(
        self, tenant: str, run_id: str
    ) -> tuple[RunRecord | None, dict[str, NodeRecord], dict[str, CompensationRecord]]: ...

    def update_run(
        self,
        run: RunRecord,
        *,
        states: Iterable[RunState],
        exec: int | None = None,
        phases: Iterable[Phase] | None = None,
        changes: dict[str, Any],
        remove: tuple[str, ...] = (),
        now_ms: int,
        expires_at: int | None = None,
    ) -> RunRecord | None: ...

    def record_error(self, tenant: str, run_id: str, exec: int, error: dict[str, Any]) -> None: ...

    def list_runs(
        self, tenant: str, workflow: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunSummary], str | None]: ...

    def register_gate(
        self, tenant: str, run_id: str, node: str, token: str, exec: int, *, expires_at: int
    ) -> set[str]: ...

    def need_done(
        self, tenant: str, run_id: str, node: str, need: str, exec: int, *, expires_at: int
    ) -> tuple[str | None, set[str]]: ...

    def start_node(
        self, tenant: str, run_id: str, node: str, *, exec: int, try_id: str, now_ms: int, expires_at: int
    ) -> NodeRecord | None: ...

    def withdraw_start(self, tenant: str, run_id: str, node: str, *, try_id: str) -> None: ...

    def node_inputs(
        self, tenant: str, run_id: str, needs: Iterable[str]
    ) -> tuple[RunRecord | None, dict[str, Any]]: ...

    def node_succeeded(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str,
        attempt: int,
        now_ms: int,
        output_json: str,
        out_bytes: int,
        preview_json: str | None,
        expires_at: int,
        output_ref: BlobRef | None = None,
    ) -> bool: ...

    def node_failed(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str | None,
        state: NodeState,
        error: dict[str, Any],
        now_ms: int,
        expect: NodeState = ...,
    ) -> bool: ...

    def output(self, tenant: str, run_id: str, node: str) -> tuple[bool, Any]: ...

    def start_compensation(
        self, tenant: str, run_id: str, node: str, *, try_id: str, now_ms: int, expires_at: int
    ) -> tuple[bool, int]: ...

    def compensation_finished(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str,
        state: NodeState,
        error: dict[str, Any] | None,
        now_ms: int,
    ) -> bool: ...
