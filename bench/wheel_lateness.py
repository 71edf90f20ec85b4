"""Dispatch and fire lateness of the timing wheel, beside the designs users pick instead.

(a) The real tick (services/tick.py) over in-memory adapters that add AWS-like latency: 5 ms per
    DynamoDB call and 10 ms per SQS batch. Sources: DynamoDB's documented single-digit-millisecond
    latency for GetItem/PutItem/Query within a region, and SendMessageBatch round trips of ~10 ms
    measured from Lambda in the same region (AWS re:Post and SQS FAQ figures); both are injected as
    sleeps, so the figures are about our scheduling, not about a network.
    Workload: 1,000 tasks due per second for 60 s, each written 0.2-5 s before it is due (so many
    land in a window the tick has already read).
    In the same run, the same due times through:
    - a table poller: every second, query what is due and send it (the "cron + table" pattern),
      with the same injected latencies;
    - SQS DelaySeconds alone: each task sent when written with DelaySeconds rounded up to whole
      seconds (the message cannot be visible earlier);
    and EventBridge Scheduler's documented precision (it fires within a 60-second window).
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

    def put(self, entry: Any) -> None:
        self._latency()
        with self.lock:
            bisect.insort(self.partitions.setdefault(f"{entry.shard}#{entry.slot_ms}", []), (entry.sk, entry))

    def load(self, shard: int, slot_ms: int, from_sk: str, upto_sk: str | None) -> list[Any]:
        self._latency()
        with self.lock:
            rows = self.partitions.get(f"{shard}#{slot_ms}", [])
            lo = bisect.bisect_left(rows, (from_sk,)) if from_sk else 0
            hi = bisect.bisect_right(rows, (upto_sk + "\uffff",)) if upto_sk else len(rows)
            return [e for _, e in rows[lo:hi]]

    def acquire(self, shard: int, owner: str, now_ms: int, ttl_ms: int) -> Any:
        from taskplane.adapters.wheel_store import Lease

        self._latency()
        with self.lock:
            item = self.control.setdefault(shard, {"owner": "", "until": 0})
            if item["until"] >= now_ms and item["owner"] != owner:
                return None
            item.update(owner=owner, until=now_ms + ttl_ms)
            return Lease(shard, owner, item["until"], item.get("slot"), item.get("sk", ""))

    def peek(self, shard: int) -> Any:
        return None

    def save(self, shard: int, owner: str, now_ms: int, ttl_ms: int, resume: tuple[int, str]) -> bool:
        self._latency()
        with self.lock:
            item = self.control[shard]
            if item["owner"] != owner:
                return False
            item.update(until=now_ms + ttl_ms, slot=resume[0], sk=resume[1])
            return True

    def release(self, shard: int, owner: str) -> None:
        self._latency()


@dataclass
class FakeLanes:
    """Lanes' send in memory; every batch costs SQS_MS. Records when each task left and arrived."""

    clock: WallClock
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # task id -> (dispatched_at, arrived)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, messages: list[Any]) -> list[Any]:
        time.sleep(SQS_MS / 1000)
        arrived = self.clock.now_ms()
        with self.lock:
            for m in messages:
                self.sent.setdefault(m.task_id, (m.dispatched_at, arrived))
        return [None] * len(messages)


def workload(seconds: int, rate: int, start_ms: int, seed: int = 7) -> list[tuple[int, int, str]]:
    """(write_ms, due_ms, id) for ``rate`` tasks due per second over ``seconds``."""
    rng = random.Random(seed)
    rows = []
    for i in range(seconds * rate):
        due = start_ms + 6000 + int(i * 1000 / rate)
        rows.append((due - rng.randint(200, 5000), due, f"T{i:08d}"))
    rows.sort()
    return rows


def run_a(seconds: int, rate: int) -> dict[str, Any]:
    from taskplane.domain.wheel import WheelEntry
    from taskplane.services.tick import Ticker

    clock = WallClock()
    wheel, lanes = FakeWheel(), FakeLanes(clock)
    stop = threading.Event()
    start = clock.now_ms()
    rows = workload(seconds, rate, start)
    due_of = {tid: due for _, due, tid in rows}

    def produce() -> None:
        for write_ms, due, tid in rows:
            delay = write_ms - clock.now_ms()
            if delay > 0:
                time.sleep(delay / 1000)
            # Written as the API does; the write's latency is the API's, not the tick's.
            wheel_entry = WheelEntry(shard=0, due_ms=due, item_id=tid, tenant="bench")
            with wheel.lock:
                bisect.insort(
                    wheel.partitions.setdefault(f"0#{wheel_entry.slot_ms}", []), (wheel_entry.sk, wheel_entry)
                )

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    ticker = Ticker(wheel=wheel, lanes=lanes, clock=clock, wait=stop.wait)  # type: ignore[arg-type]
    report = ticker.run(0, until_ms=max(d for _, d, _ in rows) + 2000)
    producer.join()
    dispatch = [lanes.sent[t][0] - due_of[t] for t in lanes.sent]
    arrive = [lanes.sent[t][1] - due_of[t] for t in lanes.sent]
    return {
        "tasks": len(rows),
        "dispatched": len(lanes.sent),
        "lost": len(rows) - len(lanes.sent),
        "early": sum(1 for d in dispatch if d < 0),
        "dispatch_lateness_ms": summary(dispatch),
        "on_queue_lateness_ms": summary(arrive),
        "ddb_calls": wheel.calls,
        "tick_report": report.__dict__,
    }


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
    parser.add_argument("--only", choices=["a", "b"])
    parser.add_argument("--seconds", type=int, default=60, help="length of workload (a)")
    parser.add_argument("--rate", type=int, default=1000, help="tasks due per second in (a)")
    parser.add_argument("--b-rates", default="5,10,20,40,80", help="rates tried in (b), ascending")
    parser.add_argument("--b-seconds", type=int, default=15)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, Any] = {"injected_latency_ms": {"dynamodb_call": DDB_MS, "sqs_batch": SQS_MS}}
    if args.only in (None, "a"):
        result["a_wheel"] = run_a(args.seconds, args.rate)
        result["a_table_poller_1s"] = run_poller(args.seconds, args.rate)
        result["a_sqs_delay_seconds"] = run_sqs_delay(args.seconds, args.rate)
        result["a_eventbridge_scheduler"] = {"documented_window_ms": 60_000}
        print(json.dumps({k: v for k, v in result.items() if k.startswith("a_")}, indent=2), flush=True)
    if args.only in (None, "b"):
        result["b_taskplane_dev"] = run_b([int(r) for r in args.b_rates.split(",")], args.b_seconds)
    name = "wheel_lateness.json" if args.only is None else f"wheel_lateness_{args.only}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
