"""Submit, read, list and cancel tasks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.queues import MAX_DELAY_S, LaneMessage, Lanes
from taskplane.adapters.task_store import TaskStore
from taskplane.adapters.wheel_store import WheelStore
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.blobs import (
    DOWNLOAD_URL_TTL_S,
    INLINE_BYTES,
    MAX_UPLOAD_BYTES,
    BlobRef,
    expiry_days,
    lifetime_ms,
    payload_key,
    upload_key,
)
from taskplane.domain.clock import Clock
from taskplane.domain.entry import check_task_body
from taskplane.domain.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, TaskplaneError
from taskplane.domain.gray import RouteRule, choose_route
from taskplane.domain.ids import is_valid_id, new_id
from taskplane.domain.models import MAX_DELAY_MS, MAX_PAYLOAD_BYTES, Task, TaskSubmit, new_task, payload_size
from taskplane.domain.ring import Placement, shard_for
from taskplane.domain.states import CANCELLABLE, TaskState
from taskplane.domain.wheel import (
    DISPATCH_LEAD_MS,
    WheelEntry,
    goes_through_wheel,
    slot_of,
    sort_key,
)
from taskplane.services.admission import Admission
from taskplane.services.ports import Idempotency, NullTelemetry, Telemetry, created_once
from taskplane.services.wakes import Wakes

MAX_BATCH = 500
#: A wheel-bound task due this soon is checked against the tick's saved position: a writer whose
#: clock runs more than the tick's look-back behind could put it where the tick has already been.
SKEW_GUARD_MS = 60_000


def arrival_delay_s(due_ms: int, now_ms: int, lead_ms: int = DISPATCH_LEAD_MS) -> int:
    """Whole seconds of SQS DelaySeconds that bring a message in at most ``lead_ms`` before it is
    due, and less than a second earlier than that (rounded down: never later), capped at 15 minutes.
    The worker waits out the rest, so the start is precise (see Executor.handle)."""
    return max(0, min(MAX_DELAY_S, (due_ms - now_ms - lead_ms) // 1000))


def due_of(task: Task) -> int:
    return task.next_attempt_at if task.state is TaskState.RETRYING and task.next_attempt_at else task.run_at


def delivery_for(task: Task, now_ms: int) -> LaneMessage:
    """The lane message that brings ``task`` to a worker when it is due (a waiting task's message
    carries its due time and comes in a little ahead; the worker waits until then)."""
    waiting = task.state in (TaskState.SCHEDULED, TaskState.RETRYING)
    due = due_of(task)
    return LaneMessage(
        tenant=task.tenant,
        task_id=task.task_id,
        attempt=task.attempts + 1,
        lane=task.priority,
        delay_s=arrival_delay_s(due, now_ms) if waiting else 0,
        state=task.state.value,
        due_ms=due if waiting else None,
    )


def wheel_entry_for(task: Task, shards: int | Placement) -> WheelEntry:
    """The wheel entry that dispatches ``task`` (its first attempt, or a retry) when it is due."""
    return WheelEntry(
        shard=shard_for(task.task_id, shards),
        due_ms=due_of(task),
        item_id=task.task_id,
        tenant=task.tenant,
        kind="retry" if task.state is TaskState.RETRYING else "task",
        lane=task.priority,
        attempt=task.attempts + 1,
    )


@dataclass
class TaskService:
    store: TaskStore
    lanes: Lanes
    clock: Clock
    idempotency: Idempotency | None = None
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    make_id: Callable[[int], str] = new_id
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    wheel: WheelStore | None = None
    #: where new wheel entries go: the ring (adapters/ring_store.CachedRing) or a fixed shard count
    shards: int | Placement = 1
    admission: Admission = field(default_factory=Admission)
    #: gray-release rules per tenant (domain/gray.py)
    routes: dict[str, list[RouteRule]] = field(default_factory=dict)
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: wakes an idle tick when an entry lands due before the shard's next check (None: nobody to wake)
    wakes: Wakes | None = None
    #: the bucket of large payloads (None: payloads over the inline limit are refused)
    blobs: BlobStore | None = None
    retention_days: int = 30

    def _via_wheel(self, task: Task, now_ms: int) -> bool:
        return (
            self.wheel is not None
            and task.state is TaskState.SCHEDULED
            and goes_through_wheel(task.run_at, now_ms)
        )

    # -- submit ---------------------------------------------------------------------------------
    def submit(self, tenant: str, body: TaskSubmit, idempotency_key: str | None = None) -> tuple[Task, bool]:
        """Accept one task; returns (task, created). A replayed idempotency key returns the first task."""
        self._check_body(tenant, body)
        self.admission.check_lane(body.priority)
        return created_once(
            self.idempotency,
            tenant,
            idempotency_key or body.idempotency_key,
            body.model_dump(mode="json", exclude={"idempotency_key"}),
            lambda: self._admit(tenant, body),
            "task_id",
            lambda task_id: self.get(tenant, task_id),
        )

    def submit_batch(
        self, tenant: str, items: list[TaskSubmit | TaskplaneError]
    ) -> list[Task | TaskplaneError]:
        """Accept many tasks; invalid items and failed writes are reported per item, in order."""
        if len(items) > MAX_BATCH:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH} tasks, got {len(items)}")
        outcomes: list[Task | TaskplaneError] = [None] * len(items)  # type: ignore[list-item]
        fresh: list[tuple[int, Task]] = []
        now = self.clock.now_ms()
        for i, item in enumerate(items):
            if isinstance(item, TaskplaneError):
                outcomes[i] = item
                continue
            try:
                self._check_body(tenant, item)
                self.admission.check_lane(item.priority)
                if item.idempotency_key and self.idempotency is not None:
                    outcomes[i] = self.submit(tenant, item)[0]
                    continue
            except TaskplaneError as exc:
                outcomes[i] = exc
                continue
            try:
                task = self._placed(
                    self.routed(new_task(item, task_id=self.make_id(now), tenant=tenant, now_ms=now)),
                    item,
                    now,
                )
            except TaskplaneError as exc:
                outcomes[i] = exc
                continue
            if self.admission.counts:
                task = task.model_copy(update={"counted": True})
            if task.state is TaskState.PENDING:
                task = task.model_copy(update={"dispatched_at": now})
            fresh.append((i, task))
        # The whole batch is counted at once: over the quota, nothing of it is accepted (429).
        self.admission.acquire(tenant, len(fresh))
        if self.wheel is not None:
            wheeled = [(i, t) for i, t in fresh if self._via_wheel(t, now)]
            put = self.wheel.put_many([wheel_entry_for(t, self.shards) for _, t in wheeled])
            for (i, _), err in zip(wheeled, put, strict=True):
                if err is not None:
                    outcomes[i] = err if isinstance(err, TaskplaneError) else TaskplaneError(str(err))
            failed = {i for (i, _), err in zip(wheeled, put, strict=True) if err is not None}
            fresh = [(i, t) for i, t in fresh if i not in failed]
        stored = self.store.create_many([t for _, t in fresh])
        wheeled_ok = [
            t for (_, t), err in zip(fresh, stored, strict=True) if err is None and self._via_wheel(t, now)
        ]
        behind = self._after_wheel_write([wheel_entry_for(t, self.shards) for t in wheeled_ok], now)
        for t, late in zip(wheeled_ok, behind, strict=True):
            if late:
                self._send_past_the_tick(t, now)
        for (i, t), err in zip(fresh, stored, strict=True):
            if err is None and self._via_wheel(t, now):
                outcomes[i] = t
                self.telemetry.count("submitted", **self._dims(t))
        to_send = [
            (i, t)
            for (i, t), err in zip(fresh, stored, strict=True)
            if err is None and not self._via_wheel(t, now)
        ]
        for (i, _), err in zip(fresh, stored, strict=True):
            if err is not None:
                outcomes[i] = err if isinstance(err, TaskplaneError) else TaskplaneError(str(err))
        sent = self.lanes.send([delivery_for(t, now) for _, t in to_send])
        for (i, task), err in zip(to_send, sent, strict=True):
            if err is None:
                outcomes[i] = task
                self.telemetry.count("submitted", **self._dims(task))
                self.telemetry.count("dispatched", **self._dims(task))
            else:
                self._withdraw(task)
                outcomes[i] = err if isinstance(err, TaskplaneError) else TaskplaneError(str(err))
        accepted = {o.task_id for o in outcomes if isinstance(o, Task)}
        self.admission.release(tenant, sum(1 for _, t in fresh if t.task_id not in accepted))
        return outcomes

    def _admit(self, tenant: str, body: TaskSubmit) -> Task:
        """Accept within the tenant's in-flight quota (counted first; the count given back on failure)."""
        self.admission.acquire(tenant)
        try:
            return self._accept(tenant, body, counted=self.admission.counts)
        except BaseException:
            self.admission.release(tenant)
            raise

    def _accept(self, tenant: str, body: TaskSubmit, counted: bool = False) -> Task:
        now = self.clock.now_ms()
        task = self._placed(
            self.routed(new_task(body, task_id=self.make_id(now), tenant=tenant, now_ms=now)), body, now
        )
        if counted:
            task = task.model_copy(update={"counted": True})
        if self._via_wheel(task, now):
            assert self.wheel is not None
            # The entry first: a crash before the task is stored leaves an entry the worker drops
            # (no such task), never a task nothing will dispatch.
            entry = wheel_entry_for(task, self.shards)
            self.wheel.put(entry)
            self.store.create(task)
            if self._after_wheel_write([entry], now)[0]:
                self._send_past_the_tick(task, now)
            self.telemetry.count("submitted", **self._dims(task))
            return task
        if task.state is TaskState.PENDING:
            task = task.model_copy(update={"dispatched_at": now})
        self.store.create(task)
        try:
            self.lanes.send_one(delivery_for(task, now))
        except Exception:
            # Not queued means not accepted: remove the record so no task waits for a message
            # that will never come, and let the caller retry.
            self._withdraw(task)
            raise
        self.telemetry.count("submitted", **self._dims(task))
        self.telemetry.count("dispatched", **self._dims(task))
        return task

    def _after_wheel_write(self, entries: list[WheelEntry], now_ms: int) -> list[bool]:
        """After entries were written: which near-term ones sit at or before their shard's saved tick
        position (so the tick, already past them, would never send them), and wake the tick of a
        shard that has an entry due before its next check and no tick running. One lease read per
        shard involved, shared by both."""
        flags = [False] * len(entries)
        if self.wheel is None:
            return flags
        wakes = self.wakes
        near = {e.shard for e in entries if e.due_ms - now_ms <= SKEW_GUARD_MS}
        if wakes is not None:
            near |= wakes.near(entries, now_ms)
        leases = (wakes or Wakes(self.wheel)).leases(sorted(near))
        for i, entry in enumerate(entries):
            lease = leases.get(entry.shard)
            if entry.due_ms - now_ms > SKEW_GUARD_MS or lease is None or lease.resume_slot is None:
                continue
            # Entries due in the same second may share one wheel item, whose key is its earliest
            # entry's: compare from the start of the second, so no entry of a passed item is missed.
            second = entry.due_ms - entry.due_ms % 1000
            flags[i] = (slot_of(second), sort_key(second, "")) <= (lease.resume_slot, lease.resume_sk)
        if wakes is not None:
            wakes.after_write(entries, now_ms, leases)
        return flags

    def _send_past_the_tick(self, task: Task, now_ms: int) -> None:
        """Queue a task the tick has already passed (the worker holds it until due; a second send
        from the wheel would be harmless: an attempt starts once)."""
        try:
            self.lanes.send_one(delivery_for(task, now_ms))
            self.telemetry.count("rescued_behind_tick", **self._dims(task))
        except TaskplaneError:
            pass  # best effort: the entry is still in the wheel for a tick that resumes earlier

    def _withdraw(self, task: Task) -> None:
        self.store.delete_unstarted(task.tenant, task.task_id)

    def _check_body(self, tenant: str, body: TaskSubmit) -> None:
        check_task_body(self.targets, tenant, body, max_payload_bytes=self.max_payload_bytes)
        self._check_horizon(body)

    def _placed(self, task: Task, body: TaskSubmit, now_ms: int) -> Task:
        """The task with its payload where it belongs: inline when small, else in the bucket (a large
        payload sent inline is written there; a named upload is copied, so the task owns its copy)."""
        if body.payload_ref is None and payload_size(body.payload) <= INLINE_BYTES:
            return task
        if self.blobs is None:
            raise PayloadTooLarge(
                f"payload is over {INLINE_BYTES} bytes and this deployment keeps no large payloads",
                [{"field": "payload", "limit": INLINE_BYTES}],
            )
        expire = expiry_days(lifetime_ms(task, now_ms), self.retention_days)
        key = payload_key(task.tenant, task.task_id)
        if body.payload_ref is None:
            data = json.dumps(body.payload, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
            return task.model_copy(
                update={"payload": None, "payload_ref": self.blobs.put(key, data, expire_days=expire)}
            )
        source = upload_key(task.tenant, body.payload_ref)
        size = self.blobs.size(source)
        if size is None:
            raise InvalidRequest(
                f"upload {body.payload_ref} not found: PUT the payload to its upload_url first "
                "(uploads are kept for a day)",
                [{"field": "payload_ref", "problem": "no_upload"}],
            )
        if size > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(
                f"upload {body.payload_ref} is {size} bytes; the limit is {MAX_UPLOAD_BYTES} bytes",
                [{"field": "payload_ref", "size": size, "limit": MAX_UPLOAD_BYTES}],
            )
        self.blobs.copy(source, key, expire_days=expire)
        return task.model_copy(update={"payload": None, "payload_ref": BlobRef(key=key, size=size)})

    def view(self, task: Task) -> dict[str, Any]:
        """The task resource, with short-lived URLs to read a payload or a result kept in the bucket."""
        body = task.to_api()
        if self.blobs is not None:
            for name, ref in (("payload_url", task.payload_ref), ("result_url", task.result_ref)):
                if ref is not None:
                    body[name] = self.blobs.download_url(ref.key, DOWNLOAD_URL_TTL_S)
        return body

    def routed(self, task: Task) -> Task:
        """``task`` with the route its tenant's gray-release rules give it (domain/gray.py); every door
        that makes a task (submit, batch, a schedule's fire, a trigger, a window, a redrive) calls it."""
        route = choose_route(self.routes.get(task.tenant, []), task.task_id, task.labels, task.target)
        return task.model_copy(update={"route": route}) if route else task

    def _check_horizon(self, body: TaskSubmit) -> None:
        # delay_ms is bounded by the model; run_at needs the clock. Past the horizon a task would
        # only be re-delayed (15 minutes at a time) for years.
        now = self.clock.now_ms()
        if body.run_at is not None and body.due_ms(now) - now > MAX_DELAY_MS:
            raise InvalidRequest(
                f"run_at is more than {MAX_DELAY_MS // 86_400_000} days ahead",
                details=[{"field": "run_at", "limit_ms": MAX_DELAY_MS}],
            )

    # -- read -----------------------------------------------------------------------------------
    def get(self, tenant: str, task_id: str) -> Task:
        if not is_valid_id(task_id):
            raise NotFound(f"task {task_id!r} not found")
        task = self.store.get(tenant, task_id)
        if task is None or task.tenant != tenant:
            raise NotFound(f"task {task_id!r} not found")
        return task

    def list(
        self, tenant: str, *, state: TaskState | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Task], str | None]:
        if cursor is not None and not is_valid_id(cursor):
            raise InvalidRequest("cursor is not one this API returned", details=[{"field": "cursor"}])
        return self.store.list(tenant, limit=limit, cursor=cursor, state=state)

    # -- cancel ---------------------------------------------------------------------------------
    def cancel(self, tenant: str, task_id: str) -> Task:
        """Cancel a task that has not started (SCHEDULED, PENDING or RETRYING); else 409."""
        task = self.get(tenant, task_id)
        for _ in range(3):
            if task.state not in CANCELLABLE:
                raise Conflict(
                    f"task {task_id} is {task.state.value} and can no longer be cancelled",
                    details=[{"field": "state", "value": task.state.value}],
                )
            result = self.store.transition(
                tenant,
                task_id,
                task.state,
                [TaskState.CANCELLED],
                at_ms=self.clock.now_ms(),
                detail="cancelled by request",
                fields={"finished_at": self.clock.now_ms()},
            )
            if result.ok and result.task is not None:
                if result.task.counted:
                    self.admission.release(tenant)
                return result.task
            if result.task is None:
                raise NotFound(f"task {task_id!r} not found")
            task = result.task  # lost a race: decide again on the state it is in now
        raise Conflict(f"task {task_id} keeps changing state; try again")

    @staticmethod
    def _dims(task: Task) -> dict[str, Any]:
        return {
            "tenant": task.tenant,
            "target_type": task.target_type,
            "lane": task.priority,
            "attempt": task.attempts + 1,
        }
