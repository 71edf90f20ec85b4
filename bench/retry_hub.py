"""The retry hub's costs and accuracy (issue 14): writes per attempt of the breaker window and of the
duration sketch, and the sketch's measured quantile error.

Writes: N tasks run through the real executor on in-process moto, in delivery batches of 10 as the
worker handler gets them (it flushes the batch's durations at the end), with a simulated clock
advancing ``gap_ms`` per attempt. Every DynamoDB request to the control table is counted by the item
it touches (``breaker#`` or ``sketch#``/``sketches#``) through botocore's ``before-parameter-build`` event, and
priced in write units from the item's size after the write (the rules of bench/cost.py: 1 WRU per KB
of the larger of before and after). Three mixes: one target (every call in one bucket), ten targets
round-robin (a batch calls each once), and ``timeout_s: "auto"`` (adds the window reads).

Accuracy: 100,000 durations from four distributions; each quantile read from the sketch against the
exact sample at the same rank.

    python bench/retry_hub.py --tasks 1000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _kind(pk: str) -> str:
    if pk.startswith("breaker#"):
        return "breaker"
    if pk.startswith("sketch"):
        return "sketch"
    return "other"


def writes_per_attempt(tasks: int, targets: int, auto: bool, gap_ms: int = 50) -> dict[str, Any]:
    import boto3
    from cost import item_size, write_units
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.adapters.queues import parse_body
    from taskplane.domain.clock import FixedClock
    from taskplane.domain.models import TaskSubmit
    from taskplane.local import moto_patches
    from taskplane.local.resources import create_resources

    moto_patches.apply()
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session)
        clock = FixedClock()
        platform = wiring.build(settings, session=session, clock=clock)
        ddb = session.client("dynamodb")
        calls: Counter[str] = Counter()
        units: Counter[str] = Counter()
        sizes: dict[str, int] = {}
        pending: list[tuple[str, dict[str, Any]]] = []

        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            if params.get("TableName") != settings.control_table:
                if model.name == "BatchGetItem" and settings.control_table in params.get("RequestItems", {}):
                    calls["sketch BatchGetItem"] += 1
                return
            key = params.get("Key") or {}
            pk = key.get("pk", {}).get("S", "")
            kind = _kind(pk)
            calls[f"{kind} {model.name}"] += 1
            if model.name in ("UpdateItem", "PutItem"):
                pending.append((kind, key))

        # Only the platform's clients: count every control-table request they make.
        platform.executor.breakers.store.client.meta.events.register(
            "before-parameter-build.dynamodb", before
        )

        class Answers:
            def run(
                self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **_: Any
            ) -> Any:
                return {"ok": True}

        platform.executor.runners = Answers()
        sqs = session.client("sqs")
        url = settings.queue_urls["default"]
        body: dict[str, Any] = {"retry": {"max_attempts": 1}}
        if auto:
            body["timeout_s"] = "auto"
        done = 0
        while done < tasks:
            batch = min(10, tasks - done)
            for i in range(batch):
                n = done + i
                target = {"type": "http", "url": f"https://t{n % targets}.example/x", "method": "POST"}
                platform.tasks.submit("acme", TaskSubmit.model_validate({**body, "target": target}))
            handled = 0
            while handled < batch:
                for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    platform.executor.handle(parse_body(m["Body"]))
                    handled += 1
                    clock.advance(gap_ms)
                    for kind, key in pending:
                        size = item_size(ddb.get_item(TableName=settings.control_table, Key=key).get("Item"))
                        units[kind] += write_units(sizes.get(key["pk"]["S"], 0), size)
                        sizes[key["pk"]["S"]] = size
                    pending.clear()
            platform.executor.flush()  # the worker handler's end of batch
            for kind, key in pending:
                size = item_size(ddb.get_item(TableName=settings.control_table, Key=key).get("Item"))
                units[kind] += write_units(sizes.get(key["pk"]["S"], 0), size)
                sizes[key["pk"]["S"]] = size
            pending.clear()
            done += batch
        breaker_items = [s for k, s in sizes.items() if k.startswith("breaker#")]
        return {
            "tasks": tasks,
            "targets": targets,
            "auto_timeout": auto,
            "gap_ms": gap_ms,
            "calls": dict(calls),
            "per_attempt": {
                "breaker_writes": round(calls["breaker UpdateItem"] / tasks, 3),
                "breaker_wru": round(units["breaker"] / tasks, 3),
                "sketch_writes": round(calls["sketch UpdateItem"] / tasks, 3),
                "sketch_wru": round(units["sketch"] / tasks, 3),
                "breaker_reads": round(calls["breaker GetItem"] / tasks, 3),
                "sketch_window_reads": round(calls["sketch BatchGetItem"] / tasks, 3),
            },
            "largest_breaker_item_bytes": max(breaker_items, default=0),
        }


def quantile_error(n: int = 100_000, seed: int = 14) -> dict[str, Any]:
    from taskplane.domain.adaptive import ALPHA, Sketch

    rng = random.Random(seed)
    dists = {
        "lognormal(200 ms, sigma 1)": lambda: rng.lognormvariate(math.log(200), 1.0),
        "uniform(1 ms, 10 s)": lambda: rng.uniform(1, 10_000),
        "bimodal 50 ms / 5 s (9:1)": lambda: (
            rng.gauss(50, 5) if rng.random() < 0.9 else rng.gauss(5_000, 500)
        ),
        "pareto(alpha 1.5) x 10 ms": lambda: 10 * rng.paretovariate(1.5),
    }
    out: dict[str, Any] = {"alpha": ALPHA, "samples": n, "distributions": {}}
    worst = 0.0
    for name, draw in dists.items():
        values = [max(1.0, draw()) for _ in range(n)]
        sketch = Sketch()
        for v in values:
            sketch.add(v)
        ordered = sorted(values)
        row = {}
        for q in (0.5, 0.9, 0.99, 0.999):
            true = ordered[math.floor(q * (n - 1))]
            est = sketch.quantile(q) or 0.0
            err = abs(est - true) / true
            worst = max(worst, err)
            row[f"p{q * 100:g}"] = {
                "true_ms": round(true, 3),
                "sketch_ms": round(est, 3),
                "rel_error": round(err, 5),
            }
        row["buckets"] = len(sketch.counts)
        out["distributions"][name] = row
    out["worst_rel_error"] = round(worst, 5)
    return out


def run(tasks: int = 1000) -> dict[str, Any]:
    return {
        "writes": [
            writes_per_attempt(tasks, targets=1, auto=False),
            writes_per_attempt(tasks, targets=10, auto=False),
            writes_per_attempt(tasks, targets=1, auto=True),
        ],
        "quantile_error": quantile_error(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    data = run(args.tasks)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retry_hub.json").write_text(json.dumps(data, indent=2) + "\n")
    for w in data["writes"]:
        print(
            w["targets"],
            "targets, auto" if w["auto_timeout"] else "targets",
            w["per_attempt"],
            w["largest_breaker_item_bytes"],
        )
    print("worst relative error", data["quantile_error"]["worst_rel_error"])


if __name__ == "__main__":
    main()
