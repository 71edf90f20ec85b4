"""Run one delivery of a task: guard the start, call the target, record the outcome.

At-most-once start per attempt: the move to RUNNING is a conditional write on the state (and the
attempt count) read from the task, so of two deliveries of the same message only one starts it.
Order of side effects on failure paths is chosen so that a crash between two steps never loses a
task: the state is written before the next delivery is queued, and any delivery that finds a task
waiting (SCHEDULED or RETRYING) re-queues it when it is not yet due.

Precise starts: a delivery that comes in ahead of its task's due time (the tick sends it
``DISPATCH_LEAD_MS`` early, so that the event source mapping's pickup does not make it late) waits
here until due, then writes the start: never a start write refused for being early, never a start
before ``run_at`` by this worker's clock. A retry due within ``INLINE_RETRY_MS`` waits in the same
way, in the worker that ran the failed attempt; a later one goes through the wheel.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.dead_letters import DeadLetterStore
from taskplane.adapters.queues import LaneMessage, Lanes
from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.adapters.task_store import TaskStore
from taskplane.adapters.wheel_store import WheelStore
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.blobs import INLINE_BYTES, expiry_days, inline_limit, result_key
from taskplane.domain.blobs import MAX_RESULT_BYTES as MAX_BLOB_RESULT_BYTES
from taskplane.domain.breaker import classify
from taskplane.domain.clock import Clock, to_rfc3339
from taskplane.domain.dead_letters import DeadLetter
from taskplane.domain.entry import TARGET_REFUSED, refusal_failure_message
from taskplane.domain.models import MAX_PAYLOAD_DEPTH, Task, payload_depth, payload_size
from taskplane.domain.results import RawJson
from taskplane.domain.retry import can_finish_by, latest_start, next_attempt_at, skip_by_context
from taskplane.domain.ring import Placement, shard_for
from taskplane.domain.states import TaskState, path_to_running
from taskplane.domain.timeouts import (
    GRACE_MS,
    HEARTBEAT_MS,
    STALE_MS,
    final_due,
    first_watch,
    needs_heartbeat,
    next_watch,
)
from taskplane.domain.wheel import WheelEntry, goes_through_wheel
from taskplane.services.admission import Admission
from taskplane.services.breakers import CircuitBreakers, Guard
from taskplane.services.fallback import call_fallback, fallback_note
from taskplane.services.latency import Latencies
from taskplane.services.payload_budget import PayloadBudget
from taskplane.services.ports import NullTelemetry, Telemetry
from taskplane.services.tasks import arrival_delay_s, delivery_for, wheel_entry_for
from taskplane.services.wakes import Wakes
from taskplane.tracing import NULL_TRACING, Tracing, traced_attempt, traced_watch

#: Keeps the delivery being handled invisible on its lane for this many seconds from now.
Hold = Callable[[int], None]

MAX_RESULT_BYTES = 128 * 1024
#: A delivery this early waits in the worker until due instead of being sent round again: the tick's
#: lead and batch grouping, a near task sent straight to its lane, a lane message's whole seconds. The
#: earliest the tick sends is at a hand-over: 1 s ahead of its span's end, plus the lead, plus a batch's
#: group (1 s), so 2.35 s (services/tick.py HANDOVER_SEND_AHEAD_MS, domain/wheel.py).
MAX_EARLY_WAIT_MS = 2_500
#: A retry due within this long waits in the worker that ran the failed attempt (its lane message is
#: still held, so a crash meanwhile loses nothing); a later one goes through the wheel, or straight to
#: its lane when due within NEAR_MS (domain/wheel.py: the tick might not read it in time).
INLINE_RETRY_MS = 1_000
#: How many times (a second apart) a wheel delivery looks again for a task not stored yet.
MAX_MISSING_HOPS = 10
S = TaskState
#: The field that says when a waiting task is due.
DUE_FIELD = {S.SCHEDULED: "run_at", S.RETRYING: "next_attempt_at"}


def keepable_result(result: Any, limit: int = MAX_RESULT_BYTES) -> tuple[Any, str | None]:
    """The result as it can be stored and served as JSON, and a note when it could not be kept whole.

    A :class:`RawJson` (a large answer checked, not built) stays one: the bucket takes its bytes."""
    if isinstance(result, RawJson):
        return _within(result, result.depth, result.size, limit)
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {
            "unkept": True,
            "reason": "not JSON",
        }, "the result was not JSON (NaN, Infinity or a non-JSON type)"
    depth = payload_depth(result)
    return _within(result, depth, payload_size(result) if depth <= MAX_PAYLOAD_DEPTH else 0, limit)


def _within(result: Any, depth: int, size: int, limit: int) -> tuple[Any, str | None]:
    """``result`` when its nesting and size are within the limits, else why it was not kept."""
    if depth > MAX_PAYLOAD_DEPTH:
        return {
            "unkept": True,
            "reason": "too deep",
        }, f"the result nests deeper than {MAX_PAYLOAD_DEPTH} levels"
    if size > limit:
        note = f"result of {size} bytes over the {limit}-byte limit was not kept"
        return {"unkept": True, "reason": "too large", "size": size, "limit": limit}, note
    return result, None


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    REQUEUED = "requeued"  # arrived before it was due; sent back with a delay
    DUPLICATE = "duplicate"  # already started, finished or cancelled: nothing to do
    MISSING = "missing"


@dataclass(frozen=True)
class _RetryHere:
    """A failed attempt whose retry is due soon: the task (RETRYING) waits in this worker for the
    delivery ``message`` (never sent: its dispatch span hangs under the failed attempt's, like a
    retry sent on the lane)."""

    message: LaneMessage
    #: the attempt's outcome as its span records it (tracing reads ``value``)
    value: ClassVar[str] = "retrying"


Handled = Outcome | _RetryHere


@dataclass
class Executor:
    store: TaskStore
    lanes: Lanes
    runners: TargetRunners
    clock: Clock
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    uniform: Callable[[float, float], float] = random.uniform
    sleep: Callable[[float], None] = time.sleep
    #: the timer a target call's duration is measured with (seconds; a test's own gives fixed durations)
    timer: Callable[[], float] = time.perf_counter
    #: waits until an instant on ``clock`` (a test clock's own); None: ``sleep`` on the real clock
    sleep_until: Callable[[int], None] | None = None
    retention_days: int = 30
    wheel: WheelStore | None = None
    #: where new wheel entries go: the ring (adapters/ring_store.CachedRing) or a fixed shard count
    shards: int | Placement = 1
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=32))
    #: per-tenant dead-letter records (GET /v1/dead-letters), written with every DLQ message
    dead_letters: DeadLetterStore | None = None
    grace_ms: int = GRACE_MS
    #: gives a counted task's in-flight quota back when it ends
    admission: Admission = field(default_factory=Admission)
    breakers: CircuitBreakers | None = None
    heartbeat_ms: int = HEARTBEAT_MS
    #: checked again before every call: the tenant's policy may have changed since the task was accepted
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: wakes an idle tick when a retry or a watch lands in the wheel due soon
    wakes: Wakes | None = None
    #: the bucket of large payloads and results (None: results over the inline limit are not kept)
    blobs: BlobStore | None = None
    #: a span per attempt (taskplane/tracing.py)
    tracing: Tracing = NULL_TRACING
    #: per-target duration sketches: ``timeout_s: "auto"`` reads them, every answered call adds to them
    latencies: Latencies | None = None
    #: payload bytes read from the bucket this instance holds at once (None: no limit)
    payload_budget: PayloadBudget | None = None

    def flush(self) -> int:
        """Write what the batch's attempts measured: their durations, and their calls through each
        circuit breaker (one write per target; the trip check runs here, so a breaker opens at the
        end of the batch that tripped it). Every user of an Executor calls it once per delivery batch
        (the worker handler, so ``taskplane dev`` too). Returns the writes made."""
        writes = self.latencies.flush() if self.latencies is not None else 0
        if self.breakers is not None:
            counted, changes = self.breakers.flush()
            writes += counted
            for change in changes:
                self.telemetry.count(
                    change.metric, tenant=change.tenant, target_type=change.target_type, lane=change.lane
                )
        return writes

    def handle(self, delivery: LaneMessage, hold: Hold | None = None) -> Outcome:
        """Process one lane message; raises only when the message must be redelivered.

        ``hold(seconds)`` keeps this delivery's lane message invisible that long (the worker passes
        one bound to the SQS receipt): a started attempt holds its message until it would count as
        abandoned, so a dead worker's delivery comes back exactly then. Without one (or if holding
        fails), the attempt is watched through a timeout entry in the wheel instead.
        """
        result = self._handle(delivery, hold)
        while isinstance(result, _RetryHere):
            # The next attempt is due soon: wait for it here, under the same (held) lane message.
            with self.tracing.delivered(result.message):
                result = self._handle(result.message, hold)
        return result

    def _handle(self, delivery: LaneMessage, hold: Hold | None) -> Handled:
        expected = TaskState(delivery.state)
        if expected is S.RUNNING:
            return self._watch(delivery, hold=hold)
        now = self.clock.now_ms()
        if delivery.due_ms is not None and delivery.due_ms > now:
            if delivery.due_ms - now > MAX_EARLY_WAIT_MS:
                # Far too early (a lane message's 15-minute cap, a skewed clock): round again.
                self.lanes.send_one(
                    dataclasses.replace(delivery, delay_s=arrival_delay_s(delivery.due_ms, now))
                )
                return Outcome.REQUEUED
            now = self.wait_until(delivery.due_ms)
        path = path_to_running(expected) or [S.RUNNING]
        fields: dict[str, Any] = {"started_at": now}
        if expected is not S.PENDING:
            fields["dispatched_at"] = delivery.dispatched_at or now
        detail = f"attempt {delivery.attempt}"
        if delivery.late_ms:
            detail += f", dispatched {delivery.late_ms} ms late"
        # Optimistic start from the state the sender saw: the usual delivery costs one write.
        started = self.store.transition(
            delivery.tenant,
            delivery.task_id,
            expected,
            path,
            at_ms=now,
            detail=detail,
            fields=fields,
            add_attempt=True,
            expected_attempts=delivery.attempt - 1,
            due_field=DUE_FIELD.get(expected),
            due_by=now,
        )
        task = started.task
        if not started.ok:
            if task is None:
                return self._missing(delivery)
            if task.state is S.RUNNING and task.attempts == delivery.attempt:
                # This very delivery started the attempt and its worker died before acknowledging
                # it: make sure the attempt is watched (and timed out if it is already abandoned).
                return self._watch(delivery, task)
            resolved = self._start_waiting(task, delivery)
            if not isinstance(resolved, Task):
                return resolved
            task = resolved
        assert task is not None
        return self._run(task, hold)

    def wait_until(self, due_ms: int) -> int:
        """Sleep until ``due_ms`` by this worker's clock; returns the time it woke (still early only
        when the sleep did not last: the start's conditional write then refuses, and it is requeued).
        A window's end is held the same way before its close (services/windows.py)."""
        if self.sleep_until is not None:
            self.sleep_until(due_ms)
        for _ in range(3):  # a sleep may end a fraction of a millisecond short of the clock's tick
            now = self.clock.now_ms()
            if now >= due_ms:
                break
            self.sleep((due_ms - now) / 1000)
        return self.clock.now_ms()

    def _missing(self, delivery: LaneMessage) -> Outcome:
        """No such task. A wheel entry is written before its task, so the tick can be faster than a
        slow task write: look again a few times, a second apart, before dropping the delivery. (An
        immediate delivery is queued after its task is stored: missing means withdrawn.)"""
        if delivery.state == S.PENDING.value or delivery.missing_hops >= MAX_MISSING_HOPS:
            return Outcome.MISSING
        self.lanes.send_one(dataclasses.replace(delivery, delay_s=1, missing_hops=delivery.missing_hops + 1))
        return Outcome.REQUEUED

    def _start_waiting(self, task: Task, delivery: LaneMessage) -> Task | Outcome:
        """A delivery found the task in another state than expected: start it if due, requeue, or drop."""
        path = path_to_running(task.state)
        if path is None:
            return Outcome.DUPLICATE
        due = task.next_attempt_at if task.state is S.RETRYING and task.next_attempt_at else task.run_at
        now = self.clock.now_ms()
        if 0 < due - now <= MAX_EARLY_WAIT_MS:
            # Whole-second SQS delays (and clock skew) bring some deliveries a little early:
            # wait out the rest here rather than a second round trip, so the start stays precise.
            now = self.wait_until(due)
        if due > now:
            # Sent back with the tick's dispatch time, so the task still records when it left the wheel.
            self.lanes.send_one(
                dataclasses.replace(delivery_for(task, now), dispatched_at=delivery.dispatched_at)
            )
            return Outcome.REQUEUED
        fields: dict[str, Any] = {"started_at": now}
        if task.state is not S.PENDING:
            fields["dispatched_at"] = delivery.dispatched_at or now
        result = self.store.transition(
            task.tenant,
            task.task_id,
            task.state,
            path,
            at_ms=now,
            detail=f"attempt {task.attempts + 1}",
            fields=fields,
            add_attempt=True,
            expected_attempts=task.attempts,
            due_field=DUE_FIELD.get(task.state),
            due_by=now,
        )
        return result.task if result.ok and result.task is not None else Outcome.DUPLICATE

    # -- timeouts that survive a dead worker -----------------------------------------------------
    def _watch_entry(self, task: Task, due_ms: int) -> WheelEntry:
        return WheelEntry(
            shard=shard_for(task.task_id, self.shards),
            due_ms=due_ms,
            item_id=task.task_id,
            tenant=task.tenant,
            kind="watch",
            lane=task.priority,
            attempt=task.attempts,
        )

    def _arm_watch(self, task: Task, due_ms: int) -> None:
        """Put the attempt's watch in the wheel (same attempt and time: the same entry, so repeats are free)."""
        if self.wheel is not None:
            self._into_wheel(self._watch_entry(task, due_ms))

    def _into_wheel(self, entry: WheelEntry) -> None:
        assert self.wheel is not None
        self.wheel.put(entry)
        if self.wakes is not None:
            self.wakes.after_write([entry], self.clock.now_ms())

    def _disarm_watch(self, task: Task) -> None:
        """The attempt ended here: drop its first watch, so the tick sends nothing for it (best effort:
        a watch left behind finds the attempt ended and is dropped by the worker)."""
        if self.wheel is None or task.started_at is None:
            return
        with contextlib.suppress(Exception):
            self.wheel.delete(
                self._watch_entry(task, first_watch(task.started_at, task.timeout_s, self.grace_ms))
            )

    @traced_watch
    def _watch(self, delivery: LaneMessage, task: Task | None = None, hold: Hold | None = None) -> Handled:
        """A watch came due (or a started delivery came back): time out an abandoned attempt, or look later."""
        task = task or self.store.get(delivery.tenant, delivery.task_id)
        if task is None:
            return Outcome.MISSING
        if task.state is S.RETRYING and task.attempts == delivery.attempt:
            # That attempt ended with a retry, whose start may have been lost with the worker that
            # waited for it (or whose wheel entry was never written): start it now, or send it round.
            resolved = self._start_waiting(task, delivery)
            return self._run(resolved, hold) if isinstance(resolved, Task) else resolved
        if task.state is not S.RUNNING or task.attempts != delivery.attempt or task.started_at is None:
            return Outcome.DUPLICATE  # that attempt ended: nothing to watch
        now = self.clock.now_ms()
        again = next_watch(task.started_at, task.timeout_s, task.heartbeat_at, now, self.grace_ms)
        if again is not None:
            self._arm_watch(task, again)
            return Outcome.REQUEUED
        dims: dict[str, Any] = {
            "tenant": task.tenant,
            "target_type": task.target_type,
            "lane": task.priority,
            "attempt": task.attempts,
        }
        self.telemetry.count("abandoned", **dims)
        failure = TargetFailure(
            "Timeout",
            f"attempt {task.attempts} abandoned: no result or heartbeat within timeout_s={task.timeout_s} "
            f"plus {self.grace_ms // 1000} s (its worker stopped)",
            retryable=True,
        )
        return self._failed(task, failure, timed_out=True, dims=dims)

    def _beat(self, task: Task, done: threading.Event) -> None:
        """Beat now (the attempt has run a beat's interval: see ``_answer``), then every interval."""
        while not done.is_set():
            try:
                if not self.store.heartbeat(task.tenant, task.task_id, task.attempts, self.clock.now_ms()):
                    return  # the attempt was timed out or ended elsewhere
            except Exception:  # a missed beat is not fatal; the next one may land
                pass
            if done.wait(self.heartbeat_ms / 1000):
                return

    def _answer(self, future: Future[Any], task: Task, done: threading.Event, limit_s: float) -> Any:
        """The call's answer within ``limit_s``. An attempt that may outlive a heartbeat's staleness
        heartbeats from its first interval on, on a thread started only then: almost every call answers
        long before, and a thread started for every call was ~7% of `taskplane dev`'s CPU a task."""
        if not needs_heartbeat(task.timeout_s):
            return future.result(timeout=limit_s)
        first = min(limit_s, self.heartbeat_ms / 1000)
        try:
            return future.result(timeout=first)
        except FutureTimeout:
            if first >= limit_s:
                raise
        threading.Thread(target=self._beat, args=(task, done), daemon=True).start()
        return future.result(timeout=limit_s - first)

    def _guard(self, task: Task, hold: Hold | None) -> bool:
        """Make sure a dead worker's attempt is noticed when it counts as abandoned; True when that
        took a wheel watch (to drop when the attempt ends here)."""
        if task.started_at is None:
            return False
        due = first_watch(task.started_at, task.timeout_s, self.grace_ms)
        if hold is not None:
            try:
                # Whole seconds, rounded up: the redelivery comes at or just after the due time.
                hold(max(1, -(-(due - self.clock.now_ms()) // 1000)))
                return False
            except Exception:
                pass  # the wheel watch below does the same job, at two writes instead of one request
        # Not fatal if it fails: the lane message stays unacknowledged until this attempt ends,
        # so if this worker dies its redelivery arms the watch (see handle).
        with contextlib.suppress(Exception):
            self._arm_watch(task, due)
            return self.wheel is not None
        return False

    @traced_attempt
    def _run(self, task: Task, hold: Hold | None = None) -> Handled:
        dims: dict[str, Any] = {
            "tenant": task.tenant,
            "target_type": task.target_type,
            "lane": task.priority,
            "attempt": task.attempts,
        }
        self.telemetry.count("started", **dims)
        watched = self._guard(task, hold)
        now = self.clock.now_ms()
        limit_s, notes = self._limit(task)
        if not can_finish_by(task.deadline, now, math.ceil(limit_s)):
            # Deadline-aware: an attempt that could run past the deadline is not made at all.
            late = TargetFailure(
                "DeadlineExceeded",
                f"attempt {task.attempts} not started: with a timeout of {limit_s:g} s it could not "
                f"finish by the deadline {to_rfc3339(task.deadline)}",
                retryable=False,
            )
            return self._finish(task, self._failed(task, late, timed_out=False, dims=dims), watched)
        why = self.targets.refusal(task.tenant, task.target)
        if why is not None:
            self.telemetry.count("target_refused", **dims)
            refused = TargetFailure(TARGET_REFUSED, refusal_failure_message(why), retryable=False)
            return self._finish(task, self._failed(task, refused, timed_out=False, dims=dims), watched)
        guard: Guard | None = None
        if self.breakers is not None:
            try:
                guard = self.breakers.before(task.tenant, task.effective_target, task.retry.breaker)
            except TargetFailure as open_breaker:
                # Fails fast and counts as a retryable failure (backoff, then another try).
                self.telemetry.count("breaker_open", **dims)
                return self._finish(
                    task, self._failed(task, open_breaker, timed_out=False, dims=dims, notes=notes), watched
                )
            if guard is not None and guard.probe:
                self.telemetry.count("breaker_half_open", **dims)
                notes.append(f"circuit breaker for {guard.target} half-open: this attempt is its probe")
        # A payload read from the bucket and sent inline takes room in the instance's memory until
        # its call ends (services/payload_budget.py): a record waits while the batch's others fill it.
        taken = self._payload_room(task)
        try:
            envelope = self._envelope(task)
        except TargetFailure as unreadable:
            self._give_room(taken)
            return self._finish(task, self._failed(task, unreadable, timed_out=False, dims=dims), watched)
        cancel = threading.Event()
        began = self.timer()
        done = threading.Event()
        future = self.pool.submit(
            # In this attempt's context (its span: an HTTP target's traceparent).
            contextvars.copy_context().run,
            self.runners.run,
            task.effective_target,
            envelope,
            limit_s,
            cancel,
            tenant=task.tenant,
        )
        failure: TargetFailure | None = None
        timed_out = False
        try:
            result = self._answer(future, task, done, limit_s)
        except FutureTimeout:
            cancel.set()
            failure = TargetFailure(
                "Timeout", f"no answer within {_timeout_words(task, limit_s)}", retryable=True
            )
            timed_out = True
        except TargetFailure as target_failure:
            # A runner that gave up on its own clock (an HTTP read timeout) timed out all the same.
            failure = target_failure
            timed_out = target_failure.error_type == "Timeout"
        except Exception as exc:  # a bug in a runner must not lose the task: retry it like a failure
            failure = TargetFailure(type(exc).__name__, str(exc) or repr(exc), retryable=True)
        finally:
            done.set()
            del envelope  # the call has it no more (a timed-out call's thread keeps its own reference)
            self._give_room(taken)
            took_ms = (self.timer() - began) * 1000
            self.telemetry.duration_ms(took_ms, **dims)
        if self.latencies is not None and not timed_out:
            # A duration only from a call that answered: a timeout says nothing but "longer than that".
            self.latencies.record(task.tenant, task.effective_target, took_ms)
        if self.breakers is not None and (failure is None or failure.error_type != "CircuitOpen"):
            change = self.breakers.after(
                guard, classify(failure.retryable if failure else None, timed_out), lane=task.priority
            )
            if change is not None:
                self.telemetry.count(change.metric, **dims)
                notes.append(change.note)
        if failure is not None:
            return self._finish(
                task, self._failed(task, failure, timed_out=timed_out, dims=dims, notes=notes), watched
            )
        return self._finish(task, self._succeeded(task, result, dims, notes), watched)

    def _payload_room(self, task: Task) -> int:
        """Room taken in the payload budget for this attempt's payload (0: none needed or no budget)."""
        ref = task.payload_ref
        if self.payload_budget is None or ref is None or self.blobs is None:
            return 0
        if ref.size > inline_limit(task.effective_target):
            return 0  # sent as a URL: never read here
        return self.payload_budget.take(ref.size)

    def _give_room(self, taken: int) -> None:
        if self.payload_budget is not None:
            self.payload_budget.give(taken)

    def _limit(self, task: Task) -> tuple[float, list[str]]:
        """This attempt's hard timeout in seconds, and (for "auto") a note saying how it was chosen."""
        if task.auto_timeout is None:
            return float(task.timeout_s), []
        if self.latencies is None:
            return float(task.timeout_s), [
                f"timeout {task.timeout_s} s (auto: no sketches here, the ceiling)"
            ]
        chosen = self.latencies.timeout_for(task.tenant, task.effective_target, task.auto_timeout)
        return chosen.seconds, [chosen.describe(task.auto_timeout)]

    def _finish(self, task: Task, outcome: Handled, watched: bool) -> Handled:
        if watched:
            self._disarm_watch(task)
        return outcome

    def _envelope(self, task: Task) -> dict[str, Any]:
        """What the target receives. A payload kept in the bucket comes inline when it fits what the
        target takes in one call, else as ``payload_url`` (readable for the attempt) and ``payload_size``."""
        envelope: dict[str, Any] = {
            "task_id": task.task_id,
            "attempt": task.attempts,
            "payload": task.payload,
        }
        ref = task.payload_ref
        if ref is None or self.blobs is None:
            return envelope
        if ref.size > inline_limit(task.effective_target):
            envelope["payload_url"] = self.blobs.download_url(ref.key, task.timeout_s + 300)
            envelope["payload_size"] = ref.size
            return envelope
        data = self.blobs.get(ref.key)
        if data is None:
            raise TargetFailure(
                "PayloadMissing", f"the payload {ref.key} is gone from the bucket", retryable=False
            )
        try:
            envelope["payload"] = json.loads(data)
        except ValueError:
            raise TargetFailure(
                "InvalidPayload", "the uploaded payload is not JSON", retryable=False
            ) from None
        return envelope

    def _kept(self, task: Task, result: Any, now_ms: int) -> tuple[dict[str, Any], str | None]:
        """The fields that record a result: inline when small, in the bucket up to MAX_RESULT_BYTES."""
        if self.blobs is None:
            result, detail = keepable_result(result)
            # (a RawJson is larger than any inline limit: kept only as the bucket's)
            return {"result": result.value() if isinstance(result, RawJson) else result}, detail
        result, detail = keepable_result(result, MAX_BLOB_RESULT_BYTES)
        if isinstance(result, RawJson):
            data = result.data  # over LARGE_RESULT_BYTES: always the bucket's, never built here
        elif detail is not None or payload_size(result) <= INLINE_BYTES:
            return {"result": result}, detail
        else:
            data = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
        key = result_key(task.tenant, task.task_id, task.attempts)
        ref = self.blobs.put(key, data, expire_days=expiry_days(0, self.retention_days))
        return {"result_ref": ref}, None

    def _succeeded(
        self, task: Task, result: Any, dims: dict[str, Any], notes: list[str] | None = None
    ) -> Outcome:
        now = self.clock.now_ms()
        kept, detail = self._kept(task, result, now)
        detail = _joined([*(notes or []), *([detail] if detail else [])])
        moved = self.store.transition(
            task.tenant,
            task.task_id,
            S.RUNNING,
            [S.SUCCEEDED],
            at_ms=now,
            detail=detail,
            fields={"finished_at": now, **kept, "expires_at": self._expiry(now)},
            remove=("error", "next_attempt_at"),
            # Only this attempt's outcome: a zombie whose attempt was timed out must not finish the next one.
            expected_attempts=task.attempts,
            return_task=False,
        )
        if not moved.ok:
            return Outcome.DUPLICATE
        if task.counted:
            self.admission.release(task.tenant)
        self.telemetry.count("succeeded", **dims)
        return Outcome.SUCCEEDED

    def _retry_here(self, waiting: Task) -> _RetryHere:
        message = LaneMessage(
            tenant=waiting.tenant,
            task_id=waiting.task_id,
            attempt=waiting.attempts + 1,
            lane=waiting.priority,
            state=S.RETRYING.value,
            due_ms=waiting.next_attempt_at,
        )
        (traced,), ended = self.tracing.dispatch([message])
        ended([None])
        return _RetryHere(traced)

    def _failed(
        self,
        task: Task,
        failure: TargetFailure,
        *,
        timed_out: bool,
        dims: dict[str, Any],
        notes: list[str] | None = None,
    ) -> Handled:
        now = self.clock.now_ms()
        notes = list(notes or [])
        self.tracing.failed(failure.error_type, failure.message)
        error = {"type": failure.error_type, "message": failure.message[:2000]}
        skipped = (
            failure.retryable
            and task.attempts < task.retry.max_attempts
            and skip_by_context(task.retry, now, task.deadline)
        )
        if skipped:
            # The seed's context-aware rule: a non-critical task short of time goes to its fallback.
            assert task.deadline is not None
            self.telemetry.count("retry_skipped", **dims, error_type=failure.error_type)
            notes.append(
                f"retry skipped: not critical, {max(0, task.deadline - now)} ms left before the deadline "
                f"(min_remaining_ms={task.retry.min_remaining_ms})"
            )
        retry_at = (
            next_attempt_at(
                task.retry, task.attempts, now, self.uniform, latest_start(task.deadline, task.timeout_s)
            )
            if failure.retryable and not skipped
            else None
        )
        prefix = [S.TIMED_OUT] if timed_out else []
        if retry_at is not None:
            moved = self.store.transition(
                task.tenant,
                task.task_id,
                S.RUNNING,
                [*prefix, S.RETRYING],
                at_ms=now,
                detail=_joined(
                    [*notes, f"{failure.error_type}: retry {task.attempts + 1} at +{retry_at - now} ms"]
                ),
                fields={"error": error, "next_attempt_at": retry_at},
                expected_attempts=task.attempts,
                return_task=False,
            )
            self.telemetry.count("retried", **dims, error_type=failure.error_type)
            if moved.ok:
                # State first, then the delivery: if this send fails the message is redelivered,
                # finds the task RETRYING and queues it again.
                waiting = task.model_copy(update={"state": S.RETRYING, "next_attempt_at": retry_at})
                if retry_at - now <= INLINE_RETRY_MS:
                    return self._retry_here(waiting)
                if self.wheel is not None and goes_through_wheel(retry_at, now):
                    # The tick sends it a lead ahead and the next worker waits out the rest: precise.
                    self._into_wheel(wheel_entry_for(waiting, self.shards))
                else:
                    self.lanes.send_one(delivery_for(waiting, now))
            return Outcome.RETRYING
        reason = (
            f"{failure.error_type}: retry skipped by context"
            if skipped
            else self._final_reason(task, failure, retryable_but_exhausted=failure.retryable)
        )
        fallback = self._fallback(task, error, dims) if task.retry.fallback is not None else None
        if fallback is not None:
            notes.append(fallback_note(fallback))
        # The dead letter goes first: a crash after it leaves the task RUNNING for the sweeper,
        # never FAILED without its dead letter.
        self.lanes.dead_letter(task.tenant, task.task_id, reason)
        if self.dead_letters is not None:
            self.dead_letters.put(
                DeadLetter(
                    tenant=task.tenant,
                    task_id=task.task_id,
                    reason=reason,
                    at=now,
                    attempts=task.attempts,
                    target_type=task.target_type,
                    error=error,
                    fallback=_fallback_record(fallback),
                )
            )
        ended = self.store.transition(
            task.tenant,
            task.task_id,
            S.RUNNING,
            [*prefix, S.FAILED],
            at_ms=now,
            detail=_joined([*notes, reason]),
            fields={
                "finished_at": now,
                "error": error,
                "expires_at": self._expiry(now),
                **({"fallback": fallback} if fallback is not None else {}),
            },
            remove=("next_attempt_at",),
            expected_attempts=task.attempts,
            return_task=False,
        )
        if ended.ok and task.counted:
            self.admission.release(task.tenant)
        self.telemetry.count("failed", **dims, error_type=failure.error_type)
        return Outcome.FAILED

    def _fallback(self, task: Task, error: dict[str, str], dims: dict[str, Any]) -> dict[str, Any]:
        """Call the retry policy's fallback once (claimed on the task first: a worker that dies in it
        leaves the claim, and the attempt's timeout records the outcome as unknown, never a second call)."""
        fallback = task.retry.fallback
        assert fallback is not None
        target = fallback.model_dump()
        now = self.clock.now_ms()
        if not self.store.claim_fallback(task.tenant, task.task_id, task.attempts, now):
            self.telemetry.count("fallback_unknown", **dims)
            return {
                "state": "UNKNOWN",
                "at": now,
                "error": {"type": "FallbackLost", "message": "the worker calling the fallback stopped"},
            }
        try:
            envelope = self._envelope(task)
        except TargetFailure:
            envelope = {"task_id": task.task_id, "attempt": task.attempts, "payload": None}
        outcome = call_fallback(
            runners=self.runners,
            pool=self.pool,
            targets=self.targets,
            tenant=task.tenant,
            target=target,
            envelope={**envelope, "fallback": True, "error": error},
            timeout_s=self._fallback_timeout_s(task, now),
        )
        self.telemetry.count(f"fallback_{outcome['state'].lower()}", **dims)
        return {**outcome, "at": self.clock.now_ms()}

    def _fallback_timeout_s(self, task: Task, now: int) -> float:
        """The fallback runs inside the attempt (still RUNNING): within ``timeout_s``, and ended before
        the attempt's watch would count it abandoned (its heartbeats stopped with the call). A watch
        that already finds the attempt abandoned gives it the grace period."""
        if task.started_at is None:
            return float(task.timeout_s)
        budget = final_due(task.started_at, task.timeout_s, self.grace_ms) - now
        if needs_heartbeat(task.timeout_s):
            budget = min(budget, STALE_MS - self.heartbeat_ms)
        if budget <= 1_000:
            budget = self.grace_ms
        return max(1.0, min(float(task.timeout_s), (budget - 1_000) / 1000))

    @staticmethod
    def _final_reason(task: Task, failure: TargetFailure, *, retryable_but_exhausted: bool) -> str:
        if failure.error_type in ("DeadlineExceeded", TARGET_REFUSED):
            return failure.message
        if not retryable_but_exhausted:
            return f"{failure.error_type} is not retryable"
        if task.attempts >= task.retry.max_attempts:
            return f"{failure.error_type} after {task.attempts} of {task.retry.max_attempts} attempts"
        return f"{failure.error_type}: no retry could finish by the deadline"

    def _expiry(self, now_ms: int) -> int:
        return now_ms // 1000 + self.retention_days * 86400


def _joined(parts: list[str]) -> str | None:
    return "; ".join(p for p in parts if p) or None


def _timeout_words(task: Task, limit_s: float) -> str:
    if task.auto_timeout is None:
        return f"timeout_s={task.timeout_s}"
    return f"the attempt's auto timeout of {limit_s:g} s"


def _fallback_record(outcome: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fallback's outcome as a dead letter keeps it (without the time: the record has its own)."""
    if outcome is None:
        return None
    return {k: v for k, v in outcome.items() if k != "at"}
