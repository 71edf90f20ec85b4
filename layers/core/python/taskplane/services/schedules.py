"""Create, read, pause, resume and delete schedules; fire them when the tick finds them due.

A schedule's next fire is a wheel entry (kind "schedule"). Firing is idempotent step by step, so a
tick retried after a crash at any point creates no second task for the same fire time:
1. each fire's task has an id derived from (schedule, fire time): storing it twice is a Conflict,
   and an existing task still PENDING is queued again (the worker starts it once);
2. the schedule moves to its next fire with a write conditional on the fire being handled (and on
   nobody having paused it since the fire read it), in one transaction with the next wheel entry; a
   retried fire that finds the schedule already moved on does nothing.

A fire leaves the wheel a lead ahead of its time, like a delayed task (domain/wheel.py HELD_KINDS):
its task is created SCHEDULED at the fire time and its lane message carries that time, so the worker
holds it and starts it to the millisecond (the event source mapping's pickup is absorbed by the
lead, not added to the start). A pause or delete that comes after a fire left but before its time
cancels that fire's task; a fire that raced with a pause cancels its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.queues import LaneMessage, Lanes
from taskplane.adapters.task_store import TaskStore
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.clock import Clock, to_rfc3339
from taskplane.domain.entry import check_task_body
from taskplane.domain.errors import Conflict, InvalidRequest, NotFound
from taskplane.domain.ids import is_valid_id, new_id
from taskplane.domain.models import Task, TaskSubmit, new_task
from taskplane.domain.ring import Placement, shard_for
from taskplane.domain.schedules import (
    Schedule,
    ScheduleCreate,
    fire_task_id,
    first_fire,
    new_schedule,
    plan_fires,
)
from taskplane.domain.states import TERMINAL, TaskState
from taskplane.domain.wheel import WheelEntry, goes_through_wheel
from taskplane.services.ports import Idempotency, NullTelemetry, ScheduleRecords, Telemetry, created_once
from taskplane.services.wakes import Wakes


def _touched(schedule: Schedule, clock: Clock) -> int:
    """The ``updated_at`` of a change: now, and always after the one it replaces (the version that
    conditional writes compare, so two changes within one millisecond still differ)."""
    return max(clock.now_ms(), schedule.updated_at + 1)


@dataclass
class ScheduleService:
    store: ScheduleRecords
    tasks: TaskStore
    lanes: Lanes
    clock: Clock
    #: where new wheel entries go: the ring (adapters/ring_store.CachedRing) or a fixed shard count
    shards: int | Placement = 1
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    make_id: Callable[[int], str] = new_id
    #: the tenant's target policy, as for tasks: a schedule is no way around it
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: wakes an idle tick when a schedule's next fire is due before the shard's next check
    wakes: Wakes | None = None
    #: the tenant's gray-release routing, as for tasks (TaskService.routed)
    route: Callable[[Task], Task] = lambda task: task
    #: a retried create with its Idempotency-Key answers the first schedule (not a second one firing)
    idempotency: Idempotency | None = None

    def _entry(self, schedule: Schedule) -> WheelEntry | None:
        if schedule.paused or schedule.next_fire_at is None:
            return None
        return WheelEntry(
            shard=shard_for(schedule.schedule_id, self.shards),
            due_ms=schedule.next_fire_at,
            item_id=schedule.schedule_id,
            tenant=schedule.tenant,
            kind="schedule",
            lane=schedule.task.get("priority", "default"),
        )

    # -- API use cases -----------------------------------------------------------------------------
    def create_once(
        self, tenant: str, body: ScheduleCreate, idempotency_key: str | None = None
    ) -> tuple[Schedule, bool]:
        """Create a schedule; (schedule, created). A replayed idempotency key answers the first one."""
        return created_once(
            self.idempotency,
            tenant,
            None if idempotency_key is None else f"schedule:{idempotency_key}",
            body.model_dump(mode="json"),
            lambda: self.create(tenant, body),
            "schedule_id",
            lambda schedule_id: self.get(tenant, schedule_id),
        )

    def create(self, tenant: str, body: ScheduleCreate) -> Schedule:
        check_task_body(self.targets, tenant, body.task, prefix="task")
        now = self.clock.now_ms()
        schedule = new_schedule(body, schedule_id=self.make_id(now), tenant=tenant, now_ms=now)
        if schedule.next_fire_at is None:
            if schedule.end_at is not None:
                raise InvalidRequest(
                    "the schedule would never fire: its next fire time is after end_at", [{"field": "end_at"}]
                )
            raise InvalidRequest(
                "the schedule would never fire: no date a fire could have follows start_at",
                [{"field": "start_at"}],
            )
        entry = self._entry(schedule)
        self.store.create(schedule, entry)
        self._wake(entry)
        return schedule

    def _wake(self, entry: WheelEntry | None) -> None:
        """A fire due before the shard's next check needs a running tick (services/wakes.py); one due
        within NEAR_MS is fired here and now, as a task due that soon skips the wheel (a tick might not
        read it before its lead): its task waits SCHEDULED for the fire time in the worker. The wheel
        entry stays: if this fire fails, the tick fires it (a fire is safe to repeat)."""
        if entry is None:
            return
        now = self.clock.now_ms()
        if self.wakes is not None:
            self.wakes.after_write([entry], now)
        if not goes_through_wheel(entry.due_ms, now):
            with contextlib.suppress(Exception):
                self.fire(entry, now)

    def get(self, tenant: str, schedule_id: str) -> Schedule:
        schedule = self.store.get(tenant, schedule_id) if is_valid_id(schedule_id) else None
        if schedule is None:
            raise NotFound(f"schedule {schedule_id!r} not found")
        return schedule

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Schedule], str | None]:
        if cursor is not None and not is_valid_id(cursor):
            raise InvalidRequest("cursor is not one this API returned", [{"field": "cursor"}])
        return self.store.list(tenant, limit=limit, cursor=cursor)

    def pause(self, tenant: str, schedule_id: str) -> Schedule:
        """Pause: no fire after this answer (a fire that already left, ahead of its time, is cancelled)."""
        schedule = self.get(tenant, schedule_id)
        if schedule.paused:
            return schedule
        paused = schedule.model_copy(update={"paused": True, "updated_at": _touched(schedule, self.clock)})
        if not self.store.update(
            paused, expected_next=schedule.next_fire_at, expected_updated=schedule.updated_at
        ):
            raise Conflict("the schedule changed while pausing it; try again")
        self._withdraw_ahead(schedule, "paused")
        return paused

    def resume(self, tenant: str, schedule_id: str) -> Schedule:
        """Resume from now: fires missed while paused are skipped, not caught up."""
        schedule = self.get(tenant, schedule_id)
        if not schedule.paused:
            return schedule
        now = self.clock.now_ms()
        resumed = schedule.model_copy(update={"paused": False, "updated_at": _touched(schedule, self.clock)})
        resumed = resumed.model_copy(update={"next_fire_at": first_fire(resumed, now)})
        entry = self._entry(resumed)
        if not self.store.update(
            resumed, expected_next=schedule.next_fire_at, entry=entry, expected_updated=schedule.updated_at
        ):
            raise Conflict("the schedule changed while resuming it; try again")
        self._wake(entry)
        return resumed

    def delete(self, tenant: str, schedule_id: str) -> None:
        schedule = self.store.get(tenant, schedule_id) if is_valid_id(schedule_id) else None
        if schedule is None or not self.store.delete(tenant, schedule_id):
            raise NotFound(f"schedule {schedule_id!r} not found")
        self._withdraw_ahead(schedule, "deleted")

    def _withdraw_ahead(self, schedule: Schedule, why: str) -> None:
        """Cancel the task of a fire that left ahead of its time (its task waits SCHEDULED for it)."""
        if schedule.last_task_id and schedule.last_fire_at and schedule.last_fire_at > self.clock.now_ms():
            self._cancel_unstarted(schedule, [schedule.last_task_id], why)

    def _cancel_unstarted(self, schedule: Schedule, task_ids: Sequence[str], why: str) -> None:
        """Best effort: a fire's task that has not started is cancelled (the worker then drops it)."""
        for task_id in task_ids:
            task = self.tasks.get(schedule.tenant, task_id)
            if task is None or task.state not in (TaskState.SCHEDULED, TaskState.PENDING):
                continue
            now = self.clock.now_ms()
            self.tasks.transition(
                schedule.tenant,
                task_id,
                task.state,
                [TaskState.CANCELLED],
                at_ms=now,
                detail=f"schedule {schedule.schedule_id} was {why} before this fire's time",
                fields={"finished_at": now},
            )

    # -- the tick's side ---------------------------------------------------------------------------
    def fire(self, entry: WheelEntry, now_ms: int) -> None:
        """Handle a schedule's wheel entry that is due (called by the tick; safe to call again)."""
        schedule = self.store.get(entry.tenant, entry.item_id)
        if schedule is None or schedule.paused or schedule.next_fire_at != entry.due_ms:
            return  # deleted, paused, or already moved past this fire (a retried tick)
        fires, skipped, nxt = plan_fires(schedule, entry.due_ms, now_ms)
        if fires and schedule.overlap == "skip" and self._previous_running(schedule):
            skipped, fires = skipped + len(fires), []
        started = [self._start(schedule, fire_ms, now_ms) for fire_ms in fires]
        moved = schedule.model_copy(
            update={
                "next_fire_at": nxt,
                "last_fire_at": fires[-1] if fires else schedule.last_fire_at,
                "last_task_id": started[-1] if started else schedule.last_task_id,
                "fires": schedule.fires + len(started),
                "skipped": schedule.skipped + skipped,
                "updated_at": now_ms,
            }
        )
        if not self.store.update(
            moved, expected_next=entry.due_ms, entry=self._entry(moved), expected_updated=schedule.updated_at
        ):
            # Another writer got there first: a retried fire (nothing to undo), or a pause or delete
            # since this fire read the schedule: then the tasks it just made must not run.
            current = self.store.get(schedule.tenant, schedule.schedule_id)
            if current is None or current.paused:
                self._cancel_unstarted(schedule, started, "deleted" if current is None else "paused")
            return
        dims: dict[str, Any] = {
            "tenant": schedule.tenant,
            "target_type": str(schedule.task["target"]["type"]),
            "lane": entry.lane,
        }
        if started:
            self.telemetry.count("schedule_fired", value=len(started), **dims)
        if skipped:
            self.telemetry.count("schedule_skipped", value=skipped, **dims)

    def _previous_running(self, schedule: Schedule) -> bool:
        if not schedule.last_task_id:
            return False
        last = self.tasks.get(schedule.tenant, schedule.last_task_id)
        return last is not None and last.state not in TERMINAL

    def _start(self, schedule: Schedule, fire_ms: int, now_ms: int) -> str:
        """Create (once) and queue the task of one fire; returns its id."""
        task_id = fire_task_id(schedule.schedule_id, fire_ms)
        body = TaskSubmit.model_validate(schedule.task)
        task = self.route(new_task(body, task_id=task_id, tenant=schedule.tenant, now_ms=now_ms)).model_copy(
            update={"schedule_id": schedule.schedule_id, "fire_at": fire_ms, "dispatched_at": now_ms}
        )
        if fire_ms > now_ms:
            # Fired ahead (the lead): the task waits SCHEDULED for the fire time, held by the worker.
            task = task.model_copy(update={"state": TaskState.SCHEDULED, "run_at": fire_ms})
            task.history[0].state = TaskState.SCHEDULED
        task.history[0].detail = f"fired by schedule {schedule.schedule_id} for {to_rfc3339(fire_ms)}"
        try:
            self.tasks.create(task)
        except Conflict:
            existing = self.tasks.get(schedule.tenant, task_id)
            if existing is None or existing.state not in (TaskState.PENDING, TaskState.SCHEDULED):
                return task_id  # created and already on its way by an earlier try
            task = existing  # queued again: the worker starts it once
        ahead = task.state is TaskState.SCHEDULED
        self.lanes.send_one(
            LaneMessage(
                tenant=schedule.tenant,
                task_id=task_id,
                attempt=1,
                lane=task.priority,
                state=task.state.value,
                due_ms=task.run_at if ahead else None,
                dispatched_at=now_ms if ahead else None,
            )
        )
        return task_id
