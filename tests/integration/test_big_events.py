# ruff: noqa: F811 - the fixtures are imported from test_wheel and test_windows
"""Events too big for a window item, at every door an event comes in by (domain/windows.py
``INLINE_EVENT_BYTES``, ``MAX_ITEM_EVENT_BYTES``).

A window kept each event inline in a DynamoDB item (400 KB at most); an event from an external bus can
be up to 1 MiB, so one over the item failed every delivery until SQS moved it to the DLQ. Now an event
over the inline limit is kept in the bucket (as a large task payload is) and read back when its window
closes; without a bucket, one no item can hold is dead-lettered at once, saying why. An event too large
for a lane message (1 MiB with its envelope) never reaches the worker: EventBridge puts it in the
triggers' DLQ (tests/integration/test_trigger_dead_letters.py).

moto refuses an item over 400 KB as DynamoDB does (ValidationException), so an event kept inline as
before fails here the way it failed in AWS; the tests also check the size of what the store was given.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane import wiring
from taskplane.domain.states import TaskState
from taskplane.domain.windows import EVENT_REF, INLINE_EVENT_BYTES, MAX_ITEM_EVENT_BYTES
from tests.integration.test_wheel import START, SimClock, on_sim_clock, sim  # noqa: F401
from tests.integration.test_windows import (  # noqa: F401
    drain,
    feed_worker,
    full,
    make_trigger,
    run_tick,
    tasks_of,
)

pytestmark = pytest.mark.integration

ITEM_LIMIT = 400 * 1024
BATCH = {"max_events": 10, "window_ms": 1000, "key": "$.detail.user"}


def event_of(
    size: int, event_id: str = "big-1", user: str = "u1", tenant: str | None = "acme"
) -> dict[str, Any]:
    """An EventBridge event of ``size`` bytes of compact JSON (ASCII)."""
    detail: dict[str, Any] = {"user": user, "pad": ""}
    if tenant is not None:
        detail["taskplane_tenant"] = tenant
    event = {
        "version": "0",
        "id": event_id,
        "detail-type": "click",
        "source": "shop.web",
        "account": "123456789012",
        "time": "2026-12-07T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    detail["pad"] = "x" * (size - len(json.dumps(event, separators=(",", ":"))))
    return event


def deliver(aws: Any, trigger_id: str, event: dict[str, Any], tenant: str = "acme") -> None:
    """Put on the lane what the trigger's rule puts there (its input template around the event)."""
    body = json.dumps({"trigger_id": trigger_id, "tenant": tenant, "event": event}, separators=(",", ":"))
    aws.client("sqs").send_message(QueueUrl=aws.settings.queue_urls["default"], MessageBody=body)


def window_items(aws: Any, tenant: str, trigger_id: str) -> list[dict[str, Any]]:
    items = aws.client("dynamodb").scan(TableName=aws.settings.tasks_table)["Items"]
    return [
        i
        for i in items
        if i["pk"]["S"].startswith(f"{tenant}#win#{trigger_id}#") and i["sk"]["S"].startswith("e#")
    ]


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, near enough: names and string values in UTF-8."""
    return sum(len(k.encode()) + len(json.dumps(v).encode()) for k, v in item.items())


# -- a window keeps an event of any size EventBridge delivers --------------------------------------


@on_sim_clock()
def test_an_external_event_over_a_dynamodb_item_is_kept_in_the_bucket_until_its_window_closes(
    aws, sim, api, drain
):
    # Given a batch trigger, and an event of 900 KB (an external bus's EventBridge events go up to
    # 1 MiB; a DynamoDB item holds 400 KB) as its rule puts it on the lane
    tid = make_trigger(api, batch=BATCH)
    big = event_of(900 * 1024)
    deliver(aws, tid, big)
    # When the worker takes it (one delivery, no failure) and the window closes
    (response,) = drain()
    assert response == {"batchItemFailures": []}
    # Then its window item holds where it is, well within an item
    (item,) = window_items(aws, "acme", tid)
    stored = json.loads(item["doc"]["S"])
    assert list(stored) == [EVENT_REF] and stored[EVENT_REF]["size"] == 900 * 1024
    assert item_bytes(item) < 2048
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # And its task got the whole event back (its payload through the bucket) and ran
    (task,) = tasks_of(aws, tid)
    assert task.state is TaskState.SUCCEEDED
    assert full(aws, task).payload["events"] == [big]


@on_sim_clock()
def test_a_debounce_keeps_a_large_last_event_and_small_ones_stay_inline(aws, sim, api, drain):
    tid = make_trigger(api, debounce={"window_ms": 500, "key": "$.detail.user"})
    small = event_of(INLINE_EVENT_BYTES, event_id="small")
    deliver(aws, tid, small)
    drain()
    (item,) = window_items(aws, "acme", tid)
    assert json.loads(item["doc"]["S"]) == small  # at the limit: inline, as before
    big = event_of(INLINE_EVENT_BYTES + 1, event_id="big")
    deliver(aws, tid, big)
    drain()
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    (task,) = tasks_of(aws, tid)
    assert full(aws, task).payload == big


@on_sim_clock()
def test_the_largest_event_post_v1_events_takes_reaches_a_window_and_a_plain_trigger(aws, sim, api, drain):
    # Given a windowed and a plain trigger on the same events
    windowed = make_trigger(api, batch=BATCH)
    plain = make_trigger(api)
    # When acme publishes an event with the largest detail POST /v1/events takes (64 KB)
    from taskplane.domain.events import MAX_DETAIL_BYTES

    pad = "x" * (MAX_DETAIL_BYTES - len('{"user":"u1","pad":"","taskplane_tenant":"acme"}'))
    reply = api(
        "POST",
        "/v1/events",
        {"events": [{"source": "shop.web", "detail_type": "click", "detail": {"user": "u1", "pad": pad}}]},
    )
    assert reply.status == 200 and "event_id" in reply.body["results"][0], reply.body
    drain(rounds=2)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # Then both started their task with the whole event, and both ran
    (from_window,) = tasks_of(aws, windowed)
    (from_event,) = tasks_of(aws, plain)
    assert from_window.state is TaskState.SUCCEEDED and from_event.state is TaskState.SUCCEEDED
    assert full(aws, from_window).payload["events"][0]["detail"]["pad"] == pad
    assert full(aws, from_event).payload["detail"]["pad"] == pad
    assert from_event.payload_ref is not None  # over the inline limit: in the bucket


@on_sim_clock()
def test_an_eventbridge_target_s_large_event_reaches_a_window(aws, sim, api, drain):
    # Given a windowed trigger, and a task whose eventbridge target publishes its 150 KB payload
    tid = make_trigger(api, batch=BATCH)
    pad = "y" * (150 * 1024)
    reply = api(
        "POST",
        "/v1/tasks",
        {
            "target": {
                "type": "eventbridge",
                "bus": "taskplane",
                "source": "shop.web",
                "detail_type": "click",
            },
            "payload": {"user": "u1", "pad": pad},
        },
    )
    assert reply.status == 201, reply.body
    # When the task runs (its event goes through the bus and the rule to the lane) and the window closes
    drain(rounds=3)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # Then the window's task has the event, whole
    (task,) = tasks_of(aws, tid)
    (event,) = full(aws, task).payload["events"]
    assert event["detail"]["payload"]["pad"] == pad


def test_a_plain_trigger_s_event_over_a_dynamodb_item_becomes_a_task_with_its_payload_in_the_bucket(
    aws, api, drain
):
    tid = make_trigger(api)
    big = event_of(900 * 1024)
    deliver(aws, tid, big)
    drain(rounds=2)
    (task,) = tasks_of(aws, tid)
    assert task.state is TaskState.SUCCEEDED and task.payload_ref is not None
    assert full(aws, task).payload == big


# -- without a bucket, an event no item can hold is dead-lettered, once, naming why ------------------


@pytest.fixture
def no_bucket(aws: Any) -> Any:
    platform = wiring.build(
        aws.settings.model_copy(update={"blob_bucket": ""}),
        session=aws.session,
        clock=aws.platform.tasks.clock,
    )
    wiring.use(platform)
    yield platform
    wiring.use(aws.platform)


@pytest.mark.parametrize("mode", ["plain", "batch"])
def test_without_a_bucket_an_event_no_item_holds_goes_to_the_dlq_at_once_saying_why(
    aws, api, no_bucket, mode
):
    tid = make_trigger(api, **({"batch": BATCH} if mode == "batch" else {}))
    deliver(aws, tid, event_of(MAX_ITEM_EVENT_BYTES + 1))
    # When the worker gets it: the delivery succeeds (no retry can ever store it) ...
    (response,) = feed_worker(aws, None)
    assert response == {"batchItemFailures": []}
    assert aws.queue_depth("default") == 0
    # ... and the lane message is in the DLQ as it came, with the reason
    sqs = aws.client("sqs")
    (dead,) = sqs.receive_message(QueueUrl=aws.settings.dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(dead["Body"])["trigger_id"] == tid
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert str(MAX_ITEM_EVENT_BYTES) in reason and "no bucket" in reason
    # and nothing was started or stored
    assert tasks_of(aws, tid) == [] and window_items(aws, "acme", tid) == []
    assert ITEM_LIMIT > MAX_ITEM_EVENT_BYTES


@pytest.mark.parametrize("mode", ["plain", "batch"])
def test_without_a_bucket_an_event_an_item_holds_is_still_taken(aws, api, no_bucket, mode):
    tid = make_trigger(api, **({"batch": BATCH} if mode == "batch" else {}))
    deliver(aws, tid, event_of(MAX_ITEM_EVENT_BYTES))
    (response,) = feed_worker(aws, None)
    assert response == {"batchItemFailures": []}
    if mode == "batch":
        (item,) = window_items(aws, "acme", tid)
        assert item_bytes(item) < ITEM_LIMIT
    else:
        (task,) = tasks_of(aws, tid)
        assert task.payload_ref is None


# -- an event nested deeper than a task's payload may be ---------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """An event whose JSON nests ``depth`` levels (the event object itself is one)."""
    inner: Any = "leaf"
    for _ in range(depth - 2):
        inner = {"n": inner}
    event = event_of(300)
    event["detail"]["deep"] = inner  # event (1) > detail (2) > deep (3) ...
    return event


@pytest.mark.parametrize(("mode", "depth"), [("plain", 65), ("batch", 63), ("debounce", 65)])
def test_an_event_deeper_than_a_task_payload_is_dead_lettered_once_naming_why(aws, api, mode, depth):
    from taskplane.domain.models import MAX_PAYLOAD_DEPTH, payload_depth

    spec = {
        "plain": {},
        "batch": {"batch": BATCH},
        "debounce": {"debounce": {"window_ms": 500, "key": "$.detail.user"}},
    }
    tid = make_trigger(api, **spec[mode])
    event = nested(depth)
    assert payload_depth(event) == depth
    # (a batch's task carries the event two levels down: {"events": [event]})
    deliver(aws, tid, event)
    (response,) = feed_worker(aws, None)
    assert response == {"batchItemFailures": []}  # no retry can ever make its task
    (dead,) = aws.client("sqs").receive_message(QueueUrl=aws.settings.dlq_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert f"at most {MAX_PAYLOAD_DEPTH}" in dead["MessageAttributes"]["reason"]["StringValue"]
    assert tasks_of(aws, tid) == [] and window_items(aws, "acme", tid) == []


@pytest.mark.parametrize(("mode", "depth"), [("plain", 64), ("batch", 62), ("debounce", 64)])
@on_sim_clock()
def test_an_event_as_deep_as_a_task_payload_may_be_still_starts_its_task(aws, sim, api, drain, mode, depth):
    spec = {
        "plain": {},
        "batch": {"batch": BATCH},
        "debounce": {"debounce": {"window_ms": 500, "key": "$.detail.user"}},
    }
    tid = make_trigger(api, **spec[mode])
    deliver(aws, tid, nested(depth))
    drain(rounds=2)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    (task,) = tasks_of(aws, tid)
    assert task.state is TaskState.SUCCEEDED
