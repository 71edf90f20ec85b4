"""Tasks per second through `taskplane dev` (in this process, on moto) for N echo tasks.

Submits through the HTTP API in batches of 100 (the client's submit_many), waits until every task is
SUCCEEDED, and reports the end-to-end rate and the lateness from submission to start. moto is slow
where AWS is not (NOTES-AWS-LOCAL.md): this measures the local runtime, not the platform on AWS.

    python bench/local_throughput.py --tasks 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(tasks: int, timeout_s: float) -> dict:
    from taskplane.client import Client
    from taskplane.local.runtime import LocalRuntime

    runtime = LocalRuntime(port=0).start()
    try:
        client = Client(runtime.url, runtime.api_key, timeout_s=60)
        bodies = [{"target": {"type": "builtin", "name": "echo"}, "payload": {"i": i}} for i in range(tasks)]
        began = time.perf_counter()
        results = client.submit_many(bodies, chunk=100)
        submitted_s = time.perf_counter() - began
        ids = {r["task_id"] for r in results if "task_id" in r}
        rejected = len(results) - len(ids)
        done: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ids) and time.monotonic() < deadline:
            for task in client.iter_tasks(state="SUCCEEDED", page_size=500):
                if task["task_id"] in ids:
                    done[task["task_id"]] = task
            if len(done) < len(ids):
                time.sleep(0.25)
        wall_s = time.perf_counter() - began
        starts = [_ms(t["started_at"]) - _ms(t["created_at"]) for t in done.values()]
        first = min(_ms(t["created_at"]) for t in done.values())
        last = max(_ms(t["finished_at"]) for t in done.values())
        return {
            "tasks": tasks,
            "accepted": len(ids),
            "rejected": rejected,
            "succeeded": len(done),
            "lost": len(ids) - len(done),
            "submit_s": round(submitted_s, 3),
            "wall_s": round(wall_s, 3),
            "tasks_per_s": round(len(done) / ((last - first) / 1000), 1) if done else 0.0,
            "submit_to_start_ms": {
                "p50": round(statistics.median(starts), 1),
                "p99": round(percentile(starts, 0.99), 1),
                "max": round(max(starts), 1),
            },
            "note": "created_at of the first task to finished_at of the last, taskplane dev on in-process moto, "
            "batches of 100 over HTTP on loopback, lanes polled like an event source mapping",
        }
    finally:
        runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    result = run(args.tasks, args.timeout_s)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "local_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
