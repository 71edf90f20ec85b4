"""Triggers under moto: an EventBridge pattern starts a task from a template with the event as payload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane.domain.states import TaskState

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def put_event(
    aws: Any, source: str = "shop.orders", detail: dict | None = None, bus: str = "default"
) -> None:
    entry = {"Source": source, "DetailType": "OrderPlaced", "Detail": json.dumps(detail or {"order": 42})}
    resp = aws.client("events").put_events(Entries=[{**entry, "EventBusName": bus}])
    assert resp["FailedEntryCount"] == 0


def tasks_of(aws: Any, trigger_id: str, tenant: str = "acme") -> list[Any]:
    items, _ = aws.platform.tasks.list(tenant, limit=100)
    return [t for t in items if t.trigger_id == trigger_id]


def test_matching_event_starts_a_task_with_the_event_as_payload(aws, api, drain):
    # Given a trigger on orders from the shop
    trigger = api("POST", "/v1/triggers", {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO})
    assert trigger.status == 201, trigger.body
    tid = trigger.body["trigger_id"]
    # When one matching and one other event are put on the bus, and the lanes are drained
    put_event(aws, detail={"order": 42})
    put_event(aws, source="billing")
    drain()
    # Then exactly one task ran, its payload (and echo result) the whole event
    tasks = tasks_of(aws, tid)
    assert len(tasks) == 1
    task = tasks[0]
    assert task.state is TaskState.SUCCEEDED
    assert task.payload["detail"] == {"order": 42} and task.payload["source"] == "shop.orders"
    assert task.result == task.payload
    assert api("GET", f"/v1/tasks/{task.task_id}").body["trigger_id"] == tid


def test_the_same_event_delivered_twice_starts_one_task(aws, api, drain):
    # Given a trigger and one event whose lane message arrives twice
    tid = api("POST", "/v1/triggers", {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO}).body[
        "trigger_id"
    ]
    put_event(aws)
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    body = sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]
    sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody=body)
    # When everything is drained (the original becomes visible again later; two copies now)
    drain(rounds=2)
    # Then one task exists for that event
    assert len(tasks_of(aws, tid)) == 1


def test_priority_of_the_template_picks_the_lane(aws, api, drain):
    tid = api(
        "POST",
        "/v1/triggers",
        {"event_pattern": {"source": ["shop.orders"]}, "task": {**ECHO, "priority": "high"}},
    ).body["trigger_id"]
    put_event(aws)
    assert aws.queue_depth("high") == 1 and aws.queue_depth("default") == 0
    drain(lanes=("high",))
    assert [t.state for t in tasks_of(aws, tid)] == [TaskState.SUCCEEDED]


def test_delete_removes_the_rule(aws, api, drain):
    tid = api("POST", "/v1/triggers", {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO}).body[
        "trigger_id"
    ]
    rule = api("GET", f"/v1/triggers/{tid}").body["rule_name"]
    assert api("DELETE", f"/v1/triggers/{tid}").status == 204
    names = [r["Name"] for r in aws.client("events").list_rules()["Rules"]]
    assert rule not in names
    put_event(aws)
    drain()
    assert tasks_of(aws, tid) == []
    assert api("GET", f"/v1/triggers/{tid}").status == 404


def test_tenants_do_not_see_each_others_triggers(api):
    tid = api("POST", "/v1/triggers", {"event_pattern": {"source": ["x"]}, "task": ECHO}).body["trigger_id"]
    assert api("GET", f"/v1/triggers/{tid}", tenant="other").status == 404
    assert api("DELETE", f"/v1/triggers/{tid}", tenant="other").status == 404
    assert api("GET", "/v1/triggers", tenant="other").body["items"] == []
    assert [t["trigger_id"] for t in api("GET", "/v1/triggers").body["items"]] == [tid]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_pattern": {"source": "shop"}, "task": ECHO}, "event_pattern"),
        ({"event_pattern": {}, "task": ECHO}, "event_pattern"),
        ({"event_pattern": {"source": ["x"]}, "task": {**ECHO, "payload": 1}}, "task"),
        ({"event_pattern": {"source": ["x"]}, "task": {**ECHO, "delay_ms": 5}}, "task"),
        ({"event_pattern": {"source": ["x"]}, "bus": "nope", "task": ECHO}, "bus"),
        ({"event_pattern": "source", "task": ECHO}, "event_pattern"),
        ({"task": ECHO}, "event_pattern"),
    ],
)
def test_bad_triggers_are_400_naming_the_field(api, body, field):
    reply = api("POST", "/v1/triggers", body)
    assert reply.status == 400, reply.body
    assert any(d.get("field", "").startswith(field) for d in reply.body["error"]["details"]), reply.body
