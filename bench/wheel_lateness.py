"""Start, retry and dispatch lateness of delayed tasks, beside the designs users pick instead.

(a) The modelled-AWS harness. The real tick (services/tick.py) runs over in-memory adapters that add
    AWS-like latency: 5 ms per DynamoDB call and 10 ms per SQS batch (DynamoDB's documented
    single-digit-millisecond latency within a region; SendMessageBatch round trips of ~10 ms from
    Lambda in the same region), injected as sleeps, so the figures are about our scheduling, not a
    network. Each batch the tick sends is picked up by a modelled event source mapping (``pickup_ms``:
    p50 ~20 ms, p99 300 ms, at most 400 ms; the reasons are at the constants) and handled by a modelled
    worker invocation (``Worker``: its measured CPU per record at the memory's share of a vCPU, one
    interpreter, the wait for each record's due time, retries in the worker or through the wheel).
    It measures ``started_at - run_at`` (start lateness; none may be early), a retry's start against
    its ``next_attempt_at``, the tick's dispatch lateness against each entry's send time, and the
    worker's billed wait per task.
    The tick at a Lambda memory (``tick_mb``; as deployed, at its default memory on the shards the
    capacity model sizes) runs at that memory's CPU share (``Throttle``: one quota for all of a tick's
    threads) and is charged the CPU its real adapters would spend, which the in-memory fakes do not:
    the real tick's CPU per task measured by bench/cost.py on the real adapters over moto, moto
    excluded (cost.json ``tick.cpu_ms_per_task``), less what the harness's tick spends in our own code
    in the same run (thread CPU of its threads between adapter calls), is charged per entry at the
    calls that carry entries: a lane message's share of a SendMessageBatch of ten at each send
    (bench/tick_reads.py, tick_reads.json ``send_10_ms`` / 10), the rest at the window read that returns
    the entry. Each run reports both parts per entry (``tick.cpu_by_shard``). At a full core (no
    ``tick_mb``) nothing is charged: that run shows the scheduling alone.
    Workload: 1,000 tasks due per second for 60 s, each written 1.4-5 s before it is due (just past NEAR_MS) (so many land
    in a window the tick has already read), 5% failing once with a backoff of 50 ms to 20 s; the same
    at ~12 tasks a second (a million a day: what the waits cost there); the design before issue 16
    (the tick sending at the due time, workers starting what they receive, retries on the lanes'
    whole-second DelaySeconds) on the same workload; the DelaySeconds-only design (no wheel, no tick
    within 15 minutes, the worker waiting out up to a second plus the lead); a table poller once a
    second; SQS DelaySeconds rounded up; EventBridge Scheduler's documented precision (a 60 s window).
(b) `taskplane dev` on moto: delayed tasks submitted over HTTP at a rising rate; fire lateness
    (started_at - run_at) per rate, to find the highest rate it sustains with p99 <= 50 ms.

    python bench/wheel_lateness.py            # both
    python bench/wheel_lateness.py --only a --seconds 20
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DDB_MS = 5
SQS_MS = 10

# -- the event source mapping's pickup latency (modelled) ----------------------------------------------
#: From the moment a lane message is visible to the moment the worker's handler has it. A mixture:
#: 97% of messages find a poller already waiting in its long poll (ReceiveMessage returns as soon as
#: the message is there, the synchronous invoke adds a few ms): log-normal, median 20 ms; 3% arrive
#: while every poller is busy with an invocation or between polls (or the function scales out a new
#: instance) and wait for the next receive: uniform 100-400 ms. Together: p50 ~20 ms, p99 300 ms
#: (the issue's floor for both), max 400 ms. The tail is cut at 400 ms: a pickup slower than that
#: needs a poller or an instance that is not there (MaximumConcurrency reached, a cold start under a
#: burst), a capacity matter outside this model; beyond the lead, such a start is late one for one.
PICKUP_FAST_SHARE = 0.97
PICKUP_FAST_MEDIAN_MS = 20.0
PICKUP_FAST_SIGMA = 0.45
PICKUP_SLOW_MS = (100.0, 400.0)

# -- the worker (modelled, from measured CPU) ------------------------------------------------------------
#: The worker's memory (infra/capabilities/worker.py) and its share of a vCPU (1,769 MB = one vCPU).
WORKER_MB = 256
FULL_VCPU_MB = 1769
#: CPU (ms of a full vCPU) per record: before it waits (the record's parsing, the batch's set-up) and
#: after its start is stamped (the start write, the target call, the finish write). Defaults from
#: bench/cost.py's measurement (cost.json ``worker_cpu_split_ms``, read when present).
CPU_BEFORE_MS = 1.4
CPU_AFTER_MS = 3.2
#: A thread that wakes while another holds the GIL gets it within Python's switch interval.
SWITCH_MS = 5.0
#: The retries of the harness: 5% of tasks fail once, their backoff drawn from these (ms).
RETRY_SHARE = 0.05
RETRY_BACKOFFS_MS = (50, 200, 500, 900, 1_500, 5_000, 20_000)


def pickup_ms(rng: random.Random) -> float:
    if rng.random() < PICKUP_FAST_SHARE:
        return rng.lognormvariate(math.log(PICKUP_FAST_MEDIAN_MS), PICKUP_FAST_SIGMA)
    return rng.uniform(*PICKUP_SLOW_MS)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p99": round(pct(values, 0.99), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
    }


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


# -- in-memory adapters with injected latency ----------------------------------------------------------
@dataclass
class FakeWheel:
    """WheelStore's interface in memory; every call costs DDB_MS."""

    partitions: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    control: dict[int, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0

    def _latency(self) -> None:
        self.calls += 1
        time.sleep(DDB_MS / 1000)

    def insert(self, entry: Any) -> None:
        """An entry written by someone else (its write's latency is theirs, not the tick's)."""
        with self.lock:
            bisect.insort(self.partitions.setdefault(f"{entry.shard}#{entry.slot_ms}", []), (entry.sk, entry))

    def put(self, entry: Any) -> None:
        self._latency()
        self.insert(entry)

    def load(self, shard: int, slot_ms: int, from_sk: str, upto_sk: str | None, skip: Any = ()) -> list[Any]:
        # As WheelStore.load: items already taken (``skip``: their (slot, sort key)) are left out.
        self._latency()
        with self.lock:
            rows = self.partitions.get(f"{shard}#{slot_ms}", [])
            lo = bisect.bisect_left(rows, (from_sk,)) if from_sk else 0
            hi = bisect.bisect_right(rows, (upto_sk + "\uffff",)) if upto_sk else len(rows)
            return [e for sk, e in rows[lo:hi] if (slot_ms, sk) not in skip]

    def any_due(
        self, shard: int, start: tuple[int, str], horizon_ms: int, *, consistent: bool = False
    ) -> bool:
        from taskplane.adapters.wheel_store import upto_key
        from taskplane.domain.wheel import SLOT_MS, slot_of

        first_slot, first_sk = start
        for slot in range(first_slot, slot_of(horizon_ms) + SLOT_MS, SLOT_MS):
            self._latency()
            with self.lock:
                rows = self.partitions.get(f"{shard}#{slot}", [])
                lo = bisect.bisect_left(rows, (first_sk,)) if slot == first_slot and first_sk else 0
                if any(sk <= upto_key(horizon_ms) for sk, _ in rows[lo:]):
                    return True
        return False

    def _lease(self, shard: int, item: dict[str, Any]) -> Any:
        from taskplane.adapters.wheel_store import Lease

        return Lease(
            shard, item["owner"], item["until"], item.get("slot"), item.get("sk", ""), item.get("runs")
        )

    def acquire(self, shard: int, owner: str, now_ms: int, ttl_ms: int, runs_until: int | None = None) -> Any:
        self._latency()
        with self.lock:
            item = self.control.setdefault(shard, {"owner": "", "until": 0})
            if item["until"] >= now_ms and item["owner"] != owner:
                return None
            item.update(owner=owner, until=now_ms + ttl_ms, runs=runs_until)
            return self._lease(shard, item)

    def peek(self, shard: int) -> Any:
        self._latency()
        with self.lock:
            item = self.control.get(shard)
            return self._lease(shard, item) if item else None

    def save(
        self,
        shard: int,
        owner: str,
        now_ms: int,
        ttl_ms: int,
        resume: tuple[int, str],
        lag_ms: int | None = None,
    ) -> bool:
        self._latency()
        with self.lock:
            item = self.control[shard]
            if item["owner"] != owner:
                return False
            item.update(until=now_ms + ttl_ms, slot=resume[0], sk=resume[1])
            if lag_ms is not None:
                item["lag_ms"] = lag_ms
            return True

    def advance_idle(self, shard: int, now_ms: int, resume: tuple[int, str]) -> bool:
        self._latency()
        with self.lock:
            item = self.control.setdefault(shard, {"owner": "", "until": 0})
            if item["until"] >= now_ms:
                return False
            item.update(slot=resume[0], sk=resume[1])
            return True

    def release(self, shard: int, owner: str) -> None:
        self._latency()
        with self.lock:
            item = self.control.get(shard)
            if item and item["owner"] == owner:
                item["until"] = 0


@dataclass
class FakeLanes:
    """Lanes' send in memory; every batch costs SQS_MS. Each batch is handed to ``on_batch`` (the
    modelled event source mapping) with the time it became visible."""

    clock: WallClock
    on_batch: Any = None
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # task id -> (dispatched_at, arrived)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: int = 0

    def send(self, messages: list[Any]) -> list[Any]:
        time.sleep(SQS_MS / 1000)
        arrived = self.clock.now_ms()
        with self.lock:
            self.batches += 1
            for m in messages:
                self.sent.setdefault(m.task_id, (m.dispatched_at, arrived))
        if self.on_batch is not None:
            self.on_batch(arrived, messages)
        return [None] * len(messages)


# -- the modelled event source mapping and worker --------------------------------------------------------
@dataclass
class Record:
    task_id: str
    due: int  # when this attempt may start (run_at, or the retry's next_attempt_at)
    attempt: int = 1
    backoff: int | None = None  # set: this attempt fails, its retry is due ``backoff`` ms after


@dataclass
class Worker:
    """Worker invocations computed from measured CPU and modelled latencies (see module docstring).

    One CPU per invocation at the memory's share of a vCPU, served in order (the GIL): a record's
    CPU before its wait is spent when the invocation starts; a record wakes at its due time and is
    stamped ``started_at`` as soon as it gets the CPU (at most SWITCH_MS after waking while another
    record holds it), then its own CPU after the stamp queues, then two DynamoDB writes' latency.
    A failed attempt's retry waits in the same invocation when due within ``INLINE_RETRY_MS``, else
    its entry is written to the wheel when the attempt ends (the real tick sends it).
    """

    rng: random.Random
    wheel: FakeWheel
    inline_ms: int
    lead_ms: int
    wait_for_due: bool = True
    cpu_before_ms: float = CPU_BEFORE_MS
    cpu_after_ms: float = CPU_AFTER_MS
    memory_mb: int = WORKER_MB
    shards: int = 1  # a retry's wheel entry goes to the shard the ring gives its task (as execute.py)
    lock: threading.Lock = field(default_factory=threading.Lock)
    starts: dict[tuple[str, int], int] = field(default_factory=dict)  # (task, attempt) -> started_at
    pickups: list[float] = field(default_factory=list)
    billed_ms: list[float] = field(default_factory=list)
    wait_ms: list[float] = field(default_factory=list)  # of billed_ms, what waiting for due times added
    records: int = 0
    plan: dict[str, Record] = field(default_factory=dict)  # first attempts, by task id
    inserts: list[tuple[int, Any]] = field(default_factory=list)  # (when, wheel entry) for retries
    retries: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # task -> (backoff, due, failed)

    def batch(self, visible: int, messages: list[Any]) -> None:
        pickup = pickup_ms(self.rng)
        with self.lock:
            self.pickups.append(pickup)
            records = []
            for m in messages:
                if m.attempt == 1:
                    records.append(self.plan[m.task_id])
                else:
                    records.append(Record(m.task_id, m.due_ms, m.attempt))
            self._invoke(visible + pickup, records)

    def _invoke(self, t0: float, records: list[Record]) -> None:
        billed = self._run_invocation(t0, records, record=True, wait=self.wait_for_due)
        # The same records handled the moment they arrive: what the invocation would bill without
        # waiting for due times (its CPU and calls, which bench/cost.py prices); the rest is the wait.
        self.billed_ms.append(billed)
        self.wait_ms.append(billed - self._run_invocation(t0, records, record=False, wait=False))

    def _run_invocation(self, t0: float, records: list[Record], *, record: bool, wait: bool) -> float:
        share = min(self.memory_mb, FULL_VCPU_MB) / FULL_VCPU_MB
        cpu_free = t0 + len(records) * self.cpu_before_ms / share
        queue = sorted(records, key=lambda r: r.due)
        ends = []
        while queue:
            record_ = queue.pop(0)
            wake = max(record_.due, t0) if wait else t0
            stamp = wake + min(max(0.0, cpu_free - wake), SWITCH_MS)
            cpu_free = max(cpu_free, stamp) + self.cpu_after_ms / share
            end = cpu_free + 2 * DDB_MS
            ends.append(end)
            if record_.backoff is not None and record_.attempt == 1:
                retry_at = int(end) + record_.backoff
                if record_.backoff <= self.inline_ms:
                    queue.append(Record(record_.task_id, retry_at, 2))  # waits in this invocation
                    queue.sort(key=lambda r: r.due)
                if record:
                    self.retries[record_.task_id] = (record_.backoff, retry_at, end)
                    if record_.backoff > self.inline_ms:
                        from taskplane.domain.ring import shard_for
                        from taskplane.domain.wheel import WheelEntry

                        shard = shard_for(record_.task_id, self.shards)
                        entry = WheelEntry(shard, retry_at, record_.task_id, "bench", kind="retry", attempt=2)
                        self.inserts.append((int(end), entry))
            if record:
                self.starts.setdefault((record_.task_id, record_.attempt), int(stamp))
                self.records += 1
        return max(ends) - t0


class Throttle:
    """One tick's CPU at a Lambda memory below one vCPU (1,769 MB), on this machine's full core, with
    the CPU its real AWS adapters would spend charged to it.

    Its share: at ``memory_mb`` Lambda gives the tick ``memory_mb / 1769`` of a vCPU, one quota for
    all of its threads (the loop and its senders). Each thread's CPU spent in our code between two
    calls to the (fake) AWS adapters is paid for at the next call: the tick's threads take turns on
    one timeline (``busy_until``), each stretch of CPU lasting ``1 / share`` times as long, so our
    code's work takes as long as at the share (the adapters' own time, the injected latencies and the
    modelled mapping and worker they hand batches to, are not stretched). Smooth, where Lambda's
    quota throttles in bursts: a lower bound for the tail, the same mean.

    The real adapters' CPU: the fakes keep entries in memory, so the CPU the real WheelStore and
    Lanes spend in botocore (serializing requests, parsing every item of every window Query, keys
    first for the items already taken; SendMessageBatch bodies) is not spent here. It is charged from
    measurements, per entry, at the calls that carry the entries, on the same timeline at the share:
    ``send_ms`` per message at each send (before it, as the body is serialized before it leaves:
    bench/tick_reads.py's SendMessageBatch of ten, ``send_10_ms`` / 10), and at each window read
    whatever keeps this tick's CPU per entry read at ``real_ms`` (bench/cost.py's real tick CPU per
    task over moto, moto excluded: cost.json ``tick.cpu_ms_per_task``): ``real_ms`` x entries read
    so far, less our code's CPU so far (all threads, measured here: ``own_s``) and what was charged
    before. So over a run the tick spends the real tick's CPU per task, what our code spends measured
    in the same run and the rest charged. The real figure is measured at bench/cost.py's rate (about
    100 tasks/s on one shard), where each task carries more of the per-request floor (a Query's
    0.31 ms) than at the hundreds a second a shard carries here: charged per entry it errs high, on
    the safe side for a small tick."""

    def __init__(self, memory_mb: int, real_ms: float | None = None, send_ms: float = 0.0) -> None:
        self.share = min(memory_mb, FULL_VCPU_MB) / FULL_VCPU_MB
        self.real_ms = real_ms
        self.send_ms = send_ms if real_ms is not None else 0.0
        self.local = threading.local()
        self.lock = threading.Lock()
        self.busy_until = 0.0  # time.monotonic() when the tick's CPU quota is free again
        self.slept_ms = 0.0
        self.own_s = 0.0  # our code's CPU, every thread of this tick
        self.read = 0  # entries the window reads returned
        self.sent = 0  # messages sent
        self.charged_read_s = 0.0
        self.charged_send_s = 0.0

    def pay(self, extra_s: float = 0.0) -> None:
        """Pay this thread's CPU since its last call (and ``extra_s`` of CPU not spent here) at the
        share, after whatever the tick's other threads have queued on its quota."""
        mark = getattr(self.local, "mark", None)
        cpu = 0.0 if mark is None else max(0.0, time.thread_time() - mark)
        with self.lock:
            self.own_s += cpu
            now = time.monotonic()
            end = max(now - cpu, self.busy_until) + (cpu + extra_s) / self.share
            self.busy_until = end
        owed = end - now
        if owed > 0:
            time.sleep(owed)
            with self.lock:
                self.slept_ms += owed * 1000

    def mark(self) -> None:
        self.local.mark = time.thread_time()

    def before(self, name: str, args: tuple[Any, ...]) -> None:
        extra = 0.0
        if name == "send":
            extra = self.send_ms / 1000 * len(args[0])
            with self.lock:
                self.sent += len(args[0])
                self.charged_send_s += extra
        self.pay(extra)

    def after(self, name: str, result: Any) -> None:
        if name != "load" or self.real_ms is None:
            return
        with self.lock:
            self.read += len(result)
            owed = self.real_ms / 1000 * self.read - self.own_s - self.charged_send_s - self.charged_read_s
            owed = max(0.0, owed)
            self.charged_read_s += owed
        if owed:
            self.mark()  # the call's own time is the fake's, not ours
            self.pay(owed)

    def report(self) -> dict[str, Any]:
        per = max(1, self.read)
        return {
            "entries_read": self.read,
            "messages_sent": self.sent,
            "own_cpu_ms_per_entry": round(self.own_s * 1000 / per, 4),
            "charged_read_ms_per_entry": round(self.charged_read_s * 1000 / per, 4),
            "charged_send_ms_per_entry": round(self.charged_send_s * 1000 / per, 4),
            "cpu_ms_per_entry": round(
                (self.own_s + self.charged_read_s + self.charged_send_s) * 1000 / per, 4
            ),
            "real_cpu_ms_per_task": self.real_ms,
            "slept_ms": round(self.slept_ms, 1),
        }


class Throttled:
    """An adapter whose every call first pays the caller's CPU owed to ``throttle`` (see Throttle),
    and the real adapter's CPU for the entries the call carries."""

    def __init__(self, inner: Any, throttle: Throttle) -> None:
        self._inner = inner
        self._throttle = throttle

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._throttle.before(name, args)
            try:
                result = attr(*args, **kwargs)
                self._throttle.after(name, result)
                return result
            finally:
                self._throttle.mark()

        return call


def inserter(worker: Worker, stop: threading.Event) -> None:
    """Write the retries' wheel entries at the instants their failed attempts ended (real time)."""
    while not stop.is_set():
        with worker.lock:
            due = [(t, e) for t, e in worker.inserts if t <= time.time() * 1000]
            worker.inserts = [(t, e) for t, e in worker.inserts if t > time.time() * 1000]
        for _, entry in due:
            worker.wheel.insert(entry)
        stop.wait(0.005)


def workload(
    seconds: int, rate: int, start_ms: int, seed: int = 7, lead_min_ms: int | None = None
) -> list[tuple[int, int, str]]:
    """(write_ms, due_ms, id) for ``rate`` tasks due per second over ``seconds``, each written from just
    past NEAR_MS (domain/wheel.py, 50 ms past it unless ``lead_min_ms``) to 5 s before it is due (tasks
    due sooner go straight to their lane, not through the tick)."""
    from taskplane.domain.wheel import NEAR_MS

    lead_min_ms = NEAR_MS + 50 if lead_min_ms is None else lead_min_ms
    rng = random.Random(seed)
    rows = []
    for i in range(seconds * rate):
        due = start_ms + 6000 + int(i * 1000 / rate)
        rows.append((due - rng.randint(lead_min_ms, 5000), due, f"T{i:08d}"))
    rows.sort()
    return rows


def _loop_firing() -> Any:
    """The tick as it fired schedules before: when due (a fire was not a kind that leads), one after
    another on the loop that sends (services/tick.py ``_dispatch`` before this change)."""
    from taskplane.services.tick import Ticker

    class LoopFiring(Ticker):
        def _dispatch(self, due: list[Any], run: Any) -> None:
            for entry in [e for e in due if e.kind == "schedule"]:
                try:
                    self.fire_schedule(entry, self.clock.now_ms())  # type: ignore[misc]
                    run.report.fired += 1
                except Exception:
                    run.give_back([entry])
            super()._dispatch([e for e in due if e.kind != "schedule"], run)

    return LoopFiring


def run_a(
    seconds: int,
    rate: int,
    *,
    before: bool = False,
    seed: int = 7,
    memory_mb: int = WORKER_MB,
    lead_ms: int | None = None,
    tick_mb: int | None = None,
    shards: int = 1,
    group_ms: int | None = None,
    fires: int = 0,
    fires_before: bool = False,
    fire_cpu_ms: float = 0.0,
    fire_threads: int | None = None,
) -> dict[str, Any]:
    """The real tick over the in-memory wheel, with the modelled mapping and worker.

    ``fires``: that many schedule fires all due at one instant mid-run (a burst of crons at the top
    of a minute), each modelled as a fire's calls (read the schedule and create its task: two
    DynamoDB calls; send its task: an SQS call; move the schedule on: a transaction, two calls' time)
    and its CPU (``fire_cpu_ms``, bench/tick_reads.py's real fire over moto, moto excluded) charged
    to the tick's share. ``fires_before``: fires as before this change (they leave when due, on the
    tick's loop, and their task starts when the mapping picks it up).

    ``before``: the design before issue 16 (the tick sends at the due time, batches of what is due
    within 5 ms; workers start what they receive at once; retries up to 15 minutes on the lane's
    DelaySeconds rounded up), on the same workload and the same modelled latencies. ``memory_mb``:
    the worker's memory (its CPU share and the GB of its billed wait); ``lead_ms``: the tick's lead
    (default ``DISPATCH_LEAD_MS``); ``group_ms``: how long after a batch's first entry others may
    share its lane batch (default ``GROUP_MS``); ``tick_mb``: the tick's memory, its CPU share emulated by
    ``Throttle`` (None: a full core, as the tick's 256 MB share was not modelled before);
    ``shards``: the wheel's shard count as deployed (``shards`` in cdk.json): every entry, first
    attempts and retries, goes to the shard the ring gives its task id (``domain.ring.shard_for``, as
    the API and the worker place them), and each shard has its own Ticker (its own Lambda: its own
    Throttle at ``tick_mb``, its own lease, senders and wakes), all in this one process.
    """
    from concurrent.futures import ThreadPoolExecutor

    from taskplane.domain.ring import shard_for
    from taskplane.domain.wheel import DISPATCH_LEAD_MS, GROUP_MS, WheelEntry
    from taskplane.services.execute import INLINE_RETRY_MS
    from taskplane.services.tick import Ticker
    from taskplane.wiring import FIRE_THREADS

    clock = WallClock()
    rng = random.Random(seed)
    wheel = FakeWheel()
    lead = 0 if before else (DISPATCH_LEAD_MS if lead_ms is None else lead_ms)
    worker = Worker(
        rng=random.Random(seed + 1),
        wheel=wheel,
        inline_ms=-1 if before else INLINE_RETRY_MS,
        lead_ms=lead,
        wait_for_due=not before,
        memory_mb=memory_mb,
        shards=shards,
        **_cpu_split(),
    )
    lanes = FakeLanes(clock, on_batch=worker.batch)
    stop = threading.Event()
    start = clock.now_ms()
    rows = workload(seconds, rate, start, seed)
    due_of = {tid: due for _, due, tid in rows}
    for _, due, tid in rows:
        backoff = rng.choice(RETRY_BACKOFFS_MS) if rng.random() < RETRY_SHARE else None
        worker.plan[tid] = Record(tid, due, 1, backoff)

    burst_at = start + 6000 + seconds * 500
    fire_ids = [f"S{i:06d}" for i in range(fires)]
    for sid in fire_ids:
        worker.plan[sid] = Record(sid, burst_at)
        wheel.insert(
            WheelEntry(
                shard=shard_for(sid, shards), due_ms=burst_at, item_id=sid, tenant="bench", kind="schedule"
            )
        )

    woken = {s: threading.Event() for s in range(shards)}

    def produce() -> None:
        for write_ms, due, tid in rows:
            delay = write_ms - clock.now_ms()
            if delay > 0:
                time.sleep(delay / 1000)
            # Written as the API does; the write's latency is the API's, not the tick's. Like the
            # API, it wakes the tick when no tick holds the shard (services/wakes.py).
            shard = shard_for(tid, shards)
            wheel.insert(WheelEntry(shard=shard, due_ms=due, item_id=tid, tenant="bench"))
            with wheel.lock:
                idle = wheel.control.get(shard, {}).get("until", 0) < clock.now_ms()
            if idle:
                woken[shard].set()

    threads = [threading.Thread(target=produce, daemon=True)]
    if not before:
        threads.append(threading.Thread(target=inserter, args=(worker, stop), daemon=True))
    for t in threads:
        t.start()
    adapters = _adapter_cpu()
    throttles = {s: Throttle(tick_mb, **adapters) for s in range(shards)} if tick_mb is not None else {}

    def fire_for(shard: int) -> Any:
        from taskplane.adapters.queues import LaneMessage

        throttle = throttles.get(shard)

        def fire(entry: Any, now_ms: int) -> None:
            if throttle is not None:
                throttle.pay(fire_cpu_ms / 1000)  # the real fire's CPU, at the tick's share
            time.sleep(2 * DDB_MS / 1000)  # read the schedule, create the fire's task
            ahead = not fires_before
            lanes.send(
                [
                    LaneMessage(
                        "bench",
                        entry.item_id,
                        1,
                        state="SCHEDULED" if ahead else "PENDING",
                        dispatched_at=now_ms,
                        due_ms=entry.due_ms if ahead else None,
                    )
                ]
            )
            time.sleep(2 * DDB_MS / 1000)  # the transaction that moves the schedule on
            if throttle is not None:
                throttle.mark()

        return fire

    kind = _loop_firing() if fires_before else Ticker
    import taskplane.domain.wheel as wheel_module
    import taskplane.services.tick as tick_module

    held = wheel_module.HELD_KINDS
    if fires_before:  # a fire did not lead: it left when due (lead_of and the tick's _due read this)
        wheel_module.HELD_KINDS = tick_module.HELD_KINDS = held - {"schedule"}  # type: ignore[misc]
    tickers = {
        s: kind(
            wheel=Throttled(wheel, throttles[s]) if throttles else wheel,  # type: ignore[arg-type]
            lanes=Throttled(lanes, throttles[s]) if throttles else lanes,  # type: ignore[arg-type]
            clock=clock,
            wait=stop.wait,
            lead_ms=lead,
            group_ms=5 if before else (GROUP_MS if group_ms is None else group_ms),
            fire_schedule=fire_for(s) if fires else None,
            # the fires' own threads, as wiring.py gives the tick (FIRE_THREADS)
            firers=ThreadPoolExecutor(max_workers=fire_threads or FIRE_THREADS)
            if fires and not fires_before
            else None,
        )
        for s in range(shards)
    }
    last = max(d for _, d, _ in rows) + max(RETRY_BACKOFFS_MS) + 3_000
    began = time.monotonic()
    reports: dict[int, list[Any]] = {s: [] for s in range(shards)}

    def shard_loop(shard: int) -> None:
        # The shard's rule (once a minute) and the wakes: run its tick again when it ended and is woken.
        while clock.now_ms() < last:
            woken[shard].clear()
            reports[shard].append(tickers[shard].run(shard, until_ms=last))
            woken[shard].wait(min(60.0, max(0.0, (last - clock.now_ms()) / 1000)))

    loops = [threading.Thread(target=shard_loop, args=(s,), daemon=True) for s in range(1, shards)]
    for t in loops:
        t.start()
    shard_loop(0)
    for t in loops:
        t.join()
    took = time.monotonic() - began
    wheel_module.HELD_KINDS = tick_module.HELD_KINDS = held  # type: ignore[misc]
    report = reports[0][-1]
    stop.set()
    threads[0].join()
    sends = {tid: due - lead for tid, due in due_of.items()}
    dispatch = [lanes.sent[t][0] - sends[t] for t in due_of if t in lanes.sent]
    arrive = [lanes.sent[t][1] - due_of[t] for t in due_of if t in lanes.sent]
    starts = [worker.starts[(t, 1)] - due_of[t] for t in due_of if (t, 1) in worker.starts]
    retry_late: dict[int, list[float]] = {}
    for task_id, (backoff, retry_at, failed) in worker.retries.items():
        if before:
            # Before: a retry up to 15 minutes went onto the lane at once with DelaySeconds rounded
            # up (never early), and started when the mapping picked it up.
            delay = math.ceil((retry_at - failed - SQS_MS) / 1000) * 1000
            started = failed + SQS_MS + delay + pickup_ms(rng) + worker.cpu_after_ms * 0
        elif (task_id, 2) in worker.starts:
            started = worker.starts[(task_id, 2)]
        else:
            continue  # its retry was not due before the run ended
        retry_late.setdefault(backoff, []).append(started - retry_at)
    all_retries = [v for vs in retry_late.values() for v in vs]
    n = len(rows)
    burst: dict[str, Any] | None = None
    if fires:
        fired = [worker.starts[(sid, 1)] - burst_at for sid in fire_ids if (sid, 1) in worker.starts]
        beside = [
            worker.starts[(t, 1)] - due_of[t]
            for t in due_of
            if (t, 1) in worker.starts and burst_at - 500 <= due_of[t] <= burst_at + 2_000
        ]
        burst = {
            "design": "fires as before (when due, on the tick's loop)"
            if fires_before
            else "fires lead, on their own threads",
            "fires": fires,
            "fired": len(fired),
            "early": sum(1 for v in fired if v < 0),
            "fire_start_lateness_ms": summary(fired),
            "tasks_due_beside": len(beside),
            "tasks_beside_start_lateness_ms": summary(beside),
            "fire_cpu_ms_charged": fire_cpu_ms,
        }
    return {
        "fire_burst": burst,
        "design": "before issue 16" if before else "lead + worker wait (issue 16)",
        "tasks": n,
        "rate_per_s": rate,
        "dispatched": len(lanes.sent),
        "lost": n - len(lanes.sent),
        "early_starts": sum(1 for v in starts if v < 0),
        "lead_ms": lead,
        "dispatch_lateness_ms": summary(dispatch),
        "on_queue_lateness_ms": summary(arrive),
        "start_lateness_ms": summary(starts),
        "retry_lateness_ms": summary(all_retries),
        "retry_lateness_by_backoff_ms": {str(b): summary(v) for b, v in sorted(retry_late.items())},
        "pickup_ms": summary(worker.pickups),
        "worker": {
            "invocations": len(worker.billed_ms),
            "records": worker.records,
            "records_per_invocation": round(worker.records / max(1, len(worker.billed_ms)), 2),
            "billed_ms_per_record": round(sum(worker.billed_ms) / max(1, worker.records), 2),
            "memory_mb": worker.memory_mb,
            "gb_s_per_task": round(sum(worker.billed_ms) / 1000 * worker.memory_mb / 1024 / n, 6),
            "wait_ms_per_task": round(sum(worker.wait_ms) / n, 2),
            "wait_gb_s_per_task": round(sum(worker.wait_ms) / 1000 * worker.memory_mb / 1024 / n, 6),
            "invocations_per_task": round(len(worker.billed_ms) / n, 4),
            "cpu_ms": {"before_wait": worker.cpu_before_ms, "after_start": worker.cpu_after_ms},
        },
        "tick": {
            "shards": shards,
            "memory_mb": tick_mb,
            "cpu_share": round(throttles[0].share, 4) if throttles else None,
            "throttled_ms": round(sum(t.slept_ms for t in throttles.values()), 1) if throttles else None,
            "cpu_by_shard": {str(s): t.report() for s, t in throttles.items()} if throttles else None,
            "real_adapters_charged": bool(throttles) and throttles[0].real_ms is not None,
            "note": (
                (
                    "the tick's CPU share emulated (Throttle: one quota for its threads), its real "
                    "adapters' CPU charged (cost.json tick.cpu_ms_per_task per entry read, of which "
                    "tick_reads.json send_10_ms / 10 per message sent)"
                    if throttles
                    else "the tick at a full core (its real adapters' CPU not charged)"
                )
                + (f"; {shards} shards, each its own Ticker and Throttle" if shards > 1 else "")
            ),
        },
        "entries_by_shard": {
            str(s): sum(1 for t in due_of if shard_for(t, shards) == s) for s in range(shards)
        },
        "dispatch_lateness_by_shard_ms": {
            str(s): summary(
                [lanes.sent[t][0] - sends[t] for t in due_of if t in lanes.sent and shard_for(t, shards) == s]
            )
            for s in range(shards)
        }
        if shards > 1
        else None,
        "lane_batches_per_task": round(lanes.batches / n, 4),
        "ddb_calls": wheel.calls,
        "tick_report": report.__dict__,
        "tick_runs": sum(len(r) for r in reports.values()),
        "tick_runs_that_held_the_shard": sum(1 for rs in reports.values() for r in rs if r.acquired),
        "wall_s": round(took, 1),
    }


def fire_burst(seconds: int, rate: int, fires: int, tick_mb: int, repeats: int = 2) -> dict[str, Any]:
    """A burst of ``fires`` schedule fires due at one instant amid ``rate`` tasks due a second, on one
    shard whose tick runs at ``tick_mb`` (its CPU share emulated, its real adapters' CPU and each
    fire's charged): the fires as before (when due, on the loop) and as now (a lead ahead, on their
    own threads), alternating, ``repeats`` runs each, side by side in this run."""
    reads = RESULTS / "tick_reads.json"
    fire_ms = json.loads(reads.read_text()).get("fire_ms") if reads.exists() else None
    if fire_ms is None:
        raise SystemExit(
            "bench/tick_reads.py first: it measures a fire's CPU (results/tick_reads.json fire_ms)"
        )
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
    for i in range(repeats):
        for name in ("before", "now"):
            run = run_a(
                seconds,
                rate,
                tick_mb=tick_mb,
                fires=fires,
                fires_before=name == "before",
                fire_cpu_ms=fire_ms,
                seed=7 + i,
            )
            runs[name].append(
                {"fire_burst": run["fire_burst"], "start_lateness_ms": run["start_lateness_ms"]}
            )
    return {
        "fires": fires,
        "rate_per_s": rate,
        "tick_mb": tick_mb,
        "shards": 1,
        "fire_cpu_ms": fire_ms,
        "load_average": os.getloadavg(),
        "runs": runs,
        "note": (
            "every fire due at the same instant on one shard (the worst case: a ring spreads schedules over "
            "the shards); before and now alternate in one run on the same workload and modelled latencies"
        ),
    }


def _cpu_split(path: Path = RESULTS / "cost.json") -> dict[str, float]:
    """The worker's CPU per record before its wait and after its start, as bench/cost.py measured it."""
    if path.exists():
        split = json.loads(path.read_text()).get("worker_cpu_split_ms")
        if split:
            return {"cpu_before_ms": split["before_start"], "cpu_after_ms": split["after_start"]}
    return {}


def _adapter_cpu(results: Path = RESULTS) -> dict[str, float]:
    """What a throttled tick is charged for its real adapters (see Throttle): the real tick's CPU per
    task (bench/cost.py, cost.json ``tick.cpu_ms_per_task``) and a lane message's share of a
    SendMessageBatch of ten (bench/tick_reads.py, tick_reads.json ``send_10_ms``)."""
    out: dict[str, float] = {}
    cost, reads = results / "cost.json", results / "tick_reads.json"
    if cost.exists():
        out["real_ms"] = float(json.loads(cost.read_text())["tick"]["cpu_ms_per_task"])
        if reads.exists():
            out["send_ms"] = round(float(json.loads(reads.read_text())["send_10_ms"]) / 10, 4)
    return out


def deployed_shards(rate: int, results: Path = RESULTS, tick_mb: int | None = None) -> dict[str, Any]:
    """The shards an operator deploys for ``rate`` tasks due per second at the tick's default memory
    (or at ``tick_mb``): the measured tasks/s of one shard's tick (its CPU at that memory's vCPU share,
    cost.json; another memory scales it by the shares) and bench/capacity.py's rule, as capacity.json
    applies it (the fewest shards whose busiest one on the ring runs at most at the target utilization)."""
    import capacity

    cost = json.loads((results / "cost.json").read_text())
    per_shard = float(cost["tick"]["tasks_per_s_per_shard"])
    measured_mb = int(cost["tick"]["memory_mb"])
    if tick_mb is not None and tick_mb != measured_mb:
        full = capacity.FULL_VCPU_MB
        per_shard = round(per_shard * min(tick_mb, full) / min(measured_mb, full), 1)
    shards = capacity.tick_shards(rate, per_shard)
    return {
        "shards": shards,
        "tick_memory_mb": tick_mb or measured_mb,
        "tasks_per_s_per_shard": per_shard,
        "target_utilization": capacity.TICK_TARGET_UTILIZATION,
        "busiest_shard_share": round(capacity.hottest_share(shards), 3),
        "from": "cost.json (the tick's measured tasks/s per shard) and bench/capacity.py tick_shards "
        "(the busiest shard at most TICK_TARGET_UTILIZATION of it), as capacity.json sizes shards",
    }


def run_deployed(
    seconds: int, rate: int, tick_mb: int | None = None, shards: int | None = None, **options: Any
) -> dict[str, Any]:
    """The design as deployed for ``rate``: as many shards as capacity.json says (or ``shards``), each
    tick at its default memory's CPU share (or ``tick_mb``'s: Throttle); everything else as ``run_a``
    (``options``: its ``lead_ms`` or ``group_ms``)."""
    sizing = deployed_shards(rate, tick_mb=tick_mb)
    if shards is not None:
        sizing = {**sizing, "shards": shards, "from": f"set by hand ({shards}), not by the capacity model"}
    result = run_a(seconds, rate, tick_mb=sizing["tick_memory_mb"], shards=sizing["shards"], **options)
    result["sizing"] = sizing
    return result


def run_poller(seconds: int, rate: int) -> dict[str, Any]:
    """The same due times through a once-a-second 'query what is due, send it' loop."""
    clock = WallClock()
    start = clock.now_ms()
    rows = workload(seconds, rate, start)
    pending = sorted((due, tid) for _, due, tid in rows)
    lateness, arrive = [], []
    i = 0
    next_poll = start
    while i < len(pending):
        time.sleep(max(0, next_poll - clock.now_ms()) / 1000)
        next_poll += 1000
        time.sleep(DDB_MS / 1000)  # the query
        now = clock.now_ms()
        due_now = []
        while i < len(pending) and pending[i][0] <= now:
            due_now.append(pending[i])
            i += 1
        for b in range(0, len(due_now), 10):
            sent_at = clock.now_ms()
            time.sleep(SQS_MS / 1000)
            for due, _ in due_now[b : b + 10]:
                lateness.append(sent_at - due)
                arrive.append(clock.now_ms() - due)
    return {"dispatch_lateness_ms": summary(lateness), "on_queue_lateness_ms": summary(arrive)}


def run_sqs_delay(seconds: int, rate: int) -> dict[str, Any]:
    """Each task sent when written, DelaySeconds rounded up: visible at write + whole seconds."""
    start = WallClock().now_ms()
    rows = workload(seconds, rate, start)
    lateness = []
    for write_ms, due, _ in rows:
        visible = write_ms + SQS_MS + math.ceil((due - write_ms - SQS_MS) / 1000) * 1000
        lateness.append(visible - due)
    return {"on_queue_lateness_ms": summary(lateness), "note": "computed from the same write and due times"}


def run_delayseconds_direct(seconds: int, rate: int, batch: int = 1, seed: int = 7) -> dict[str, Any]:
    """The design issue 16 suggested first, on the same workload and models: no wheel entry and no
    tick for a task due within 15 minutes; the API sends its lane message with DelaySeconds rounded
    down so that it is visible at least the lead before due (whole seconds: up to a second more), and
    the worker waits out the rest. ``batch`` tasks written together share a send; messages that become
    visible at the same instant (same batch, same delay) reach one worker invocation (up to ten)."""
    from taskplane.domain.wheel import DISPATCH_LEAD_MS
    from taskplane.services.execute import INLINE_RETRY_MS

    rows = workload(seconds, rate, 0, seed)
    worker = Worker(
        rng=random.Random(seed + 1),
        wheel=FakeWheel(),
        inline_ms=INLINE_RETRY_MS,
        lead_ms=DISPATCH_LEAD_MS,
        **_cpu_split(),
    )
    groups: dict[tuple[int, int], list[Record]] = {}
    for i, (write_ms, due, tid) in enumerate(rows):
        sent = write_ms if batch == 1 else rows[i - i % batch][0]  # a batch leaves with its first write
        visible = sent + SQS_MS + max(0, (due - sent - SQS_MS - DISPATCH_LEAD_MS) // 1000) * 1000
        groups.setdefault((i // batch, visible), []).append(Record(tid, due))
    for (_, visible), records in sorted(groups.items(), key=lambda g: g[0][1]):
        for k in range(0, len(records), 10):
            worker._invoke(visible + pickup_ms(worker.rng), records[k : k + 10])
    starts = [worker.starts[(tid, 1)] - due for _, due, tid in rows]
    n = len(rows)
    return {
        "tasks": n,
        "rate_per_s": rate,
        "batch": batch,
        "start_lateness_ms": summary(starts),
        "early_starts": sum(1 for v in starts if v < 0),
        "worker": {
            "invocations_per_task": round(len(worker.billed_ms) / n, 4),
            "billed_ms_per_record": round(sum(worker.billed_ms) / n, 2),
            "gb_s_per_task": round(sum(worker.billed_ms) / 1000 * worker.memory_mb / 1024 / n, 6),
            "wait_ms_per_task": round(sum(worker.wait_ms) / n, 2),
            "wait_gb_s_per_task": round(sum(worker.wait_ms) / 1000 * worker.memory_mb / 1024 / n, 6),
        },
        "note": "computed from the same write and due times and the same pickup and worker models",
    }


def harness(seconds: int, rate: int, cost_rate: int = 12) -> dict[str, Any]:
    """Everything part (a) measures: the design at ``rate`` tasks due per second and at ``cost_rate``
    (about 1 million a day: what the waits cost there), the design before issue 16, the alternatives."""
    result: dict[str, Any] = {
        "injected_latency_ms": {"dynamodb_call": DDB_MS, "sqs_batch": SQS_MS},
        "pickup_model": {
            "fast": f"{PICKUP_FAST_SHARE:.0%} log-normal, median {PICKUP_FAST_MEDIAN_MS} ms, sigma {PICKUP_FAST_SIGMA}",
            "slow": f"{1 - PICKUP_FAST_SHARE:.0%} uniform {PICKUP_SLOW_MS[0]:.0f}-{PICKUP_SLOW_MS[1]:.0f} ms",
            "p50_ms": round(statistics.median(_pickup_sample()), 1),
            "p99_ms": round(pct(_pickup_sample(), 0.99), 1),
            "max_ms": PICKUP_SLOW_MS[1],
            "why": "a waiting long poll hands a visible message over in tens of ms; while every poller "
            "is busy (or a new instance starts) it waits for the next receive; slower than 400 ms "
            "is a missing poller or instance (concurrency cap, cold start under a burst), not modelled",
        },
        "load_average": os.getloadavg(),
    }
    result["a_wheel"] = run_a(seconds, rate)
    result["a_wheel_at_1m_per_day"] = run_a(seconds, cost_rate)
    # The worker at other memories (issue 16: 512 MB was the default until its third round; 128 MB is
    # cheaper still), whose wait is billed at that many GB (its CPU share changes with it), and a
    # shorter lead.
    for mb in (512, 128):
        result[f"a_wheel_worker_{mb}"] = run_a(seconds, rate, memory_mb=mb)
        result[f"a_wheel_worker_{mb}_at_1m_per_day"] = run_a(seconds, cost_rate, memory_mb=mb)
    # The tick at a smaller memory (its CPU share emulated), alone and with the smaller worker.
    result["a_wheel_tick_128"] = run_a(seconds, rate, tick_mb=128)
    result["a_wheel_tick_256"] = run_a(seconds, rate, tick_mb=256)
    # The design as deployed for this rate: the shards capacity.json says it needs, each at its share,
    # twice (a shared machine moves a tail); at the default 256 MB and at 128 MB (shards by its share).
    result["a_wheel_deployed_runs"] = [_timed(run_deployed, seconds, rate) for _ in range(2)]
    result["a_wheel_deployed"] = result["a_wheel_deployed_runs"][0]
    result["a_wheel_deployed_tick_128_runs"] = [_timed(run_deployed, seconds, rate, 128) for _ in range(2)]
    result["a_wheel_worker_512_tick_256"] = run_a(seconds, rate, memory_mb=512, tick_mb=256)
    result["a_wheel_lead_300"] = run_a(seconds, rate, lead_ms=300)
    result["a_wheel_lead_300_at_1m_per_day"] = run_a(seconds, cost_rate, lead_ms=300)
    result["a_wheel_before"] = run_a(seconds, rate, before=True)
    result["a_delayseconds_direct"] = run_delayseconds_direct(seconds, rate)
    result["a_delayseconds_direct_batched"] = run_delayseconds_direct(seconds, rate, batch=100)
    result["a_delayseconds_direct_at_1m_per_day"] = run_delayseconds_direct(seconds, cost_rate, batch=100)
    result["a_table_poller_1s"] = run_poller(seconds, rate)
    result["a_sqs_delay_seconds"] = run_sqs_delay(seconds, rate)
    result["a_eventbridge_scheduler"] = {"documented_window_ms": 60_000}
    # Schedule fires in a burst, on one shard at its share of ``rate`` as deployed (before and now)
    per_shard = max(1, rate // deployed_shards(rate)["shards"])
    result["a_fire_bursts"] = {
        str(n): fire_burst(min(seconds, 20), per_shard, n, 256)
        for n in ((20, 200) if rate >= 1000 else (10,))
    }
    result["load_average_after"] = os.getloadavg()
    return result


def _timed(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``fn(*args, **kwargs)`` with the load average before and after it (the machine is shared)."""
    before = os.getloadavg()
    run: dict[str, Any] = fn(*args, **kwargs)
    run["load_average"] = [before, os.getloadavg()]
    return run


def _pickup_sample(n: int = 100_000) -> list[float]:
    rng = random.Random(1)
    return [pickup_ms(rng) for _ in range(n)]


# -- (b) taskplane dev -----------------------------------------------------------------------------------
def run_b(rates: list[int], seconds: int, lead_ms: int = 2500) -> list[dict[str, Any]]:
    from datetime import datetime

    from taskplane.client import Client
    from taskplane.local.runtime import LocalRuntime

    def ms(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000

    out = []
    runtime = LocalRuntime(port=0).start()
    try:
        client = Client(runtime.url, runtime.api_key, timeout_s=60)
        for rate in rates:
            ids = []
            began = time.monotonic()
            for i in range(rate * seconds):
                target = began + i / rate
                pause = target - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                task = client.submit({"target": {"type": "builtin", "name": "echo"}, "delay_ms": lead_ms})
                ids.append(task["task_id"])
            submit_rate = len(ids) / (time.monotonic() - began)
            done = {}
            deadline = time.monotonic() + 120
            while len(done) < len(ids) and time.monotonic() < deadline:
                for tid in ids:
                    if tid not in done:
                        t = client.get(tid)
                        if t["state"] in ("SUCCEEDED", "FAILED"):
                            done[tid] = t
                time.sleep(0.2)
            fire = [ms(t["started_at"]) - ms(t["run_at"]) for t in done.values()]
            dispatch = [ms(t["dispatched_at"]) - ms(t["run_at"]) for t in done.values()]
            row = {
                "rate_per_s": rate,
                "achieved_submit_rate_per_s": round(submit_rate, 1),
                "tasks": len(ids),
                "succeeded": len(done),
                "early_starts": sum(1 for f in fire if f < 0),
                "dispatch_lateness_ms": summary(dispatch),
                "fire_lateness_ms": summary(fire),
            }
            out.append(row)
            print(json.dumps(row), flush=True)
            if not fire or row["fire_lateness_ms"]["p99"] > 50 or submit_rate < rate * 0.9:
                break
    finally:
        runtime.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        choices=["a", "b", "deployed", "fires"],
        help="deployed: one more as-deployed run, added to results/wheel_lateness_a.json",
    )
    parser.add_argument("--seconds", type=int, default=60, help="length of workload (a)")
    parser.add_argument(
        "--fires",
        type=int,
        default=200,
        help="with --only fires: schedule fires due at one instant (with --rate: the shard's tasks due a second)",
    )
    parser.add_argument("--rate", type=int, default=1000, help="tasks due per second in (a)")
    parser.add_argument("--b-rates", default="5,10,20,40,80", help="rates tried in (b), ascending")
    parser.add_argument("--b-seconds", type=int, default=15)
    parser.add_argument(
        "--tick-mb",
        type=int,
        help="with --only deployed: the tick at this memory (shards sized by its share), kept apart "
        "under a_wheel_deployed_tick_<mb>_runs",
    )
    parser.add_argument(
        "--group-ms",
        type=int,
        help="with --only deployed: the tick's GROUP_MS instead of the product's (kept apart under "
        "a_wheel_deployed_group_<ms>_runs; with --rate other than 1000, _rate_<rate> is added to the key)",
    )
    parser.add_argument(
        "--shards", type=int, help="with --only deployed: this many shards instead of the capacity model's"
    )
    parser.add_argument(
        "--lead-ms", type=int, help="with --only deployed: the tick's lead instead of DISPATCH_LEAD_MS"
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, Any] = {"injected_latency_ms": {"dynamodb_call": DDB_MS, "sqs_batch": SQS_MS}}
    if args.only == "deployed":
        path = RESULTS / "wheel_lateness_a.json"
        merged = json.loads(path.read_text()) if path.exists() else result
        options = {k: v for k, v in (("group_ms", args.group_ms), ("lead_ms", args.lead_ms)) if v is not None}
        run = _timed(run_deployed, args.seconds, args.rate, args.tick_mb, args.shards, **options)
        variant = (
            (f"_tick_{args.tick_mb}" if args.tick_mb is not None else "")
            + (f"_shards_{args.shards}" if args.shards is not None else "")
            + "".join(f"_{k[:-3]}_{v}" for k, v in options.items())
            + (f"_rate_{args.rate}" if args.rate != 1000 else "")
        )
        if variant:
            key = f"a_wheel_deployed{variant}_runs"
            merged[key] = [*merged.get(key, []), run]
        else:
            # Every as-deployed run is kept (bench/report.py reports the worst dispatch p99 of them).
            merged["a_wheel_deployed"] = run
            merged["a_wheel_deployed_runs"] = [*merged.get("a_wheel_deployed_runs", []), run]
        print(json.dumps(run, indent=2), flush=True)
        path.write_text(json.dumps(merged, indent=2) + "\n")
        return
    if args.only == "fires":
        path = RESULTS / "wheel_lateness_a.json"
        merged = json.loads(path.read_text()) if path.exists() else result
        burst = fire_burst(args.seconds, args.rate, args.fires, args.tick_mb or 256)
        merged["a_fire_bursts"] = {**merged.get("a_fire_bursts", {}), str(args.fires): burst}
        print(json.dumps(burst, indent=2), flush=True)
        path.write_text(json.dumps(merged, indent=2) + "\n")
        return
    if args.only in (None, "a"):
        result.update(harness(args.seconds, args.rate))
        print(json.dumps({k: v for k, v in result.items() if k.startswith("a_")}, indent=2), flush=True)
    if args.only in (None, "b"):
        result["b_taskplane_dev"] = run_b([int(r) for r in args.b_rates.split(",")], args.b_seconds)
    name = "wheel_lateness.json" if args.only is None else f"wheel_lateness_{args.only}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
