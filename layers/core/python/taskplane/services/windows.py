"""Windowed triggers: take each event into its key's window; close windows on time and start one task.

The worker calls :meth:`WindowService.collect` for each event of a windowed trigger. A window's end is
a wheel entry of kind ``window``: the tick sends it to its lane ahead of time like a task's delivery
(adapters/queues.py ``WindowMessage``), and the worker calls :meth:`WindowService.delivered`, which
waits until the end is due (never closing early: a debounce closed early would drop events) and
closes the window. Rules and the payload are in ``domain/windows.py``; storage in
``adapters/windows.py``.

A close is safe to run again and from anywhere: the window is sealed first (OPEN -> CLOSING, no event
is taken after that), then its task is created under an id derived from the window (a second try
finds it) and queued, then the window is marked CLOSED. Whoever meets a CLOSING window (the window
end's redelivery after a close that failed, a duplicate delivery, the next event for its key)
finishes the close, so a crash between the steps loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from taskplane.adapters.queues import WindowMessage
from taskplane.domain.blobs import INLINE_BYTES, expiry_days, window_event_key
from taskplane.domain.clock import Clock
from taskplane.domain.errors import EventRefused, Unavailable
from taskplane.domain.ids import new_id
from taskplane.domain.models import MAX_PAYLOAD_DEPTH, TaskSubmit, new_task, payload_depth
from taskplane.domain.ring import Placement, shard_for
from taskplane.domain.triggers import Trigger
from taskplane.domain.wheel import WheelEntry, goes_through_wheel
from taskplane.domain.windows import (
    INLINE_EVENT_BYTES,
    MAX_ITEM_EVENT_BYTES,
    MAX_WINDOW_MS,
    Collected,
    CorrelateWindow,
    DebounceWindow,
    Reason,
    WindowHead,
    WindowSpec,
    byte_limit,
    close_reason,
    debounce_end,
    ends_early,
    event_limit,
    event_ref,
    key_digest,
    key_text,
    key_value,
    mode_of,
    open_head,
    parse_wheel_item_id,
    ref_key,
    starts,
    takes,
    wheel_item_id,
    window_payload,
    window_task_id,
)
from taskplane.services.execute import MAX_EARLY_WAIT_MS
from taskplane.services.payload_budget import PayloadBudget
from taskplane.services.ports import NullTelemetry, Telemetry
from taskplane.services.tasks import arrival_delay_s
from taskplane.services.triggers import create_once, first_delivery

#: What became of a window's end: its window closed (now or by an earlier try), nothing to close (closed
#: already, an opening that lost its race, its trigger deleted), a debounce's end that moved (its new
#: end is in the wheel, or on its lane when due soon), or a delivery far too early sent round again.
Closing = Literal["closed", "duplicate", "rescheduled", "requeued"]


def event_doc(event: dict[str, Any]) -> tuple[str, int]:
    """The event as stored in its window, and its size in bytes: UTF-8 JSON (an event of 256 KB stays
    within DynamoDB's 400 KB item whatever its script), or ASCII JSON for text UTF-8 cannot hold
    (a lone surrogate from an external bus)."""
    doc = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    try:
        return doc, len(doc.encode("utf-8"))
    except UnicodeEncodeError:
        doc = json.dumps(event, separators=(",", ":"))
        return doc, len(doc)


#: Tries at taking one event when other events keep closing and opening its key's window.
MAX_TRIES = 8
#: A window's end whose close failed on its lane's last delivery before the DLQ is due again this long
#: after (through the wheel): the close is tried again until it succeeds, a delivery round at a time.
CLOSE_AGAIN_MS = 60_000


@dataclass
class WindowService:
    records: Any  # adapters.windows.WindowStore (or a fake with its conditional semantics)
    triggers: Any  # services.ports.TriggerRecords
    tasks: Any  # adapters.task_store.TaskStore
    lanes: Any  # adapters.queues.Lanes
    wheel: Any  # adapters.wheel_store.WheelStore
    clock: Clock
    shards: int | Placement = 1
    wakes: Any = None  # services.wakes.Wakes
    #: stores a large payload (tenant, task, payload, now) -> the task with its reference
    offload: Callable[[str, Any, Any, int], Any] | None = None
    has_bucket: bool = False
    retention_days: int = 30
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    make_id: Callable[[int], str] = new_id
    #: the tenant's gray-release routing, as for tasks (TaskService.routed)
    route: Callable[[Any], Any] = lambda task: task
    #: waits until an instant on ``clock`` and returns the time it woke (the worker's Executor.wait_until,
    #: so a window's end is held exactly as a task's delivery sent ahead is)
    wait_until: Callable[[int], int] | None = None
    #: the worker instance's budget of large values in memory at once (services/payload_budget.py), shared
    #: with its tasks' payloads: a close holds a large window's events, parsed, until its task is stored
    payload_budget: PayloadBudget | None = None
    #: the bucket of large values (adapters.blobs.BlobStore): an event over INLINE_EVENT_BYTES is kept
    #: there until its window closes; None: an event over MAX_ITEM_EVENT_BYTES is refused
    blobs: Any = None

    def _expires(self, now_ms: int) -> int:
        return now_ms // 1000 + self.retention_days * 86_400 + 86_400

    # -- events ---------------------------------------------------------------------------------------
    def collect(self, trigger: Trigger, event: dict[str, Any], pattern: int | None) -> str:
        """Take one event into its key's window; "taken" or "duplicate" (counted before)."""
        spec = trigger.window()
        if spec is None:
            raise ValueError(f"trigger {trigger.trigger_id} has no window")
        tenant, trigger_id = trigger.tenant, trigger.trigger_id
        key = key_text(key_value(event, spec.steps))
        digest = key_digest(key)
        # Its window's task carries it one level down ({"events": [...]}; a debounce's: as it is)
        depth = payload_depth(event) + (0 if isinstance(spec, DebounceWindow) else 2)
        if depth > MAX_PAYLOAD_DEPTH:
            # (taken, it would fail its window's close on every try, and the close would go round forever)
            raise EventRefused(
                f"the event nests {depth} levels deep in its window's payload; a task's payload nests at "
                f"most {MAX_PAYLOAD_DEPTH}"
            )
        doc, size = event_doc(event)
        event_id = str(event.get("id") or key_digest(doc))
        dedup = event_id if pattern is None else f"{event_id}#{pattern}"
        doc = self._keep(trigger, event_id, doc, size)
        room = byte_limit(spec, self.has_bucket)
        for _ in range(MAX_TRIES):
            now = self.clock.now_ms()
            current = self.records.current(tenant, trigger_id, digest)
            head = self.records.head(tenant, trigger_id, current) if current else None
            if head is None or not takes(spec, head, size, room, now):
                if head is not None and head.state != "CLOSED":
                    # past its end, full, or a close that stopped half-way: finish it first
                    reason = head.reason or close_reason(spec, head, now) or "full"
                    self._close(trigger, spec, head, reason)
                if self.records.seen(tenant, trigger_id, dedup):
                    return "duplicate"  # a redelivery opens no window
                head = open_head(spec, self.make_id(now), key, now)
                self._schedule(trigger, head, now)  # the close is on the wheel before the window exists
                if not self.records.open(tenant, trigger_id, digest, head, current, self._expires(now)):
                    continue  # another event opened the key's next window first
            outcome = self.records.take(
                tenant,
                trigger_id,
                head,
                dedup=dedup,
                event_id=event_id,
                doc=doc,
                size=size,
                now_ms=now,
                max_count=event_limit(spec),
                room=room,
                pattern=pattern,
                closes_at=self._debounce_end(spec, head, now),
                only=isinstance(spec, DebounceWindow),
                expires_at=self._expires(now),
            )
            if outcome == "refused":
                continue
            after = self.records.head(tenant, trigger_id, head.window_id)
            if after is not None and after.state == "OPEN":
                early = ends_early(spec, after, room)
                if early is not None:
                    self._close(trigger, spec, after, early)
            elif after is not None and after.state == "CLOSING":
                self._close(trigger, spec, after, after.reason or "full")
            if outcome == "taken":
                self._count(trigger, "window_events")
            return outcome
        raise Unavailable("the key's window kept changing; the event is tried again")

    def _keep(self, trigger: Trigger, event_id: str, doc: str, size: int) -> str:
        """What the event's window item stores: the event itself, or, over INLINE_EVENT_BYTES, where in
        the bucket it was put (raises EventRefused when it is too large for an item and there is no
        bucket: it could never be taken, and every try would fail the same way)."""
        if size <= INLINE_EVENT_BYTES:
            return doc
        if self.blobs is None:
            if size <= MAX_ITEM_EVENT_BYTES:
                return doc
            raise EventRefused(
                f"the event is {size} bytes; a window holds events of up to {MAX_ITEM_EVENT_BYTES} bytes "
                "where the platform has no bucket for large values"
            )
        key = window_event_key(trigger.tenant, trigger.trigger_id, key_digest(event_id))
        # It lives until its window closes (a day at most) and its task is stored: the retention's class.
        self.blobs.put(key, doc.encode("utf-8"), expire_days=expiry_days(MAX_WINDOW_MS, self.retention_days))
        return json.dumps(event_ref(key, size), separators=(",", ":"))

    def _loaded(self, events: list[Collected]) -> list[Collected]:
        """The window's events with those kept in the bucket read back."""
        out = []
        for c in events:
            key = ref_key(c.event)
            if key is not None:
                data = self.blobs.get(key) if self.blobs is not None else None
                if data is None:
                    raise Unavailable(f"a large event of the window is not in the bucket ({key})")
                c = dataclasses.replace(c, event=json.loads(data))
            out.append(c)
        return out

    def _debounce_end(self, spec: WindowSpec, head: WindowHead, now: int) -> int | None:
        if not isinstance(spec, DebounceWindow):
            return None
        return debounce_end(spec, head.opened_at, now)

    def _schedule(self, trigger: Trigger, head: WindowHead, now: int, due_ms: int | None = None) -> None:
        item_id = wheel_item_id(trigger.trigger_id, head.window_id)
        lane = trigger.lane
        self._send_end(trigger.tenant, item_id, head.closes_at if due_ms is None else due_ms, lane, now)

    def _send_end(self, tenant: str, item_id: str, due_ms: int, lane: str, now: int) -> None:
        """Put a window's end in the wheel (waking its shard's tick when it must), or, when it is due too
        soon for the tick to send it its lead ahead (a short window, a debounce's end moved by a few
        events), straight on its lane like a near task: the worker waits out the rest."""
        _, window_id = parse_wheel_item_id(item_id)
        entry = WheelEntry(
            shard=shard_for(window_id, self.shards),
            due_ms=due_ms,
            item_id=item_id,
            tenant=tenant,
            kind="window",
            lane=lane,
        )
        if not goes_through_wheel(due_ms, now):
            self.lanes.send_one(WindowMessage.end_of(entry, now, arrival_delay_s(due_ms, now)))
            return
        self.wheel.put(entry)
        if self.wakes is not None:
            self.wakes.after_write([entry], now)

    # -- closing ---------------------------------------------------------------------------------------
    def delivered(self, message: WindowMessage, last_try: bool = False) -> Closing:
        """A window's end from its lane (the worker): wait until it is due, then close the window. Raises
        when the close fails (the message comes back and the close is tried again, safely), except on
        the lane's ``last_try`` before its DLQ: the end then goes back into the wheel (``again_later``)
        and only a failure of that raises. One far too early (a skewed clock, a redrive) goes round
        again with a delay."""
        if not last_try:
            return self._deliver(message)
        try:
            return self._deliver(message)
        except Exception:
            from taskplane.observability import logger

            self.again_later(message)
            logger.exception(
                "window close failed on its last delivery; due again through the wheel",
                extra={"window": message.window, "tenant": message.tenant},
            )
            return "rescheduled"

    def _deliver(self, message: WindowMessage) -> Closing:
        now = self.clock.now_ms()
        if message.due_ms > now and message.due_ms - now <= MAX_EARLY_WAIT_MS and self.wait_until:
            now = self.wait_until(message.due_ms)
        if message.due_ms > now:
            delay_s = arrival_delay_s(message.due_ms, now)
            self.lanes.send_one(dataclasses.replace(message, delay_s=delay_s))
            return "requeued"
        return self._close_due(message, now)

    def again_later(self, message: WindowMessage) -> None:
        """Put a window's end whose close keeps failing back into the wheel, due ``CLOSE_AGAIN_MS`` from
        now: its lane's DLQ holds what nothing reads again, and a window whose end is lost closes only
        when its key gets another event (or never). Raises when the wheel refuses the write too."""
        now = self.clock.now_ms()
        self._send_end(message.tenant, message.window, now + CLOSE_AGAIN_MS, message.lane, now)

    def _close_due(self, message: WindowMessage, now_ms: int) -> Closing:
        """Close the window of an end that is due (safe to call again)."""
        tenant, due_ms = message.tenant, message.due_ms
        trigger_id, window_id = parse_wheel_item_id(message.window)
        trigger = self.triggers.get(tenant, trigger_id)
        spec = trigger.window() if trigger is not None else None
        if trigger is None or spec is None:
            return "duplicate"  # deleted since: its windows start nothing
        head = self.records.head(tenant, trigger_id, window_id)
        if head is None or head.state == "CLOSED":
            return "duplicate"  # an opening that lost its race, or closed already (full, complete, a retry)
        reason: Reason | None = head.reason
        if head.state == "OPEN":
            # Due at its entry's time whatever this clock says: the entry is the window's end.
            reason = close_reason(spec, head, max(now_ms, due_ms))
            if reason is None:  # a debounce's newer event moved the end: be back then
                self._schedule(trigger, head, now_ms)
                return "rescheduled"
        self._close(trigger, spec, head, reason or "time")
        return "closed"

    def _close(self, trigger: Trigger, spec: WindowSpec, head: WindowHead, reason: Reason) -> str | None:
        """Seal, start the window's task (once), mark it closed; the task's id, if one started."""
        tenant, trigger_id = trigger.tenant, trigger.trigger_id
        sealed = self.records.seal(tenant, trigger_id, head.window_id, reason, self.clock.now_ms())
        if sealed is None or sealed.state == "CLOSED":
            return sealed.task_id if sealed is not None else None
        why: Reason = sealed.reason or reason
        what = starts(spec, sealed, why)
        task_id = None
        if what is not None:
            # Its events, parsed, are held until its task is stored: a large window takes room in the
            # instance's payload budget meanwhile (one within the inline limit takes none).
            room = self.payload_budget if sealed.bytes > INLINE_BYTES else None
            taken = room.take(sealed.bytes) if room is not None else 0
            try:
                events = self._loaded(self.records.events(tenant, trigger_id, head.window_id))
                if events:
                    payload = window_payload(spec, trigger_id, sealed, why, events)
                    template = trigger.task
                    if (
                        what == "on_timeout"
                        and isinstance(spec, CorrelateWindow)
                        and spec.on_timeout is not None
                    ):
                        template = spec.on_timeout.model_dump(mode="json", exclude_none=True)
                    task_id = self._start(trigger, spec, sealed, why, template, payload, len(events))
            finally:
                if room is not None:
                    room.give(taken)
        self.records.finish(tenant, trigger_id, head.window_id, task_id)
        self._count(trigger, "window_closed")
        if what is None and sealed.count:
            self._count(trigger, "window_expired")  # a correlation that ended incomplete
        return task_id

    def _start(
        self,
        trigger: Trigger,
        spec: WindowSpec,
        head: WindowHead,
        reason: Reason,
        template: dict[str, Any],
        payload: Any,
        events: int,
    ) -> str:
        """Create (once) and queue the task of a closed window."""
        now = self.clock.now_ms()
        tenant = trigger.tenant
        task_id = window_task_id(trigger.trigger_id, head.window_id, head.opened_at)
        body = TaskSubmit.model_validate({**template, "payload": payload})
        task = self.route(new_task(body, task_id=task_id, tenant=tenant, now_ms=now)).model_copy(
            update={"trigger_id": trigger.trigger_id, "dispatched_at": now}
        )
        task.history[0].detail = (
            f"started by trigger {trigger.trigger_id} ({mode_of(spec)}) when window "
            f"{head.window_id} closed ({reason}) with {events} event(s)"
        )
        if self.offload is not None:
            task = self.offload(tenant, task, payload, now)
        if create_once(self.tasks, task):  # else created and already on its way by an earlier try
            self.lanes.send_one(first_delivery(task))
        return task_id

    def _count(self, trigger: Trigger, name: str) -> None:
        self.telemetry.count(
            name,
            tenant=trigger.tenant,
            target_type=str(trigger.task.get("target", {}).get("type", "none")),
            lane=trigger.lane,
        )
