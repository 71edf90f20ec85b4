"""A task item stays within DynamoDB's 400 KB whatever script its text is in (quotas on paper).

The API limits a payload, a result, labels and a target in UTF-8 bytes (what DynamoDB bills and
limits); the item must hold them as that many bytes, not as ``\\uXXXX`` escapes that grow an emoji
from 4 bytes to 12.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":  # 3 bytes, and 1 more per element
        return 3 + sum(1 + _value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(e) for k, e in v.items())
    raise AssertionError(kind)


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules (attribute names and values, UTF-8)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


EMOJI = "\U0001f600"  # 4 bytes of UTF-8; 12 as a JSON escape pair


def stored_item(aws: Any, task_id: str) -> dict[str, Any]:
    items = aws.client("dynamodb").scan(TableName=aws.settings.tasks_table)["Items"]
    (item,) = [i for i in items if i["sk"]["S"] == task_id and "state" in i]
    return item


def test_an_emoji_payload_at_the_limit_is_stored_as_its_bytes_and_its_result_is_kept(aws, api, drain):
    # Given the largest inline payload the API takes (64 KiB of UTF-8), all emoji, with the longest
    # labels (20 keys of 64 and values of 256 characters, emoji too), sent to echo (result = payload)
    payload = {"s": EMOJI * (16 * 1024 - 4)}
    labels = {f"{i:02d}" + EMOJI * 62: EMOJI * 256 for i in range(20)}
    reply = api(
        "POST",
        "/v1/tasks",
        {"target": {"type": "builtin", "name": "echo"}, "payload": payload, "labels": labels},
    )
    assert reply.status == 201, str(reply.body)[:300]
    task_id = reply.body["task_id"]
    # Then the payload is stored as its UTF-8 bytes
    stored = stored_item(aws, task_id)
    assert len(stored["payload"]["S"].encode("utf-8")) == len(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    )
    # When it runs
    responses = drain()
    # Then its one attempt succeeds in one delivery, the result kept beside the payload, and the item
    # (payload + result + labels + history) is within DynamoDB's 400 KB
    assert responses == [{"batchItemFailures": []}], responses
    task = api("GET", f"/v1/tasks/{task_id}").body
    assert task["state"] == "SUCCEEDED" and task["attempts"] == 1
    assert task["result"] == payload
    assert item_size(stored_item(aws, task_id)) < 400 * 1024


def test_a_schedule_whose_template_is_at_every_limit_is_stored(aws, api):
    # Given a schedule's task template at the API's limits, all in 4-byte characters: a 64 KiB
    # payload, the longest labels, and an http target and fallback with 16 KiB of headers each
    headers = {f"x-h{i:02d}": EMOJI * 1000 for i in range(4)}
    target = {"type": "http", "url": "https://example.com/" + EMOJI * 400, "headers": headers}
    template = {
        "target": target,
        "payload": {"s": EMOJI * (16 * 1024 - 4)},
        "labels": {f"{i:02d}" + EMOJI * 62: EMOJI * 256 for i in range(20)},
        "retry": {"fallback": target},
    }
    # When it is created / Then it is stored (not a 5xx from an item past 400 KB) and reads back whole
    reply = api("POST", "/v1/schedules", {"cron": "0 0 * * *", "task": template})
    assert reply.status == 201, str(reply.body)[:300]
    stored = api("GET", f"/v1/schedules/{reply.body['schedule_id']}").body
    assert stored["task"]["payload"] == template["payload"] and stored["task"]["labels"] == template["labels"]
    items = aws.client("dynamodb").scan(TableName=aws.settings.schedules_table)["Items"]
    (item,) = [i for i in items if "cron" in i]
    # (as UTF-8 it is about a third of the 379 KB it took as ASCII escapes, a hair under the limit)
    assert item_size(item) < 160 * 1024, item_size(item)


def test_a_task_at_every_limit_through_100_failed_attempts_stays_within_400_kb(aws, api, drain):
    # Given a task at the API's limits in 4-byte characters (payload, labels, a target and a fallback
    # with 16 KiB of headers each), 100 attempts without delay, whose target fails every time with the
    # longest error type and message a failure keeps, and whose fallback answers the largest result kept
    from taskplane.adapters.targets import TargetFailure
    from taskplane.services.fallback import FALLBACK_RESULT_BYTES

    class Failing:
        calls = 0

        def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **_: Any) -> Any:
            if envelope.get("fallback"):
                return {"s": EMOJI * (FALLBACK_RESULT_BYTES // 4 - 4)}
            Failing.calls += 1
            raise TargetFailure("E" + EMOJI * 300, EMOJI * 3000, retryable=True)

    aws.platform.executor.runners = Failing()
    headers = {f"x-h{i:02d}": EMOJI * 1000 for i in range(4)}
    target = {"type": "http", "url": "https://example.com/" + EMOJI * 400, "headers": headers}
    body = {
        "target": target,
        "payload": {"s": EMOJI * (16 * 1024 - 4)},
        "labels": {f"{i:02d}" + EMOJI * 62: EMOJI * 256 for i in range(20)},
        "retry": {"max_attempts": 100, "base_delay_ms": 0, "max_delay_ms": 0, "fallback": target},
    }
    reply = api("POST", "/v1/tasks", body)
    assert reply.status == 201, str(reply.body)[:300]
    task_id = reply.body["task_id"]
    # When it runs to its end
    for _ in range(300):
        if api("GET", f"/v1/tasks/{task_id}").body["state"] == "FAILED":
            break
        drain()
    task = api("GET", f"/v1/tasks/{task_id}").body
    # Then every attempt and the fallback are recorded on the one item, within DynamoDB's 400 KB
    assert task["state"] == "FAILED", task["state"]
    assert task["attempts"] == 100 and len(task["history"]) >= 200
    assert task["fallback"]["state"] == "SUCCEEDED"
    size = item_size(stored_item(aws, task_id))
    assert size < 400 * 1024, size  # 299 KB measured (a third of it the 100 attempts' history)
