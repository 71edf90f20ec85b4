"""List and redrive a tenant's dead letters.

FAILED is terminal (ARCHITECTURE §1), so a redrive does not move the failed task: it queues a fresh
task with the same target, payload, timeout, retry policy, priority, labels and deadline, whose first
history entry says ``redrive of <old id>``; the failed task stays FAILED and gets a history note
``redriven as <new id>``; the dead-letter record turns ``redriven`` with ``redriven_as``. The new
task's id is claimed on the record before the task is written, so a redrive interrupted half-way is
finished (with the same id) by the next one and never makes two tasks.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.task_store import TaskStore
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.blobs import expiry_days, lifetime_ms, payload_key
from taskplane.domain.clock import Clock
from taskplane.domain.dead_letters import DeadLetter
from taskplane.domain.entry import check_retry, check_target
from taskplane.domain.errors import Conflict, InvalidRequest, NotFound, TaskplaneError, Throttled
from taskplane.domain.ids import is_valid_id, new_id
from taskplane.domain.models import HistoryEntry, Task
from taskplane.domain.states import TaskState
from taskplane.services.admission import Admission
from taskplane.services.ports import DeadLetterRecords

#: Most dead letters one redrive call handles (the rest: call again).
MAX_REDRIVE = 100


@dataclass
class DeadLetterService:
    records: DeadLetterRecords
    tasks: TaskStore
    clock: Clock
    #: queues a freshly stored task (TaskService.queue_new); raises when it could not be queued
    queue: Callable[[Task], None]
    make_id: Callable[[int], str] = new_id
    #: the tenant's target policy, as for tasks: a redrive is no way around it
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: the bucket of large payloads (a redriven task gets its own copy)
    blobs: BlobStore | None = None
    retention_days: int = 30
    #: the same backpressure as a submission: a redrive is no way around a full lane or the quota
    admission: Admission = field(default_factory=Admission)
    #: the tenant's gray-release routing, as for tasks (TaskService.routed)
    route: Callable[[Task], Task] = lambda task: task

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        if cursor is not None and not is_valid_id(cursor):
            raise InvalidRequest("cursor is not one this API returned", details=[{"field": "cursor"}])
        return self.records.list(tenant, limit=limit, cursor=cursor, status=status)

    def redrive(self, tenant: str, ids: builtins.list[str] | None) -> builtins.list[dict[str, Any]]:
        """Redrive the chosen dead letters (None: every one still dead, up to MAX_REDRIVE)."""
        if ids is None:
            waiting, _ = self.records.list(tenant, limit=MAX_REDRIVE, status="dead")
            half_done, _ = self.records.list(tenant, limit=MAX_REDRIVE, status="redriving")
            ids = [d.task_id for d in [*half_done, *waiting]][:MAX_REDRIVE]
        results: list[dict[str, Any]] = []
        for task_id in dict.fromkeys(ids):
            try:
                new = self._redrive_one(tenant, task_id)
                results.append({"task_id": task_id, "redriven_as": new})
            except TaskplaneError as exc:
                error = {"code": exc.code, "message": exc.message}
                result: dict[str, Any] = {"task_id": task_id, "error": error}
                if isinstance(exc, Throttled):
                    result["retry_after_s"] = exc.retry_after_s
                results.append(result)
        return results

    def _redrive_one(self, tenant: str, task_id: str) -> str:
        record = self.records.get(tenant, task_id) if is_valid_id(task_id) else None
        if record is None:
            raise NotFound(f"dead letter {task_id!r} not found")
        if record.status == "redriven":
            raise Conflict(f"dead letter {task_id} was already redriven as {record.redriven_as}")
        old = self.tasks.get(tenant, task_id)
        if old is None or old.state is not TaskState.FAILED:
            raise Conflict(f"task {task_id} is not FAILED")
        check_target(self.targets, tenant, old.target)
        check_retry(self.targets, tenant, old.retry)
        self.admission.check_lane(old.priority)
        now = self.clock.now_ms()
        new_task_id = record.redriven_as if record.status == "redriving" else None
        # The fresh task is counted against the quota before anything is claimed, so a refusal leaves
        # the letter dead; a task an interrupted redrive already stored was counted then.
        holding = new_task_id is None or self.tasks.get(tenant, new_task_id) is None
        if holding:
            self.admission.acquire(tenant)
        try:
            if new_task_id is None:
                new_task_id = self.make_id(now)
                if not self.records.claim(tenant, task_id, new_task_id, now):
                    raise Conflict(f"dead letter {task_id} is being redriven by another request")
            fresh = self.route(
                Task(
                    task_id=new_task_id,
                    tenant=tenant,
                    state=TaskState.PENDING,
                    target=old.target,
                    payload=old.payload,
                    run_at=now,
                    created_at=now,
                    dispatched_at=now,
                    timeout_s=old.timeout_s,
                    auto_timeout=old.auto_timeout,
                    retry=old.retry,
                    priority=old.priority,
                    labels=old.labels,
                    deadline=old.deadline,
                    history=[HistoryEntry(state=TaskState.PENDING, at=now, detail=f"redrive of {task_id}")],
                    counted=holding and self.admission.counts,
                )
            )
            if old.payload_ref is not None and self.blobs is not None:
                # The fresh task owns a copy, living as long as it may (the old one's expires with it).
                key = payload_key(tenant, new_task_id)
                self.blobs.copy(
                    old.payload_ref.key,
                    key,
                    expire_days=expiry_days(lifetime_ms(fresh, now), self.retention_days),
                )
                fresh = fresh.model_copy(
                    update={"payload_ref": old.payload_ref.model_copy(update={"key": key})}
                )
            existing = self.tasks.get(tenant, new_task_id)
            if existing is None:
                try:
                    self.tasks.create(fresh)
                except Conflict:
                    # A concurrent finisher stored it, counted by that call: this one's goes back.
                    if holding:
                        self.admission.release(tenant)
                        holding = False
            if existing is None or existing.state is TaskState.PENDING:
                try:
                    self.queue(fresh)
                except TaskplaneError:
                    # Not queued: withdraw it, so no PENDING task waits for a message that never comes.
                    self.tasks.delete_unstarted(tenant, new_task_id)
                    self.records.release(tenant, task_id, new_task_id, now)
                    raise
            holding = False  # the stored task holds the count now; its end gives it back
            self.tasks.note(tenant, task_id, TaskState.FAILED, at_ms=now, detail=f"redriven as {new_task_id}")
            self.records.finish(tenant, task_id, new_task_id, now)
            return new_task_id
        finally:
            if holding:
                self.admission.release(tenant)
