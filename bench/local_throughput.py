"""Tasks per second through `taskplane dev` (in this process) on both backends, beside Huey on SQLite.

``compare`` (what ``make bench`` runs) measures, side by side in one run:

- **throughput**: N echo tasks through `taskplane dev` over HTTP batches of 100 (the client's
  submit_many; a batch the lanes' backpressure still refuses after the client's retries is sent
  again), on the SQLite backend (the default) and on ``--backend moto``; then the same N echo tasks
  on Huey with its SQLite storage (enqueued from this process, run by a Huey consumer in another
  process with 4 worker threads, results in the same SQLite file). Each rate is first start (or
  enqueue) to last finish; none may be lost.
- **fire lateness**: delayed tasks submitted at 100 a second (each due 2 s after it is sent) for 20 s,
  started_at - run_at per task (p50/p99/max, and how many started early), on both backends.

With ``--profile`` (the default) the CPU spent inside moto and inside boto3 calls is measured where
they are entered (each thread's CPU clock read around moto's request dispatch and around
``BaseClient._make_api_call``) and reported as shares of the process's CPU time. ``--sample`` adds a
sampling thread that reads every thread's stack (``sys._current_frames()``) every
``SAMPLE_INTERVAL_S`` and weighs each busy sample by the CPU its thread used since the last round; it
is off by default because walking other threads' frames once crashed CPython 3.11 (a segmentation
fault in a full ``make bench``).

    python bench/local_throughput.py                      # 10,000 tasks, both backends, Huey, lateness
    python bench/local_throughput.py --tasks 300 --no-profile
    python bench/local_throughput.py --only sqlite        # one backend's throughput alone
"""

from __future__ import annotations

import argparse
import json
import linecache
import re
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: The sampler's period. A sample costs ~0.1-0.3 ms of one core at ~20 threads, so 1-3% of a core.
SAMPLE_INTERVAL_S = 0.01
#: How often the bench looks at the task table to see whether every task has finished.
WATCH_INTERVAL_S = 0.5

# A top frame on one of these lines is a thread blocked in C with the GIL released: idle.
_BLOCKING_LINE = re.compile(
    r"\b(sleep|wait|wait_for|select|poll|accept|recv|recv_into|readinto|readline|acquire|join|get)\(|"
    r"^\s*with\s+[^:]*lock[^:]*:",
    re.IGNORECASE,
)
_BLOCKING_FUNCTIONS = frozenset(
    {"wait", "wait_for", "select", "poll", "accept", "recv", "recv_into", "readinto", "_wait_for_tstate_lock"}
)


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds a thread has used, from its Linux thread CPU clock (0.0 once it has ended).

    The clock id is the kernel's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED); unlike
    ``pthread_getcpuclockid``, asking about a thread that just ended is an error, not a crash.
    """
    if native_id is None:
        return 0.0
    try:
        return time.clock_gettime(((~native_id) << 3) | 6)
    except OSError:
        return 0.0


def _category(filename: str) -> str:
    if "/moto/" in filename:
        return "moto"
    if "/botocore/" in filename:
        return "botocore"
    if "/taskplane/" in filename or "/functions/" in filename:
        return "taskplane"
    return "other"


class Sampler:
    """Whole-process sampling profiler: one daemon thread, ``sys._current_frames()`` every ``interval_s``."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()  # CPU seconds by category
        self.moto_functions: Counter[str] = Counter()  # CPU seconds by innermost moto function
        self.idle_cpu_s = 0.0
        self.samples = 0  # sampling rounds
        self.idle = 0  # idle thread samples (not counted in the shares)
        self.cost_s = 0.0  # CPU time the sampler itself spent sampling
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._idle_lines: dict[tuple[Any, int], bool] = {}
        self._code_category: dict[Any, str] = {}

    def start(self) -> Sampler:
        self._began = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._elapsed = time.perf_counter() - self._began

    def _is_idle(self, frame: Any) -> bool:
        key = (frame.f_code, frame.f_lineno)
        idle = self._idle_lines.get(key)
        if idle is None:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno or 0)
            idle = frame.f_code.co_name in _BLOCKING_FUNCTIONS or bool(_BLOCKING_LINE.search(line))
            self._idle_lines[key] = idle
        return idle

    def _loop(self) -> None:
        me = threading.get_ident()
        categories = self._code_category
        last_cpu: dict[int, float] = {}
        while not self._stop.wait(self.interval_s):
            began = time.thread_time()
            self.samples += 1
            native = {t.ident: t.native_id for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                cpu = _thread_cpu_s(native.get(ident))
                spent = max(0.0, cpu - last_cpu.get(ident, cpu))
                last_cpu[ident] = cpu
                if self._is_idle(frame):
                    self.idle += 1
                    self.idle_cpu_s += spent
                    continue
                innermost_moto = None
                seen = set()
                f = frame
                while f is not None:
                    code = f.f_code
                    category = categories.get(code)
                    if category is None:
                        category = categories[code] = _category(code.co_filename)
                    seen.add(category)
                    if category == "moto" and innermost_moto is None:
                        innermost_moto = code
                    f = f.f_back
                if "moto" in seen:
                    kind = "moto"
                    name = innermost_moto.co_filename.split("/moto/", 1)[-1]  # type: ignore[union-attr]
                    self.moto_functions[f"{name}:{innermost_moto.co_name}"] += spent  # type: ignore[union-attr]
                elif "botocore" in seen:
                    kind = "botocore"
                elif "taskplane" in seen:
                    kind = "taskplane"
                else:
                    kind = "other"
                self.counts[kind] += 1
                self.cpu[kind] += spent
            self.cost_s += time.thread_time() - began

    def report(self, top: int = 10) -> dict[str, Any]:
        attributed = sum(self.cpu.values()) or 1e-9
        moto = self.cpu["moto"] or 1e-9
        return {
            **{
                f"{c}_share": round(self.cpu[c] / attributed, 3)
                for c in ("moto", "botocore", "taskplane", "other")
            },
            "samples": sum(self.counts.values()),
            "sample_counts": {c: self.counts[c] for c in ("moto", "botocore", "taskplane", "other")},
            "sampling_rounds": self.samples,
            "idle_thread_samples": self.idle,
            "interval_ms": self.interval_s * 1000,
            "rounds_per_s": round(self.samples / max(self._elapsed, 1e-9), 1),
            "attributed_cpu_s": round(attributed, 2),
            "unattributed_cpu_s": round(self.idle_cpu_s, 2),
            "sampler_cpu_share_of_wall": round(self.cost_s / max(self._elapsed, 1e-9), 4),
            "top_moto_functions": [
                {"function": name, "share_of_moto": round(n / moto, 3)}
                for name, n in self.moto_functions.most_common(top)
            ],
            "method": "each round, every thread whose top frame is not blocked is one sample, weighted by the "
            "CPU time that thread used since the previous round (its pthread CPU clock) and attributed to moto "
            "if a moto frame is on its stack, else botocore, else taskplane, else other; shares are of that "
            "CPU. CPU of threads blocked at the sample is counted as unattributed.",
        }


class MotoClock:
    """CPU time spent inside moto, measured exactly: each thread's CPU clock read around moto's request
    dispatch (``BotocoreStubber.process_request``, where every in-process boto3 call enters moto). A cross-check
    of the sampler's ``moto_share``, at two clock reads per AWS call."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        self._depth = threading.local()

    def install(self) -> MotoClock:
        from moto.core.botocore_stubber import BotocoreStubber

        original = self._original = BotocoreStubber.process_request
        clock = self

        def process_request(stub: Any, request: Any) -> Any:
            depth = getattr(clock._depth, "n", 0)
            clock._depth.n = depth + 1
            began = time.thread_time()
            try:
                return original(stub, request)
            finally:
                clock._depth.n = depth
                if depth == 0:  # a moto call made from inside moto is counted once
                    spent = time.thread_time() - began
                    with clock._lock:
                        clock.cpu_s += spent
                        clock.calls += 1

        BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        from moto.core.botocore_stubber import BotocoreStubber

        BotocoreStubber.process_request = self._original  # type: ignore[method-assign]


class ClientClock:
    """CPU time spent inside boto3 calls (botocore's client side plus moto behind it), each thread's
    CPU clock read around ``BaseClient._make_api_call``; with MotoClock it splits a call's CPU into
    moto's and botocore's."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self._lock = threading.Lock()
        self._depth = threading.local()

    def install(self) -> ClientClock:
        from botocore.client import BaseClient

        original = self._original = BaseClient._make_api_call
        clock = self

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            depth = getattr(clock._depth, "n", 0)
            clock._depth.n = depth + 1
            began = time.thread_time()
            try:
                return original(client, operation, params)
            finally:
                clock._depth.n = depth
                if depth == 0:
                    spent = time.thread_time() - began
                    with clock._lock:
                        clock.cpu_s += spent

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        BaseClient._make_api_call = self._original  # type: ignore[method-assign]


def _ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _succeeded_in_moto(table: str, ids: set[str]) -> int:
    """How many of ``ids`` are SUCCEEDED, read straight from moto's table (under the lock its requests
    hold): watching progress this way costs the runtime nothing, where listing over HTTP every half
    second would read the whole, growing table through moto each time."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from taskplane.local import moto_patches

    with moto_patches._LOCK:
        partitions = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(table).items
        return sum(
            1
            for partition in partitions.values()
            for task_id, item in partition.items()
            if task_id.value in ids and item.attrs["state"].value == "SUCCEEDED"
        )


def _submit_all(client: Any, bodies: list[dict[str, Any]]) -> tuple[set[str], int]:
    """Submit every body; batches refused as a whole (429 after the retries) are sent again."""
    ids: set[str] = set()
    refusals = 0
    pending = bodies
    while pending:
        again = []
        for body, result in zip(pending, client.submit_many(pending, chunk=100), strict=True):
            if "task_id" in result:
                ids.add(result["task_id"])
            elif result.get("error", {}).get("code") in ("throttled", "unavailable"):
                refusals += 1
                again.append(body)
        pending = again
    return ids, refusals


def _succeeded_in_sqlite(runtime: Any, ids: set[str]) -> int:
    """How many of ``ids`` are SUCCEEDED, read straight from the runtime's SQLite database."""
    rows = runtime._sqlite.db.query("SELECT task_id FROM tasks WHERE state = 'SUCCEEDED'")
    return sum(1 for r in rows if r["task_id"] in ids)


def run(
    tasks: int, timeout_s: float, profile: bool = True, sample: bool = False, backend: str = "sqlite"
) -> dict:
    """N echo tasks through `taskplane dev` on ``backend``. ``profile``: CPU inside moto and inside
    boto3 calls, measured at their entry points (cheap, exact). ``sample``: also the stack sampler
    (off by default: walking other threads' frames from a thread crashed CPython 3.11 once in a full
    ``make bench``, a segmentation fault)."""
    from taskplane.client import Client
    from taskplane.local.runtime import LocalRuntime

    runtime = LocalRuntime(port=0, backend=backend).start()
    moto_clock = MotoClock().install() if profile else None
    client_clock = ClientClock().install() if profile else None
    sampler = Sampler().start() if sample else None
    try:
        from taskplane import wiring

        table = wiring.platform().settings.tasks_table
        client = Client(runtime.url, runtime.api_key, timeout_s=60)
        bodies = [{"target": {"type": "builtin", "name": "echo"}, "payload": {"i": i}} for i in range(tasks)]
        began = time.perf_counter()
        cpu_began = time.process_time()
        ids, refusals = _submit_all(client, bodies)
        submitted_s = time.perf_counter() - began
        deadline = time.monotonic() + timeout_s

        def finished() -> int:
            return (
                _succeeded_in_sqlite(runtime, ids) if backend == "sqlite" else _succeeded_in_moto(table, ids)
            )

        while finished() < len(ids) and time.monotonic() < deadline:
            time.sleep(WATCH_INTERVAL_S)
        wall_s = time.perf_counter() - began
        cpu_s = time.process_time() - cpu_began
        if sampler is not None:
            sampler.stop()
        moto_cpu_s = moto_clock.cpu_s if moto_clock is not None else 0.0
        # The answer itself comes over HTTP: one listing of every SUCCEEDED task.
        done = {
            t["task_id"]: t
            for t in client.iter_tasks(state="SUCCEEDED", page_size=500)
            if t["task_id"] in ids
        }
        starts = [_ms(t["started_at"]) - _ms(t["created_at"]) for t in done.values()]
        first = min(_ms(t["created_at"]) for t in done.values())
        last = max(_ms(t["finished_at"]) for t in done.values())
        result: dict[str, Any] = {
            "backend": backend,
            "tasks": tasks,
            "accepted": len(ids),
            "rejected": tasks - len(ids),
            "batch_refusals_resent": refusals,
            "succeeded": len(done),
            "lost": len(ids) - len(done),
            "submit_s": round(submitted_s, 3),
            "wall_s": round(wall_s, 3),
            "cpu_s": round(cpu_s, 2),
            "cpu_ms_per_task": round(cpu_s * 1000 / max(len(done), 1), 2),
            "tasks_per_s": round(len(done) / ((last - first) / 1000), 1) if done else 0.0,
            "submit_to_start_ms": {
                "p50": round(statistics.median(starts), 1),
                "p99": round(percentile(starts, 0.99), 1),
                "max": round(max(starts), 1),
            },
            "note": "created_at of the first task to finished_at of the last, taskplane dev in this process on "
            + (
                "its SQLite backend (in memory)"
                if backend == "sqlite"
                else "--backend moto (in-process moto, with taskplane.local.moto_patches)"
            )
            + ", batches of 100 over HTTP on loopback (refused batches sent again), lanes polled like an event "
            "source mapping; progress watched in the store in-process, the final count over HTTP",
        }
        if moto_clock is not None and client_clock is not None:
            moto_share = moto_cpu_s / max(cpu_s, 1e-9)
            botocore_share = max(0.0, client_clock.cpu_s - moto_cpu_s) / max(cpu_s, 1e-9)
            result["profile"] = {
                "method": "CPU clocks read around moto's request dispatch and around every boto3 call, "
                "over the process's CPU time: moto = inside moto; botocore = boto3 calls minus moto "
                "(serializing, signing, parsing); rest = the handlers, the gateway, the poller and Python",
                "moto_share": round(moto_share, 3),
                "botocore_share": round(botocore_share, 3),
                "rest_share": round(max(0.0, 1 - moto_share - botocore_share), 3),
                **({"sampled": sampler.report()} if sampler is not None else {}),
                "moto_cpu_share_measured": round(moto_share, 3),
                "moto_calls": moto_clock.calls,
                "moto_cpu_ms_per_call": round(moto_cpu_s * 1000 / max(moto_clock.calls, 1), 2),
            }
        return result
    finally:
        if sampler is not None and sampler._thread.is_alive():
            sampler.stop()
        if moto_clock is not None:
            moto_clock.uninstall()
        if client_clock is not None:
            client_clock.uninstall()
        runtime.stop()


# -- Huey on SQLite, the same echo tasks ------------------------------------------------------------------
#: Huey's consumer threads (its documented way to run I/O-bound tasks), beside taskplane dev's 4 default-lane
#: batches of 10.
HUEY_WORKERS = 4
#: Huey's queue empty and no new result this long: what is missing is lost, not late.
STALL_S = 10.0


def run_huey(tasks: int, timeout_s: float, workers: int = HUEY_WORKERS) -> dict[str, Any]:
    """``tasks`` echo tasks on Huey's SqliteHuey, run by ``huey_echo.consume`` in a child process (Huey's
    consumer wants its own main thread), results read back from the same file. Two ways: end to end
    (the consumer running while this process enqueues, like the taskplane runs: first enqueue to last
    finish) and draining a queue filled beforehand (first start to last finish: the consumer alone)."""
    end_to_end = _huey_once(tasks, timeout_s, workers, prefill=False)
    drain = _huey_once(tasks, timeout_s, workers, prefill=True)
    return {
        "tasks": tasks,
        "succeeded": min(end_to_end["succeeded"], drain["succeeded"]),
        "lost": max(end_to_end["lost"], drain["lost"]),
        "tasks_per_s": end_to_end["tasks_per_s"],
        "end_to_end": end_to_end,
        "prefilled_drain": drain,
        "workers": workers,
        "note": f"huey {__import__('huey_echo').version()} SqliteHuey (its defaults: WAL, synchronous off) in a "
        f"temporary file, {tasks} echo tasks enqueued one by one from this process (Huey has no batch "
        f"enqueue), run by Huey's Consumer with {workers} worker threads in a child process, results in the "
        "same file; tasks_per_s is end to end (the consumer running while this process enqueues: first "
        "enqueue to last finish, as the taskplane runs are measured); prefilled_drain is the consumer alone "
        "on a queue filled beforehand (first start to last finish)",
    }


def _huey_once(tasks: int, timeout_s: float, workers: int, *, prefill: bool) -> dict[str, Any]:
    import os
    import subprocess
    import tempfile

    import huey_echo

    with tempfile.TemporaryDirectory(prefix="bench-huey-") as tmp:
        path = os.path.join(tmp, "huey.db")
        huey, echo = huey_echo.app(path)

        log = open(os.path.join(tmp, "consumer.log"), "wb")  # noqa: SIM115  # closed below

        def start_consumer() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-c", f"import huey_echo; huey_echo.consume({path!r}, {workers})"],
                cwd=str(Path(__file__).resolve().parent),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        consumer = None if prefill else start_consumer()
        try:
            began = time.time()
            handles = [echo({"i": i}) for i in range(tasks)]
            enqueued_s = time.time() - began
            if consumer is None:
                consumer = start_consumer()
            deadline = time.monotonic() + timeout_s
            seen, still_since = -1, time.monotonic()
            # Until every result is in, or the queue is empty and no result came for STALL_S (lost ones)
            while time.monotonic() < deadline:
                count = huey.result_count()
                if count >= tasks:
                    break
                if count != seen:
                    seen, still_since = count, time.monotonic()
                elif huey.pending_count() == 0 and time.monotonic() - still_since > STALL_S:
                    break
                time.sleep(0.1)
            finished = [h.get(preserve=True) for h in handles]
        finally:
            if consumer is not None:
                consumer.terminate()
                consumer.wait(30)
            log.close()
        errors = [
            line
            for line in Path(tmp, "consumer.log").read_text(errors="replace").splitlines()
            if "Error" in line or "error" in line
        ]
    done = [f for f in finished if f is not None]
    first = min((f["started_at"] for f in done), default=began) if prefill else began
    last = max((f["finished_at"] for f in done), default=first)
    return {
        "succeeded": len(done),
        "lost": tasks - len(done),
        "consumer_error_lines": errors[:5],
        "enqueue_s": round(enqueued_s, 3),
        "tasks_per_s": round(len(done) / max(last - first, 1e-9), 1),
    }


# -- delayed tasks: fire lateness at a steady rate ----------------------------------------------------------
def fire_lateness(backend: str, rate: int = 100, seconds: int = 20, delay_ms: int = 2000) -> dict[str, Any]:
    """Delayed echo tasks submitted at ``rate`` a second for ``seconds`` (each due ``delay_ms`` after it is
    sent, through the wheel), started_at - run_at per task. Four submitting threads keep the pace (one
    request waits on its answer before the next); the tasks are read once each, after the last is due."""
    from concurrent.futures import ThreadPoolExecutor

    from taskplane.client import Client
    from taskplane.local.runtime import LocalRuntime

    runtime = LocalRuntime(port=0, backend=backend).start()
    try:
        client = Client(runtime.url, runtime.api_key, timeout_s=60)
        client.wait(client.submit({"target": {"type": "builtin", "name": "echo"}})["task_id"])  # warm up
        total = rate * seconds
        began = time.monotonic() + 0.5

        def send(i: int) -> str:
            pause = began + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            body = {"target": {"type": "builtin", "name": "echo"}, "delay_ms": delay_ms}
            return str(client.submit(body)["task_id"])

        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(send, range(total)))
        sent_s = time.monotonic() - began
        time.sleep(delay_ms / 1000 + 1)
        done: dict[str, Any] = {}
        deadline = time.monotonic() + 300
        while len(done) < len(ids) and time.monotonic() < deadline:
            for task_id in ids:
                if task_id not in done:
                    task = client.get(task_id)
                    if task["state"] in ("SUCCEEDED", "FAILED"):
                        done[task_id] = task
            if len(done) < len(ids):
                time.sleep(1)
        late = [_ms(t["started_at"]) - _ms(t["run_at"]) for t in done.values()]
        return {
            "backend": backend,
            "rate_per_s": rate,
            "achieved_submit_rate_per_s": round(total / sent_s, 1),
            "tasks": total,
            "succeeded": sum(1 for t in done.values() if t["state"] == "SUCCEEDED"),
            "lost": total - len(done),
            "early_starts": sum(1 for v in late if v < 0),
            "fire_lateness_ms": {
                "p50": round(statistics.median(late), 1) if late else None,
                "p99": round(percentile(late, 0.99), 1) if late else None,
                "max": round(max(late), 1) if late else None,
            },
            "note": f"taskplane dev in this process on backend {backend}: {total} echo tasks with delay_ms "
            f"{delay_ms} submitted at {rate}/s over HTTP (4 threads keeping the pace), started_at - run_at",
        }
    finally:
        runtime.stop()


def compare(
    tasks: int,
    timeout_s: float,
    profile: bool = True,
    fire_rate: int = 100,
    fire_seconds: int = 20,
    moto_tasks: int | None = None,
) -> dict[str, Any]:
    """Both backends and Huey, side by side in one run; the default backend's figures at the top level
    (what bench/report.py and bench/plots.py read), every figure under its name."""
    import os

    load_before = os.getloadavg()
    sqlite = run(tasks, timeout_s, profile=profile, backend="sqlite")
    moto = run(moto_tasks or tasks, timeout_s, profile=profile, backend="moto")
    huey = run_huey(tasks, timeout_s)
    fire = {b: fire_lateness(b, rate=fire_rate, seconds=fire_seconds) for b in ("sqlite", "moto")}
    return {
        **sqlite,
        "backends": {"sqlite": sqlite, "moto": moto},
        "huey": huey,
        "local_vs_huey_ratio": (
            round(sqlite["tasks_per_s"] / huey["tasks_per_s"], 3) if huey["tasks_per_s"] else None
        ),
        "local_vs_huey_drain_ratio": (
            round(sqlite["tasks_per_s"] / huey["prefilled_drain"]["tasks_per_s"], 3)
            if huey["prefilled_drain"]["tasks_per_s"]
            else None
        ),
        "fire_lateness": fire,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the CPU inside moto and inside boto3 calls",
    )
    parser.add_argument(
        "--sample", action="store_true", help="also run the stack sampler (can crash CPython 3.11)"
    )
    parser.add_argument(
        "--only",
        choices=("sqlite", "moto", "huey"),
        help="one throughput figure alone (not written to results)",
    )
    parser.add_argument("--fire-rate", type=int, default=100, help="delayed tasks a second")
    parser.add_argument("--fire-seconds", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS / "local_throughput.json")
    args = parser.parse_args()
    if args.only:
        one = (
            run_huey(args.tasks, args.timeout_s)
            if args.only == "huey"
            else run(args.tasks, args.timeout_s, profile=args.profile, sample=args.sample, backend=args.only)
        )
        print(json.dumps(one, indent=2))
        return
    result = compare(
        args.tasks,
        args.timeout_s,
        profile=args.profile,
        fire_rate=args.fire_rate,
        fire_seconds=args.fire_seconds,
    )
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
