"""The tick's CPU per request and per item of its window reads and lane sends, on the real adapters over
moto (moto's own CPU excluded, as bench/cost.py does), with botocore as the tick's Lambda runs it.

Where the tick's CPU goes (issue 16, the tick's CPU round): every poll (10 a second) re-reads its whole
window, 2 s behind now to 1.85 s ahead, so each item is read ~38 times while it waits; botocore parses
each item's attributes every time. This measures a window Query of N items read whole, read for sort
keys alone (WheelStore.load's keys-first read), an empty Query (the per-request floor), the store's
load with every item already taken, and a SendMessageBatch of 10 deliveries.

    python bench/tick_reads.py --items 120,400
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_780_000_020_000


def run(items: tuple[int, ...] = (120, 400), repeats: int = 50) -> dict[str, Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))
    import boto3
    from botocore.config import Config
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    from taskplane.adapters.queues import LaneMessage, Lanes
    from taskplane.adapters.wheel_store import WheelStore, upto_key
    from taskplane.domain.wheel import WheelEntry, partition, slot_of
    from taskplane.local import moto_patches

    moto_s = [0.0]
    stub = BotocoreStubber.__call__

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return stub(self, *args, **kwargs)
        finally:
            moto_s[0] += time.thread_time() - t0

    def ours_ms(fn: Callable[[], Any], n: int = repeats) -> float:
        """The median of ``n`` calls (a shared machine's pauses land in a few of them)."""
        fn()  # warm
        times = []
        for _ in range(n):
            moto_s[0] = 0.0
            t0 = time.thread_time()
            fn()
            times.append((time.thread_time() - t0) - moto_s[0])
        return round(statistics.median(times) * 1000, 4)

    moto_patches.apply()
    BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    out: dict[str, Any] = {"load_average": os.getloadavg(), "by_items": {}}
    try:
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            config = Config(retries={"mode": "standard", "max_attempts": 3})  # as wiring.py makes them
            ddb, sqs = session.client("dynamodb", config=config), session.client("sqs", config=config)
            url = sqs.create_queue(QueueName="lane")["QueueUrl"]
            lanes = Lanes({"default": url}, "", sqs)
            messages = [
                LaneMessage("acme", f"01J{i:023d}", 1, state="SCHEDULED", dispatched_at=T0, due_ms=T0 + 350)
                for i in range(10)
            ]
            out["send_10_ms"] = ours_ms(lambda: lanes.send(messages), repeats * 4)

            def window(n: int) -> tuple[dict[str, Any], dict[str, float]]:
                table = f"wheel{n}"
                ddb.create_table(
                    TableName=table,
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
                wheel = WheelStore(table, "control", ddb)
                entries = [WheelEntry(0, T0 + 10 * i, f"01J{i:023d}", "acme") for i in range(n)]
                for entry in entries:
                    wheel.put(entry)  # one item each (written alone, as the harness writes them)
                slot = slot_of(T0)
                upto = upto_key(T0 + 59_000)
                key = {
                    "TableName": table,
                    "KeyConditionExpression": "#pk = :pk",
                    "ExpressionAttributeNames": {"#pk": "pk"},
                    "ExpressionAttributeValues": {":pk": {"S": partition(0, slot)}},
                }
                keys_only = {**key, "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"}}
                keys_only["ProjectionExpression"] = "#sk"
                taken = {e.key for e in entries}
                return key, {
                    "query_whole_ms": ours_ms(lambda: ddb.query(**key)),
                    "query_keys_only_ms": ours_ms(lambda: ddb.query(**keys_only)),
                    "load_decoded_ms": ours_ms(lambda: wheel.load(0, slot, "", upto)),
                    "load_all_taken_ms": ours_ms(lambda: wheel.load(0, slot, "", upto, taken)),
                }

            key: dict[str, Any] = {}
            for n in items:
                key, out["by_items"][str(n)] = window(n)
            out["fire_ms"] = fire_ms(session, ours_ms, repeats)
            out["query_empty_ms"] = ours_ms(
                lambda: ddb.query(**{**key, "ExpressionAttributeValues": {":pk": {"S": "none"}}}), repeats * 2
            )
            for row in out["by_items"].values():
                n_items = int(next(k for k, v in out["by_items"].items() if v is row))
                row["us_per_item_whole"] = round(
                    (row["query_whole_ms"] - out["query_empty_ms"]) * 1000 / n_items, 2
                )
                row["us_per_item_keys_only"] = round(
                    (row["query_keys_only_ms"] - out["query_empty_ms"]) * 1000 / n_items, 2
                )
    finally:
        BotocoreStubber.__call__ = stub  # type: ignore[method-assign]
    out["load_average_after"] = os.getloadavg()
    out["note"] = (
        "CPU of our process per call (thread time less moto's, the median of the repeats), real botocore clients as wiring.py makes "
        "them; items of ~100 B each (one entry per item); a window Query bills the same read units whether "
        "it returns whole items or their sort keys"
    )
    return out


def fire_ms(session: Any, ours_ms: Callable[..., float], repeats: int) -> float:
    """Our CPU for one schedule fire ahead of its time (services/schedules.py ``fire``: read the
    schedule, create the fire's task, send it, the transaction that moves the schedule on) over moto's
    tables as the platform makes them, each fire a different schedule's."""
    import dataclasses

    from taskplane import wiring
    from taskplane.domain.clock import FixedClock
    from taskplane.domain.schedules import ScheduleCreate
    from taskplane.local.resources import create_resources

    platform = wiring.build(create_resources(session), session=session)
    # (a fixed clock 10 s past a minute: no first fire is near enough to fire at its create)
    service = dataclasses.replace(platform.schedules, wakes=None, clock=FixedClock(T0 - T0 % 60_000 + 10_000))
    body = ScheduleCreate.model_validate(
        {"cron": "* * * * *", "task": {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}}}
    )
    entries = iter([service._entry(service.create("acme", body)) for _ in range(repeats + 1)])

    def fire() -> None:
        entry = next(entries)
        service.fire(entry, entry.due_ms - 350)

    return ours_ms(fire, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", default="120,400")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    result = run(tuple(int(n) for n in args.items.split(",")), args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tick_reads.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
