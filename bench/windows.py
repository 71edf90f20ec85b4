"""Window-close accuracy of windowed triggers: how late a window's task starts against its window's end.

In one process on moto (in-process, the system clock): a batch trigger and a debounce trigger; a
producer feeds events straight into the worker's use case (``TriggerService.start``: EventBridge and
SQS hops are not part of a window's close) for new keys at a steady rate, a few events per window,
while the platform's tick (the real ``Ticker`` of the platform, its own thread) sends each window's
end to its lane a lead ahead, and the worker handler (the local runtime's lane pollers) holds it
until due and closes the window. For every task a window started: ``created_at - closes_at`` (the
task is created by the close, and queued in the same step). Figures include moto's cost of the close
(a conditional update, a Query of the window's events, the task's write, the lane's send), which is
larger than DynamoDB's and SQS's; the event source mapping's pickup is the poller's (within the
lead), not modelled.

    python bench/windows.py                       # 30 s, 8 windows a second per trigger
    python bench/windows.py --seconds 10 --rate 4
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def run(seconds: float = 30, rate: float = 8, events_per_window: int = 3, seed: int = 7) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.domain.triggers import TriggerCreate
    from taskplane.local import moto_patches
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import LanePoller
    from taskplane.local.resources import create_resources

    moto_patches.apply()
    rng = random.Random(seed)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session)
        platform = wiring.build(settings, session=session)
        wiring.use(platform)
        echo = {"target": {"type": "builtin", "name": "echo"}}
        specs = {
            "batch": {"batch": {"max_events": 1000, "window_ms": 1000, "key": "$.detail.k"}},
            "debounce": {"debounce": {"window_ms": 500, "key": "$.detail.k"}},
        }
        triggers = {
            mode: platform.triggers.create(
                "bench",
                TriggerCreate.model_validate({"event_pattern": {"source": ["bench"]}, "task": echo, **spec}),
            )
            for mode, spec in specs.items()
        }
        worker = load_handler("worker").lambda_handler
        sqs = session.client("sqs")
        pollers = [
            LanePoller(sqs, url, worker, concurrency=10, max_idle_sleep_s=0.05)
            for url in settings.queue_urls.values()
        ]
        for poller in pollers:
            poller.start()
        stop = threading.Event()
        span_ms = int((seconds + 10) * 1000)
        ticker = threading.Thread(
            target=lambda: platform.ticker.run(
                0, until_ms=platform.ticker.clock.now_ms() + span_ms, owner="bench"
            ),
            daemon=True,
        )
        sent = 0

        def event(key: str, n: int) -> dict[str, Any]:
            nonlocal sent
            sent += 1
            return {
                "id": f"ev-{sent}",
                "source": "bench",
                "detail-type": "x",
                "detail": {"k": key, "n": n, "taskplane_tenant": "bench"},
            }

        started = time.monotonic()
        window = 0
        while time.monotonic() - started < seconds:
            for mode, trigger in triggers.items():
                key = f"{mode}-{window}"
                for n in range(events_per_window):
                    platform.triggers.start("bench", trigger.trigger_id, event(key, n))
                    time.sleep(rng.uniform(0, 0.05))
            if not ticker.is_alive() and window == 0:
                ticker.start()
            window += 1
            time.sleep(max(0.0, window / rate - (time.monotonic() - started)))
        time.sleep(3)  # the last windows close (1 s batches, 0.5 s debounces)
        stop.set()
        platform.stop.set()
        ticker.join(timeout=30)
        for poller in pollers:
            poller.stop()
        out: dict[str, Any] = {"seconds": seconds, "rate_per_trigger": rate, "events": sent}
        for mode, trigger in triggers.items():
            items, cursor = platform.tasks.list("bench", limit=500)
            tasks = list(items)
            while cursor:
                items, cursor = platform.tasks.list("bench", limit=500, cursor=cursor)
                tasks += items
            late = []
            for task in tasks:
                if task.trigger_id != trigger.trigger_id:
                    continue
                late.append(task.created_at - _window_end(platform, trigger, task))
            out[mode] = {
                "windows": len(late),
                "late_ms_p50": percentile(late, 50),
                "late_ms_p99": percentile(late, 99),
                "late_ms_max": max(late) if late else None,
                "late_ms_min": min(late) if late else None,
                "late_ms_mean": round(statistics.fmean(late), 1) if late else None,
            }
        wiring.use(None)
        return out


def _window_end(platform: Any, trigger: Any, task: Any) -> int:
    """The end of the window that started ``task`` (named in its first history entry)."""
    detail = task.history[0].detail or ""
    window_id = detail.split(" when window ", 1)[1].split(" ", 1)[0]
    head = platform.triggers.windows.records.head("bench", trigger.trigger_id, window_id)
    return int(head.closes_at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=8, help="new windows a second, per trigger")
    args = parser.parse_args(argv)
    result = run(seconds=args.seconds, rate=args.rate)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "windows.json").write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
