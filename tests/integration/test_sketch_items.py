"""The DynamoDB layout of duration sketches (adapters/latency.py): every item stays under 1 KB, so
every write is one write unit, and a read asks only for the parts that exist."""

from __future__ import annotations

import math
from typing import Any

from taskplane.adapters.latency import MAX_ITEM_BYTES, PART_BUCKETS, LatencyStore
from taskplane.domain.adaptive import bucket_of


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules for what these items hold (strings, numbers, number sets)."""
    size = 0
    for name, value in item.items():
        ((kind, v),) = value.items()
        size += len(name.encode())
        if kind == "S":
            size += len(v.encode())
        elif kind == "N":
            size += _number_size(v)
        elif kind == "NS":
            size += sum(_number_size(e) for e in v)
        else:  # pragma: no cover - the sketch items hold nothing else
            raise AssertionError(kind)
    return size


class Recording:
    """The DynamoDB client, counting writes and the keys each read asks for."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.writes = 0
        self.keys_read: list[int] = []

    def update_item(self, **kwargs: Any) -> Any:
        self.writes += 1
        return self._client.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.keys_read.append(sum(len(t["Keys"]) for t in kwargs["RequestItems"].values()))
        return self._client.batch_get_item(**kwargs)


def sketch_items(aws: Any) -> list[dict[str, Any]]:
    items = aws.client("dynamodb").scan(TableName=aws.settings.control_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("sketch")]


def test_a_minute_spread_over_every_bucket_stays_under_1_kb_per_item(aws):
    # Given a tenant and a target with the longest names, and a minute whose durations fill every
    # bucket from 1 ms to 15 minutes with the largest counts the layout is sized for, from two writers
    client = Recording(aws.client("dynamodb"))
    store = LatencyStore(aws.settings.control_table, client)  # type: ignore[arg-type]
    tenant, target = "t" * 64, "lambda:" + "f" * 505
    top = bucket_of(900_000.0)
    store.add(tenant, target, 60_000, {b: 10**10 - 1 for b in range(top + 1)}, 10**10)
    LatencyStore(aws.settings.control_table, client).add(  # type: ignore[arg-type]
        tenant, target, 60_000, {b: 1 for b in range(0, top + 1, 3)}, 10**10
    )
    # Then every item (each part, and the target's list of parts) is under 1 KB: one WRU per write
    items = sketch_items(aws)
    parts = math.ceil((top + 1) / PART_BUCKETS)
    assert len(items) == parts + 1
    assert max(item_size(i) for i in items) <= MAX_ITEM_BYTES <= 1024
    # And each writer wrote each part once, and the part list once (the second: its parts were new
    # to it, not to the table)
    assert client.writes == 2 * (parts + 1)


def test_a_narrow_target_writes_one_part_and_a_read_asks_only_for_what_exists(aws):
    # Given a target whose durations fall in one part, written in two minutes
    client = Recording(aws.client("dynamodb"))
    store = LatencyStore(aws.settings.control_table, client)  # type: ignore[arg-type]
    counts = {bucket_of(ms): 1 for ms in (120.0, 130.0, 150.0)}
    assert store.add("acme", "http:a:", 60_000, counts, 10**10) == 2  # the part list, then the part
    assert store.add("acme", "http:a:", 120_000, counts, 10**10) == 1  # the part: its list knows it
    # When a five-minute window is read
    got = store.read_many("acme", {"http:a:": [0, 60_000, 120_000, 180_000, 240_000, 300_000]})
    # Then the two minutes come back, and the reads asked for the part list, then one part per minute
    assert got == {"http:a:": [counts, counts]}
    assert client.keys_read == [1, 6]
    # And a target never measured costs one key and no second read
    client.keys_read.clear()
    assert store.read_many("acme", {"http:none:": [60_000]}) == {"http:none:": []}
    assert client.keys_read == [1]
