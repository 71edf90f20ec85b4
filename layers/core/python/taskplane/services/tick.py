"""The tick: one lease-holder per wheel shard dispatching due entries on time.

A tick takes the shard's lease (a conditional write with an expiry), resumes from the shard's saved
position, and until its time is up: loads entries due within the next LOOKAHEAD_MS into a heap (each
range of the wheel is read once), sends each entry to its lane when it is due, and every second saves
how far it got while extending the lease. A second tick on the same shard waits for the lease to be
released or to expire. A crashed tick's successor resumes from the last saved position; entries it
sends again are harmless, because the worker starts an attempt only once.
"""

from __future__ import annotations

import gc
import heapq
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field

from taskplane.adapters.queues import LaneMessage, Lanes
from taskplane.adapters.wheel_store import Lease, WheelStore, upto_key
from taskplane.domain.clock import Clock
from taskplane.domain.wheel import (
    LOOKAHEAD_MS,
    LOOKBACK_MS,
    POLL_MS,
    WheelEntry,
    slot_of,
    slots_between,
    sort_key,
)
from taskplane.services.ports import NullTelemetry, Telemetry

ScheduleFirer = Callable[[WheelEntry, int], None]
#: The state a delivery of each kind of wheel entry expects; a "watch" checks a RUNNING attempt
#: for a dead worker (see domain/timeouts.py).
ENTRY_STATE = {"task": "SCHEDULED", "retry": "RETRYING", "watch": "RUNNING"}
FIRST_RUN_LOOKBACK_MS = 3_600_000


@dataclass
class TickReport:
    shard: int
    owner: str
    acquired: bool = False
    dispatched: int = 0
    late: int = 0
    fired: int = 0
    send_failures: int = 0
    lost_lease: bool = False


class _Run:
    """One tick's moving parts: the heap, batches in flight, and entries to send again."""

    def __init__(self, report: TickReport) -> None:
        self.report = report
        self.heap: list[tuple[int, str, int, WheelEntry]] = []
        self.lock = threading.Lock()
        self.inflight: dict[Future[None], list[WheelEntry]] = {}
        self.unsent: list[WheelEntry] = []  # refused by the queue, back into the heap on the next pass

    def submit(self, pool: ThreadPoolExecutor, fn: Callable[..., None], batch: list[WheelEntry]) -> None:
        future = pool.submit(fn, batch, self)
        with self.lock:
            self.inflight[future] = batch
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self.lock:
            self.inflight.pop(future, None)

    def give_back(self, entries: list[WheelEntry]) -> None:
        with self.lock:
            self.unsent.extend(entries)

    def requeue_unsent(self) -> None:
        with self.lock:
            entries, self.unsent = self.unsent, []
        for entry in entries:
            heapq.heappush(self.heap, (entry.due_ms, entry.sk, entry.slot_ms, entry))

    def settle(self) -> None:
        """Wait for batches in flight, then take back what could not be sent."""
        with self.lock:
            futures = list(self.inflight)
        wait_all(futures)
        self.requeue_unsent()

    def resume(self, now: int) -> tuple[int, str]:
        """Where a successor must start: the earliest entry not yet sent (waiting or in flight), and never
        later than the look-back window (whatever a successor sends twice, the worker starts once)."""
        keys = [(slot, sk) for _, sk, slot, _ in self.heap]
        with self.lock:
            keys += [e.key for batch in self.inflight.values() for e in batch]
            keys += [e.key for e in self.unsent]
        recent = (slot_of(now - LOOKBACK_MS), sort_key(now - LOOKBACK_MS, ""))
        return min([*keys, recent])


@dataclass
class Ticker:
    wheel: WheelStore
    lanes: Lanes
    clock: Clock
    #: waits up to the given seconds; returns True when the tick should stop (an Event's wait)
    wait: Callable[[float], bool]
    poll_ms: int = POLL_MS
    lease_ms: int = 15_000
    save_every_ms: int = 1_000
    late_after_ms: int = 1_000
    #: a due entry waits this long for others to share its SendMessageBatch (cost: SQS bills per call)
    linger_ms: int = 5
    fire_schedule: ScheduleFirer | None = None
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    senders: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))

    def run(self, shard: int, until_ms: int, owner: str | None = None) -> TickReport:
        """Dispatch shard ``shard`` until ``until_ms`` (epoch ms, by this tick's clock)."""
        report = TickReport(shard=shard, owner=owner or uuid.uuid4().hex)
        lease = self._acquire(shard, report.owner, until_ms)
        if lease is None:
            return report
        report.acquired = True
        now = self.clock.now_ms()
        run = _Run(report)
        # Tens of thousands of small objects live in a busy tick; the default collector thresholds
        # pause it for tens of milliseconds at a time. Collect the young generation less often while
        # it runs, and put the defaults back afterwards.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), max(thresholds[1], 20), max(thresholds[2], 50))
        try:
            return self._run(shard, until_ms, lease, now, run)
        finally:
            gc.set_threshold(*thresholds)

    def _run(self, shard: int, until_ms: int, lease: Lease, now: int, run: _Run) -> TickReport:
        report = run.report
        # Resume where the last holder saved. A shard's very first tick (the rule starts ticking when
        # the stack is deployed, before any entry exists) still looks an hour back, in case it started late.
        backlog_from = (
            (lease.resume_slot, lease.resume_sk)
            if lease.resume_slot is not None
            else (slot_of(now - FIRST_RUN_LOOKBACK_MS), "")
        )
        seen: dict[tuple[int, str], int] = {}  # keys loaded in the recent window -> due ms
        loaded_at = -(10**15)
        saved_at = now
        while True:
            now = self.clock.now_ms()
            if now >= until_ms:
                break
            run.requeue_unsent()
            if now - loaded_at >= self.poll_ms:
                recent = (slot_of(now - LOOKBACK_MS), sort_key(now - LOOKBACK_MS, ""))
                self._load(shard, min(backlog_from, recent), now + LOOKAHEAD_MS, run.heap, seen)
                backlog_from = recent  # the backlog (if any) is in the heap now
                loaded_at = now
            due: list[WheelEntry] = []
            while run.heap and run.heap[0][0] <= now:
                due.append(heapq.heappop(run.heap)[3])
            if due:
                self._dispatch(due, run)
            if now - saved_at >= self.save_every_ms:
                if not self.wheel.save(shard, report.owner, now, self.lease_ms, run.resume(now)):
                    report.lost_lease = True
                    run.settle()
                    return report
                saved_at = now
                cutoff = now - LOOKBACK_MS - self.save_every_ms
                for key in [k for k, d in seen.items() if d < cutoff]:
                    del seen[key]
            # Sleep until the next entry is due (plus a few ms for a batch to fill) or the next read.
            head = run.heap[0][0] + self.linger_ms if run.heap else until_ms
            next_event = min(head, loaded_at + self.poll_ms, until_ms)
            if self.wait(max(0, next_event - self.clock.now_ms()) / 1000):
                break
        run.settle()
        if self.wheel.save(
            shard, report.owner, self.clock.now_ms(), self.lease_ms, run.resume(self.clock.now_ms())
        ):
            self.wheel.release(shard, report.owner)
        else:
            report.lost_lease = True
        return report

    # -- steps -------------------------------------------------------------------------------------
    def _acquire(self, shard: int, owner: str, until_ms: int) -> Lease | None:
        """Take the lease, waiting (until ``until_ms``) while another tick holds it."""
        while True:
            now = self.clock.now_ms()
            lease = self.wheel.acquire(shard, owner, now, self.lease_ms)
            if lease is not None or now >= until_ms:
                return lease
            holder = self.wheel.peek(shard)
            # Back off until the holder's lease runs out (it may release sooner: look again soon).
            pause = 100 if holder is None else max(20, min(250, holder.until_ms - now))
            if self.wait(min(pause, max(0, until_ms - now)) / 1000):
                return None

    def _load(
        self,
        shard: int,
        start: tuple[int, str],
        horizon: int,
        heap: list[tuple[int, str, int, WheelEntry]],
        seen: dict[tuple[int, str], int],
    ) -> None:
        """Read entries from ``start`` (inclusive) to ``horizon`` into the heap, skipping those already seen."""
        first_slot, first_sk = start
        last_slot = slot_of(horizon)
        for slot in slots_between(first_slot, horizon):
            upto = upto_key(horizon) if slot == last_slot else None
            for entry in self.wheel.load(shard, slot, first_sk if slot == first_slot else "", upto):
                if entry.key in seen:
                    continue
                seen[entry.key] = entry.due_ms
                heapq.heappush(heap, (entry.due_ms, entry.sk, entry.slot_ms, entry))

    def _dispatch(self, due: list[WheelEntry], run: _Run) -> None:
        """Fire due schedules; hand due tasks to the senders in batches of 10 per lane, without waiting."""
        for entry in (e for e in due if e.kind == "schedule"):
            if self.fire_schedule is None:
                continue
            try:
                self.fire_schedule(entry, self.clock.now_ms())
                run.report.fired += 1
            except Exception:
                run.give_back([entry])  # tried again on the next pass
        by_lane: dict[str, list[WheelEntry]] = {}
        for entry in due:
            if entry.kind != "schedule":
                by_lane.setdefault(entry.lane, []).append(entry)
        for group in by_lane.values():
            for i in range(0, len(group), 10):
                run.submit(self.senders, self._send_and_account, group[i : i + 10])

    def _send_and_account(self, batch: list[WheelEntry], run: _Run) -> None:
        try:
            outcomes = self._send_batch(batch)
        except Exception as exc:  # an adapter bug must not lose the batch
            outcomes = [exc] * len(batch)
        failed = [e for e, err in zip(batch, outcomes, strict=True) if err is not None]
        for entry in batch:
            if entry not in failed:
                self.telemetry.count(
                    "dispatched",
                    tenant=entry.tenant,
                    target_type="wheel",
                    lane=entry.lane,
                    attempt=entry.attempt,
                )
        with run.lock:
            run.report.dispatched += len(batch) - len(failed)
            run.report.send_failures += len(failed)
            now = self.clock.now_ms()
            run.report.late += sum(1 for e in batch if now - e.due_ms > self.late_after_ms)
        if failed:
            time.sleep(0.1)  # SQS refused: back off a little before the loop tries them again
            run.give_back(failed)

    def _send_batch(self, batch: list[WheelEntry]) -> list[Exception | None]:
        now = self.clock.now_ms()  # stamped per batch, just before it leaves
        messages = []
        for entry in batch:
            late = now - entry.due_ms
            if late > self.late_after_ms:
                self.telemetry.count(
                    "dispatched_late",
                    tenant=entry.tenant,
                    target_type="wheel",
                    lane=entry.lane,
                    attempt=entry.attempt,
                )
            messages.append(
                LaneMessage(
                    tenant=entry.tenant,
                    task_id=entry.item_id,
                    attempt=entry.attempt,
                    lane=entry.lane,
                    state=ENTRY_STATE.get(entry.kind, "SCHEDULED"),
                    dispatched_at=now,
                    late_ms=late if late > self.late_after_ms else 0,
                )
            )
        return self.lanes.send(messages)
