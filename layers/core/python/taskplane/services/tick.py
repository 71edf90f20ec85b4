"""The tick: one lease-holder per wheel shard sending due entries to their lanes on time.

A tick runs only while something is due soon. Invoked (by the shard's rule once a minute, or woken
by a writer of an entry due soon, or by the previous holder handing over), it first looks: when
another tick holds the shard and will still hold it a while, or when nothing is due within
``IDLE_HORIZON_MS``, it ends at once (an idle shard costs one short check a minute). Otherwise it
takes the shard's lease (a conditional write with an expiry), resumes from the shard's saved
position, and until its span ends: loads entries due within the next LOOKAHEAD_MS into a heap
(reading LOOKBACK_MS behind now every LOOKBACK_EVERY_MS, for late writes), sends each when it must
leave (``DISPATCH_LEAD_MS`` before a task or a window's end is due: the worker waits out the rest,
then starts the task or closes the window), grouping tasks due close together into one lane batch,
and every second saves how far it got while extending the lease. With nothing due within the horizon
it releases the shard, looks once more (so a writer that saw the lease still held is never missed),
and ends. Near the end of its span it wakes its successor, which waits for the lease. A crashed
tick's successor resumes from the last saved position; entries it sends again are harmless, because
the worker starts an attempt only once (and a window closes once).
A tick that was slow past its lease (a long read, a paused process) checks the lease before it sends
again: it takes the lease back if no other tick took the shard, and stops if one did.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field

from taskplane.adapters.queues import LaneMessage, Lanes, Outgoing, WindowMessage
from taskplane.adapters.wheel_store import Lease, WheelStore, upto_key
from taskplane.domain.clock import Clock
from taskplane.domain.wheel import (
    DISPATCH_LEAD_MS,
    GROUP_MS,
    HELD_KINDS,
    IDLE_HORIZON_MS,
    LOOKAHEAD_MS,
    LOOKBACK_EVERY_MS,
    LOOKBACK_MS,
    POLL_MS,
    WheelEntry,
    slot_of,
    slots_between,
    sort_key,
)
from taskplane.services.ports import NullTelemetry, Telemetry

ScheduleFirer = Callable[[WheelEntry, int], None]
#: Kinds of entries the tick handles itself instead of sending to a lane. A windowed trigger's window
#: end ("window") goes to its lane like a task: the worker closes the window (a close reads the whole
#: window, up to 5 MiB of events, which the tick's memory need not hold).
OWN_KINDS = frozenset({"schedule"})
#: The state a delivery of each kind of wheel entry expects; a "watch" checks a RUNNING attempt
#: for a dead worker (see domain/timeouts.py).
ENTRY_STATE = {"task": "SCHEDULED", "retry": "RETRYING", "watch": "RUNNING"}
FIRST_RUN_LOOKBACK_MS = 3_600_000
#: A newcomer waits for the holder's lease only when the holder means to stop within this long (its
#: hand-over); a holder that runs longer covers the newcomer's span, and the newcomer ends at once.
WAIT_FOR_HOLDER_MS = 10_000
#: How long before its span ends a busy tick wakes its successor (which then waits for the lease).
HANDOVER_MS = 5_000
#: In the last second of its span a tick sends what must leave up to a second after the span, so
#: nothing is due while the successor takes the lease over (it waits at most 250 ms between tries).
HANDOVER_SEND_AHEAD_MS = 1_000
#: Batches of one lane message per entry: SQS takes ten per SendMessageBatch, the event source
#: mapping hands a worker ten per invocation.
BATCH = 10
#: While batches are in flight the loop looks this often for entries the queue refused (they go back
#: into the heap and leave again at once), whatever its read interval.
RECHECK_MS = 100
#: Wakes the tick of a shard (invokes it asynchronously); set by wiring, a no-op when absent.
Waker = Callable[[int], None]
#: Before each read the tick sends what must leave while the read runs: the longest recent read, at
#: most this long (the worker holds it; MAX_EARLY_WAIT_MS in services/execute.py leaves room for it).
MAX_SEND_BEFORE_READ_MS = 100
#: A tick that has not saved for this long before its lease runs out (a slow read, a paused process)
#: confirms the lease before it sends anything: if another tick took the shard meanwhile, it stops
#: instead of sending what its successor sends too.
LEASE_MARGIN_MS = 5_000


@dataclass
class TickReport:
    shard: int
    owner: str
    acquired: bool = False
    dispatched: int = 0
    late: int = 0
    fired: int = 0
    #: of ``dispatched``, the window ends of windowed triggers (the worker closes their windows)
    windows: int = 0
    send_failures: int = 0
    lost_lease: bool = False
    #: times its lease had run out with no other tick taking the shard, and it took it back
    lease_regained: int = 0
    #: ended at once: another tick holds the shard for a while yet
    covered: bool = False
    #: ended (or never started) because nothing was due within the idle horizon
    idle: bool = False
    handed_over: bool = False
    #: the most any entry left after its send time (ms)
    lag_ms: int = 0


class _Run:
    """One tick's moving parts: the heap, batches in flight, and entries to send again."""

    def __init__(self, report: TickReport, lead_ms: int, until_ms: int) -> None:
        self.report = report
        self.lead_ms = lead_ms
        self.until_ms = until_ms
        #: (when it must leave, arrival order, its item's key, the entry): the key is worked out once,
        #: when the entry is loaded (the resume point reads every waiting entry's key each second)
        self.heap: list[tuple[int, int, tuple[int, str], WheelEntry]] = []
        self._seq = itertools.count()
        self.lock = threading.Lock()
        self.inflight: dict[Future[None], list[WheelEntry]] = {}
        self.unsent: list[WheelEntry] = []  # refused by the queue, back into the heap on the next pass
        self.lateness: list[int] = []  # ms after its send time each entry left, since the last save

    def take_lag(self) -> int | None:
        """The shard's lag since the last call: the p99 of how late entries left (None: none left)."""
        with self.lock:
            late, self.lateness = sorted(self.lateness), []
        return late[min(len(late) - 1, (len(late) * 99) // 100)] if late else None

    def push(self, entry: WheelEntry, key: tuple[int, str] | None = None) -> None:
        item_key = entry.key if key is None else key
        heapq.heappush(self.heap, (entry.sends_at(self.lead_ms), next(self._seq), item_key, entry))

    def pop(self) -> WheelEntry:
        return heapq.heappop(self.heap)[3]

    def head(self) -> int | None:
        """When the next entry must leave (None: nothing in the heap)."""
        return self.heap[0][0] if self.heap else None

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
            self.push(entry)

    def settle(self) -> None:
        """Wait for batches in flight, then take back what could not be sent."""
        with self.lock:
            futures = list(self.inflight)
        wait_all(futures)
        self.requeue_unsent()

    def resume(self, now: int) -> tuple[int, str]:
        """Where a successor must start: the earliest entry not yet sent (waiting or in flight), and never
        later than the look-back window (whatever a successor sends twice, the worker starts once)."""
        keys = [key for _, _, key, _ in self.heap]
        with self.lock:
            keys += [e.key for batch in self.inflight.values() for e in batch]
            keys += [e.key for e in self.unsent]
        return min([*keys, recent_key(now)])


def recent_key(now: int) -> tuple[int, str]:
    """The wheel position LOOKBACK_MS behind ``now``."""
    return (slot_of(now - LOOKBACK_MS), sort_key(now - LOOKBACK_MS, ""))


@dataclass
class Ticker:
    wheel: WheelStore
    lanes: Lanes
    clock: Clock
    #: waits up to the given seconds; returns True when the tick should stop (an Event's wait)
    wait: Callable[[float], bool]
    poll_ms: int = POLL_MS
    #: how often a read goes LOOKBACK_MS behind now (see domain/wheel.py LOOKBACK_EVERY_MS)
    lookback_every_ms: int = LOOKBACK_EVERY_MS
    lease_ms: int = 15_000
    save_every_ms: int = 1_000
    late_after_ms: int = 1_000
    #: how long before its due time a task's entry leaves (the worker waits out the rest)
    lead_ms: int = DISPATCH_LEAD_MS
    #: entries due this soon after the first of a batch share its batch (see domain/wheel.py GROUP_MS)
    group_ms: int = GROUP_MS
    #: with nothing due within this long, the tick releases its shard and ends
    idle_ms: int = IDLE_HORIZON_MS
    fire_schedule: ScheduleFirer | None = None
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    senders: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))
    #: the threads schedule fires run on (a fire makes four calls: a burst of them must not queue the
    #: task batches due beside it); None: the senders
    firers: ThreadPoolExecutor | None = None
    #: wakes a successor near the end of a busy span (None: the shard's rule is the only successor)
    handover: Waker | None = None

    def run(self, shard: int, until_ms: int, owner: str | None = None) -> TickReport:
        """Dispatch shard ``shard`` until ``until_ms`` (epoch ms, by this tick's clock), or until idle."""
        report = TickReport(shard=shard, owner=owner or uuid.uuid4().hex)
        lease = self._start(shard, report, until_ms)
        if lease is None:
            return report
        report.acquired = True
        now = self.clock.now_ms()
        run = _Run(report, self.lead_ms, until_ms)
        # Tens of thousands of small objects live in a busy tick; the default collector thresholds
        # pause it for tens of milliseconds at a time. Collect the young generation less often while
        # it runs, and put the defaults back afterwards.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), max(thresholds[1], 20), max(thresholds[2], 50))
        try:
            return self._run(shard, until_ms, lease, now, run)
        finally:
            gc.set_threshold(*thresholds)

    # -- whether to run at all ---------------------------------------------------------------------
    def _start(self, shard: int, report: TickReport, until_ms: int) -> Lease | None:
        """The lease, or None when this invocation should end at once (covered, or nothing due)."""
        now = self.clock.now_ms()
        holder = self.wheel.peek(shard)
        if holder is not None and holder.alive(now) and holder.owner != report.owner:
            if (holder.runs_until or holder.until_ms) - now > WAIT_FOR_HOLDER_MS:
                report.covered = True  # it runs past our next chance to look; it hands over itself
                return None
        elif not self._work_ahead(shard, holder, now):
            report.idle = True
            return None
        return self._acquire(shard, report.owner, until_ms, report)

    def _backlog_from(self, lease: Lease | None, now: int) -> tuple[int, str]:
        # Resume where the last holder (or the last idle check) saved. A shard's very first tick (the
        # rule starts ticking when the stack is deployed, before any entry exists) looks an hour back.
        if lease is not None and lease.resume_slot is not None:
            return (lease.resume_slot, lease.resume_sk)
        return (slot_of(now - FIRST_RUN_LOOKBACK_MS), "")

    def _work_ahead(self, shard: int, lease: Lease | None, now: int) -> bool:
        """Whether anything is due from the saved position to the idle horizon. When nothing is, the
        saved position moves up to the look-back (so the next check reads one or two slots)."""
        start = min(self._backlog_from(lease, now), recent_key(now))
        if self.wheel.any_due(shard, start, now + self.idle_ms):
            return True
        self.wheel.advance_idle(shard, now, recent_key(now))
        return False

    def _acquire(self, shard: int, owner: str, until_ms: int, report: TickReport) -> Lease | None:
        """Take the lease, waiting (until ``until_ms``) while a holder hands over to us."""
        while True:
            now = self.clock.now_ms()
            lease = self.wheel.acquire(shard, owner, now, self.lease_ms, runs_until=until_ms)
            if lease is not None or now >= until_ms:
                return lease
            holder = self.wheel.peek(shard)
            if holder is not None and (holder.runs_until or 0) - now > WAIT_FOR_HOLDER_MS:
                report.covered = True  # someone else took over first and runs for a while
                return None
            # Back off until the holder's lease runs out (it may release sooner: look again soon).
            pause = 100 if holder is None else max(20, min(250, holder.until_ms - now))
            if self.wait(min(pause, max(0, until_ms - now)) / 1000):
                return None

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self, shard: int, until_ms: int, lease: Lease, now: int, run: _Run) -> TickReport:
        report = run.report
        backlog_from = self._backlog_from(lease, now)
        seen: dict[tuple[int, str], int] = {}  # items loaded in the recent window -> due ms
        loaded_at = looked_back_at = -(10**15)
        saved_at = now
        quiet_since: int | None = None  # when the heap last became empty
        handed = False
        read_ms = 0  # how long a read takes (see MAX_SEND_BEFORE_READ_MS)
        while True:
            now = self.clock.now_ms()
            if now >= until_ms:
                break
            run.requeue_unsent()
            reading = now - loaded_at >= self.poll_ms
            # What the worker holds until due may leave early: near the span's end, what must leave
            # during the hand-over leaves now (a few entries a span wait longer in the worker, instead
            # of late starts); before a read, what must leave while the read runs (its CPU holds up
            # the loop: tens of ms on a busy shard at a 256 MB tick's share of a vCPU).
            early = now
            if until_ms - now <= HANDOVER_SEND_AHEAD_MS:
                early = until_ms + HANDOVER_SEND_AHEAD_MS
            if reading:
                early = max(early, now + read_ms)
            due = self._due(run, now, early)
            if due and self.clock.now_ms() - saved_at >= max(
                self.save_every_ms, self.lease_ms - LEASE_MARGIN_MS
            ):
                # This pass took long (or the one before it did): is the shard still ours?
                for entry in due:
                    run.push(entry)
                now = self.clock.now_ms()
                if not self._keep_lease(shard, run, now, until_ms):
                    run.settle()
                    return report
                saved_at = now
                due = self._due(run, now, early)
            if due:
                self._dispatch(due, run)
            if reading:
                # From LOOKBACK_MS behind now every LOOKBACK_EVERY_MS (late writes), else from now; in
                # the span's last second, far enough ahead for what leaves during the hand-over.
                if now - looked_back_at >= self.lookback_every_ms:
                    start = min(backlog_from, recent_key(now))
                    backlog_from = recent_key(now)  # the backlog (if any) is in the heap now
                    looked_back_at = now
                else:
                    start = (slot_of(now), sort_key(now, ""))
                ahead = LOOKAHEAD_MS
                if until_ms - now <= HANDOVER_SEND_AHEAD_MS + LOOKAHEAD_MS:
                    ahead += HANDOVER_SEND_AHEAD_MS
                began = self.clock.now_ms()
                self._load(shard, start, now + ahead, run, seen)
                # (the longest recent read, fading: one slow read does not send early for long)
                took = self.clock.now_ms() - began
                read_ms = min(MAX_SEND_BEFORE_READ_MS, max(took, read_ms * 3 // 4))
                loaded_at = now
            if now - saved_at >= self.save_every_ms:
                if not self._keep_lease(shard, run, now, until_ms):
                    run.settle()
                    return report
                saved_at = now
                cutoff = now - LOOKBACK_MS - self.save_every_ms
                for key in [k for k, d in seen.items() if d < cutoff]:
                    del seen[key]
                # Nothing in the heap for a second: is anything due before the idle horizon?
                if run.heap or run.inflight or run.unsent:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= self.save_every_ms and self._idle(shard, run, now):
                    report.idle = True
                    return report
            if not handed and self.handover is not None and until_ms - now <= HANDOVER_MS:
                handed = report.handed_over = True
                # The successor waits for our lease; if it cannot be woken, the shard's rule is the
                # successor of last resort (within a minute).
                with contextlib.suppress(Exception):
                    self.handover(shard)
            # Sleep until the next entry must leave or the next read, whichever comes first.
            head = run.head()
            next_event = min(head if head is not None else until_ms, loaded_at + self.poll_ms, until_ms)
            with run.lock:
                sending = bool(run.inflight or run.unsent)
            if sending:
                next_event = min(next_event, now + RECHECK_MS)
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

    def _keep_lease(self, shard: int, run: _Run, now: int, until_ms: int) -> bool:
        """Save the resume point and extend the lease; False (the report says lost) when another tick
        holds the shard. A lease that ran out while this tick was slow, with no other tick taking the
        shard, is taken back: its successor would otherwise resume from the last saved point and send
        again everything sent since (each refused by the worker, but each a write)."""
        report = run.report
        if self.wheel.save(shard, report.owner, now, self.lease_ms, run.resume(now), run.take_lag()):
            return True
        if self.wheel.acquire(shard, report.owner, now, self.lease_ms, runs_until=until_ms) is not None:
            report.lease_regained += 1
            if self.wheel.save(shard, report.owner, now, self.lease_ms, run.resume(now)):
                return True
        report.lost_lease = True
        return False

    def _idle(self, shard: int, run: _Run, now: int) -> bool:
        """With an empty heap: when nothing is due within the idle horizon, release the shard and look
        once more with a consistent read (a writer that saw our lease alive wrote before we released,
        so this read sees its entry); True when the tick may end."""
        horizon = now + self.idle_ms
        if self.wheel.any_due(shard, recent_key(now), horizon):
            return False
        if not self.wheel.save(shard, run.report.owner, now, self.lease_ms, recent_key(now)):
            run.report.lost_lease = True
            return True
        self.wheel.release(shard, run.report.owner)
        if not self.wheel.any_due(shard, recent_key(now), horizon, consistent=True):
            return True
        # Something landed meanwhile: take the shard back (unless another tick was woken for it).
        return self.wheel.acquire(shard, run.report.owner, now, self.lease_ms, run.until_ms) is None

    def _due(self, run: _Run, now: int, early: int | None = None) -> list[WheelEntry]:
        """Entries that must leave now (and those the worker holds until due that must leave by
        ``early``), with the entries due soon after them that fill their batches: per lane, a batch of
        up to ten leaves when its first entry must, and takes entries due up to ``group_ms`` after
        that first one. A schedule's fire or a timeout watch never leaves before its time."""
        limit = now if early is None else max(now, early)
        due: list[WheelEntry] = []
        waiting = []
        while run.heap and run.heap[0][0] <= limit:
            item = heapq.heappop(run.heap)
            if item[0] <= now or item[3].kind in HELD_KINDS:
                due.append(item[3])
            else:
                waiting.append(item)
        for item in waiting:
            heapq.heappush(run.heap, item)  # as it was: its place (send time, arrival order) unchanged
        if not due or self.group_ms <= 0:
            return due
        now = limit
        by_lane: dict[str, list[WheelEntry]] = {}
        for entry in due:
            if entry.kind in ("task", "retry"):
                by_lane.setdefault(entry.lane, []).append(entry)
        room = {lane: -len(group) % BATCH for lane, group in by_lane.items()}
        first_due = {lane: group[0].due_ms for lane, group in by_lane.items()}
        kept = []
        while run.heap and any(room.values()) and run.heap[0][0] <= now + self.group_ms:
            item = heapq.heappop(run.heap)
            entry = item[3]
            lane = entry.lane
            if (
                entry.kind in ("task", "retry")
                and room.get(lane, 0) > 0
                and entry.due_ms <= first_due[lane] + self.group_ms
            ):
                due.append(entry)
                room[lane] -= 1
            else:
                kept.append(item)
        for item in kept:
            heapq.heappush(run.heap, item)  # as it was: its place (send time, arrival order) unchanged
        return due

    def _load(
        self,
        shard: int,
        start: tuple[int, str],
        horizon: int,
        run: _Run,
        seen: dict[tuple[int, str], int],
    ) -> None:
        """Read items from ``start`` (inclusive) to ``horizon`` into the heap, skipping those already seen
        (the store leaves them out undecoded: every poll re-reads its whole range, up to LOOKAHEAD_MS
        ahead, so most of what it reads was taken by an earlier poll)."""
        first_slot, first_sk = start
        last_slot = slot_of(horizon)
        for slot in slots_between(first_slot, horizon):
            upto = upto_key(horizon) if slot == last_slot else None
            fresh: dict[tuple[int, str], int] = {}
            for entry in self.wheel.load(shard, slot, first_sk if slot == first_slot else "", upto, seen):
                key = entry.key
                if key in seen:
                    continue  # an item is read, and skipped, as a whole (a store may not skip it)
                fresh[key] = max(fresh.get(key, 0), entry.due_ms)
                run.push(entry, key)
            seen.update(fresh)

    def _dispatch(self, due: list[WheelEntry], run: _Run) -> None:
        """Hand due schedule fires (one each, to the firers) and due tasks and window ends (in batches of
        10 per lane, to the senders), without waiting: a fire's few calls (read the schedule, create its
        task, send it, move the schedule on) must not hold back the loop, nor a burst of fires the
        batches due beside them."""
        if self.fire_schedule is not None:
            for entry in (e for e in due if e.kind == "schedule"):
                run.submit(self.firers or self.senders, self._fire_and_account, [entry])
        by_lane: dict[str, list[WheelEntry]] = {}
        for entry in due:
            if entry.kind not in OWN_KINDS:
                by_lane.setdefault(entry.lane, []).append(entry)
        for group in by_lane.values():
            for i in range(0, len(group), BATCH):
                run.submit(self.senders, self._send_and_account, group[i : i + BATCH])

    def _fire_and_account(self, batch: list[WheelEntry], run: _Run) -> None:
        assert self.fire_schedule is not None
        try:
            for entry in batch:
                self.fire_schedule(entry, self.clock.now_ms())
        except Exception:
            time.sleep(0.1)  # as a refused send: a little later, on the loop's next pass
            run.give_back(batch)  # firing is idempotent step by step (services/schedules.py)
            return
        with run.lock:
            run.report.fired += len(batch)

    def _send_and_account(self, batch: list[WheelEntry], run: _Run) -> None:
        try:
            outcomes = self._send_batch(batch)
        except Exception as exc:  # an adapter bug must not lose the batch
            outcomes = [exc] * len(batch)
        failed = [e for e, err in zip(batch, outcomes, strict=True) if err is not None]
        sent = [e for e, err in zip(batch, outcomes, strict=True) if err is None]
        for entry in sent:
            self._count("dispatched", entry)
        now = self.clock.now_ms()
        behind = [now - e.sends_at(self.lead_ms) for e in batch]
        with run.lock:
            run.report.dispatched += len(sent)
            run.report.windows += sum(1 for e in sent if e.kind == "window")
            run.report.send_failures += len(failed)
            run.report.late += sum(1 for late in behind if late > self.late_after_ms)
            lateness = [max(0, late) for late, err in zip(behind, outcomes, strict=True) if err is None]
            run.lateness.extend(lateness)
            run.report.lag_ms = max([run.report.lag_ms, *lateness])
        if failed:
            time.sleep(0.1)  # SQS refused: back off a little before the loop tries them again
            run.give_back(failed)

    def _count(self, metric: str, entry: WheelEntry) -> None:
        self.telemetry.count(
            metric, tenant=entry.tenant, target_type="wheel", lane=entry.lane, attempt=entry.attempt
        )

    def _send_batch(self, batch: list[WheelEntry]) -> list[Exception | None]:
        now = self.clock.now_ms()  # stamped per batch, just before it leaves
        messages: list[Outgoing] = []
        for entry in batch:
            late = now - entry.sends_at(self.lead_ms)
            if late > self.late_after_ms:
                self._count("dispatched_late", entry)
            if entry.kind == "window":
                messages.append(WindowMessage.end_of(entry, dispatched_at=now))
                continue
            messages.append(
                LaneMessage(
                    tenant=entry.tenant,
                    task_id=entry.item_id,
                    attempt=entry.attempt,
                    lane=entry.lane,
                    state=ENTRY_STATE.get(entry.kind, "SCHEDULED"),
                    dispatched_at=now,
                    late_ms=late if late > self.late_after_ms else 0,
                    due_ms=entry.due_ms if entry.kind in ("task", "retry") else None,
                )
            )
        return self.lanes.send(messages)
