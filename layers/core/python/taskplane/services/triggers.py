"""Create, list and delete triggers; start a task when a matching event arrives on a lane."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.queues import LaneMessage
from taskplane.adapters.task_store import TaskStore
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.blobs import INLINE_BYTES, expiry_days, lifetime_ms, payload_key
from taskplane.domain.clock import Clock
from taskplane.domain.entry import check_task_body
from taskplane.domain.errors import Conflict, EventRefused, InvalidRequest, NotFound
from taskplane.domain.events import PLATFORM_BUS, stamped_tenant
from taskplane.domain.ids import is_valid_id, new_id
from taskplane.domain.models import MAX_PAYLOAD_DEPTH, Task, TaskSubmit, new_task, payload_depth, payload_size
from taskplane.domain.states import TaskState
from taskplane.domain.triggers import (
    DEFAULT_RULE_PREFIX,
    ExternalEvents,
    Trigger,
    TriggerCreate,
    check_rule_share,
    rule_name,
    scoped_pattern,
    trigger_task_id,
)
from taskplane.domain.windows import INLINE_WINDOW_BYTES, MAX_ITEM_EVENT_BYTES, MAX_WINDOW_BYTES
from taskplane.services.ports import Idempotency, TriggerRecords, TriggerRuleSet, created_once


def _event_time_ms(event: dict[str, Any]) -> int | None:
    """The event's own time (RFC 3339 from EventBridge; epoch seconds from some emulators)."""
    value = event.get("time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 1000)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def create_once(tasks: TaskStore, task: Task) -> bool:
    """Store a task started by an event or a window, under the id derived from it; True when it still
    has to be queued: created now, or found PENDING (an earlier try stored it and failed to queue it)."""
    try:
        tasks.create(task)
    except Conflict:
        existing = tasks.get(task.tenant, task.task_id)
        return existing is not None and existing.state is TaskState.PENDING
    return True


def first_delivery(task: Task) -> LaneMessage:
    """The lane message that starts a task's first attempt now."""
    return LaneMessage(
        tenant=task.tenant, task_id=task.task_id, attempt=1, lane=task.priority, state="PENDING"
    )


@dataclass
class TriggerService:
    store: TriggerRecords
    rules: TriggerRuleSet
    tasks: TaskStore
    clock: Clock
    make_id: Callable[[int], str] = new_id
    #: the tenant's target policy, as for tasks: a trigger is no way around it
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: the real name of the platform's bus (tenants call it PLATFORM_BUS)
    event_bus: str = "taskplane-events"
    #: every rule's name starts with it (one per environment)
    rule_prefix: str = DEFAULT_RULE_PREFIX
    #: tenant -> the external buses and sources its triggers may listen to
    external: dict[str, list[ExternalEvents]] = field(default_factory=dict)
    #: the bucket of large payloads (an event over the inline limit is kept there)
    blobs: BlobStore | None = None
    retention_days: int = 30
    #: windowed triggers' windows (services/windows.py); None: a windowed trigger is refused
    windows: Any = None
    #: each tenant's share of the event bus's rules, and of its rules with wildcards (domain/triggers.py)
    max_rules: int = 50
    max_wildcard_rules: int = 3
    #: the tenant's gray-release routing, as for tasks (TaskService.routed)
    route: Callable[[Task], Task] = lambda task: task
    #: a retried create with its Idempotency-Key answers the first trigger (not a second rule)
    idempotency: Idempotency | None = None

    def _external(self, tenant: str, bus: str) -> ExternalEvents:
        allowed = {e.bus: e for e in self.external.get(tenant, [])}
        if bus not in allowed:
            names = ", ".join(sorted([PLATFORM_BUS, *allowed]))
            raise InvalidRequest(
                f"bus {bus!r} is not one this tenant's triggers may listen on (allowed: {names}); "
                f"events you publish through taskplane are on {PLATFORM_BUS!r}",
                [{"field": "bus", "problem": "bus_not_allowed", "allowed": sorted([PLATFORM_BUS, *allowed])}],
            )
        return allowed[bus]

    def create_once(
        self, tenant: str, body: TriggerCreate, idempotency_key: str | None = None
    ) -> tuple[Trigger, bool]:
        """Create a trigger; (trigger, created). A replayed idempotency key answers the first one."""
        return created_once(
            self.idempotency,
            tenant,
            None if idempotency_key is None else f"trigger:{idempotency_key}",
            body.model_dump(mode="json"),
            lambda: self.create(tenant, body),
            "trigger_id",
            lambda trigger_id: self.get(tenant, trigger_id),
        )

    def create(self, tenant: str, body: TriggerCreate) -> Trigger:
        check_task_body(self.targets, tenant, body.task, prefix="task")
        self._check_window(tenant, body)
        # The bus and the scope are decided before anything exists: a bus the platform may not
        # manage rules on is a 400 here, never an AccessDenied (503) from EventBridge later.
        external = None if body.bus == PLATFORM_BUS else self._external(tenant, body.bus)
        scoped: list[dict[str, Any]] = []
        for index, pattern in enumerate(body.patterns()):
            try:
                scoped.append(scoped_pattern(pattern, tenant, external))
            except ValueError as exc:
                field = (
                    "event_pattern.source" if body.correlate is None else f"correlate.events[{index}].source"
                )
                raise InvalidRequest(str(exc), [{"field": field}]) from None
        check_rule_share(
            self.store.list(tenant), scoped, max_rules=self.max_rules, max_wildcard=self.max_wildcard_rules
        )
        now = self.clock.now_ms()
        trigger_id = self.make_id(now)
        trigger = Trigger(
            trigger_id=trigger_id,
            tenant=tenant,
            name=body.name,
            bus=body.bus,
            event_pattern=body.event_pattern,
            task=body.task.model_dump(mode="json", exclude_none=True, exclude={"payload"}),
            rule_name=rule_name(trigger_id, self.rule_prefix),
            created_at=now,
            rule_bus=self.event_bus if external is None else external.bus,
            rule_pattern=scoped[0] if body.correlate is None else None,
            rule_patterns=scoped if body.correlate is not None else None,
            batch=body.batch,
            debounce=body.debounce,
            correlate=body.correlate,
        )
        # The item first: an event that matches the moment the rule exists must find its trigger.
        self.store.put(trigger)
        try:
            self.rules.create(trigger, body.task.priority)
        except Exception:
            self.store.delete(tenant, trigger_id)
            raise
        return trigger

    def _check_window(self, tenant: str, body: TriggerCreate) -> None:
        """One mode at most, the patterns where the mode wants them, sizes within the platform's."""
        modes = [name for name in ("batch", "debounce", "correlate") if getattr(body, name) is not None]
        if len(modes) > 1:
            raise InvalidRequest(
                f"a trigger has one window mode at most, not {' and '.join(modes)}",
                [{"field": modes[1], "problem": "two_modes"}],
            )
        if body.correlate is not None:
            if body.event_pattern is not None:
                raise InvalidRequest(
                    "a correlating trigger lists its patterns in correlate.events, not event_pattern",
                    [{"field": "event_pattern"}],
                )
            if body.correlate.on_timeout is not None:
                check_task_body(
                    self.targets, tenant, body.correlate.on_timeout, prefix="correlate.on_timeout"
                )
        elif body.event_pattern is None:
            raise InvalidRequest(
                "event_pattern is required", [{"field": "event_pattern", "problem": "missing"}]
            )
        spec = body.window()
        if spec is None:
            return
        if self.windows is None:
            raise InvalidRequest(
                "this deployment has no windowed triggers", [{"field": modes[0], "problem": "unsupported"}]
            )
        own = getattr(spec, "max_bytes", None)
        limit = MAX_WINDOW_BYTES if self.blobs is not None else INLINE_WINDOW_BYTES
        if own is not None and own > limit:
            raise InvalidRequest(
                f"{modes[0]}.max_bytes is at most {limit} here"
                + ("" if self.blobs is not None else " (this deployment keeps payloads inline: no bucket)"),
                [{"field": f"{modes[0]}.max_bytes", "limit": limit}],
            )

    def get(self, tenant: str, trigger_id: str) -> Trigger:
        trigger = self.store.get(tenant, trigger_id) if is_valid_id(trigger_id) else None
        if trigger is None:
            raise NotFound(f"trigger {trigger_id!r} not found")
        return trigger

    def list(self, tenant: str) -> list[Trigger]:
        return self.store.list(tenant)

    def lanes(self, tenant: str) -> set[str]:
        """The lanes this tenant's triggers on the platform bus put their events on."""
        return {t.lane for t in self.store.list(tenant) if t.bus == PLATFORM_BUS}

    def delete(self, tenant: str, trigger_id: str) -> None:
        trigger = self.get(tenant, trigger_id)
        self.rules.delete(trigger)
        self.store.delete(tenant, trigger_id)

    def offload(self, tenant: str, task: Any, payload: Any, now: int) -> Any:
        """The task with its payload in the bucket when it is over the inline limit (and there is one)."""
        if self.blobs is None or payload_size(payload) <= INLINE_BYTES:
            return task
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        ref = self.blobs.put(
            payload_key(tenant, task.task_id),
            data,
            expire_days=expiry_days(lifetime_ms(task, now), self.retention_days),
        )
        return task.model_copy(update={"payload": None, "payload_ref": ref})

    def _in_scope(self, trigger: Trigger, event: dict[str, Any]) -> bool:
        """The rule's scope, checked again on arrival (defence in depth against a rule changed by
        hand): on the platform bus only the trigger's tenant's events, elsewhere only unstamped ones."""
        stamped = stamped_tenant(event)
        expected = trigger.tenant if trigger.bus == PLATFORM_BUS else None
        if stamped == expected:
            return True
        from taskplane.observability import logger

        logger.warning(
            "event outside the trigger's scope dropped",
            extra={"trigger_id": trigger.trigger_id, "tenant": trigger.tenant, "event_id": event.get("id")},
        )
        return False

    def start(
        self, tenant: str, trigger_id: str, event: dict[str, Any], pattern: int | None = None
    ) -> LaneMessage | str | None:
        """Create (once per event) the task a matching event starts; the delivery that runs it, or None.
        A windowed trigger's event is taken into its window instead: "taken" or "duplicate"."""
        trigger = self.store.get(tenant, trigger_id)
        if trigger is None:
            return None  # deleted since the event was routed
        if not self._in_scope(trigger, event):
            return None
        if trigger.window() is not None:
            if self.windows is None:
                return None
            if trigger.correlate is not None and (
                pattern is None or pattern >= len(trigger.correlate.events)
            ):
                return None  # not from one of its rules
            return str(self.windows.collect(trigger, event, pattern))
        if (depth := payload_depth(event)) > MAX_PAYLOAD_DEPTH:
            raise EventRefused(
                f"the event nests {depth} levels deep; a task's payload nests at most {MAX_PAYLOAD_DEPTH}"
            )
        if self.blobs is None and (size := payload_size(event)) > MAX_ITEM_EVENT_BYTES:
            # (with a bucket, any event EventBridge can deliver is kept there as the task's payload)
            raise EventRefused(
                f"the event is {size} bytes; a task started by a trigger takes events of up to "
                f"{MAX_ITEM_EVENT_BYTES} bytes where the platform has no bucket for large values"
            )
        now = self.clock.now_ms()
        task_id = trigger_task_id(trigger_id, str(event.get("id", now)), now, _event_time_ms(event))
        body = TaskSubmit.model_validate({**trigger.task, "payload": event})
        task = self.route(new_task(body, task_id=task_id, tenant=tenant, now_ms=now)).model_copy(
            update={"trigger_id": trigger_id, "dispatched_at": now}
        )
        task.history[0].detail = f"started by trigger {trigger_id} for event {event.get('id', '?')}"
        # An event can be up to 256 KB: a large one is kept in the bucket like a large payload
        # (same key for a redelivered event, so a retry writes the same object again).
        task = self.offload(tenant, task, event, now)
        if not create_once(self.tasks, task):
            return None  # this event already started its task
        return first_delivery(task)
