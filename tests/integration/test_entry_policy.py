# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""One target policy and one set of limits at every door work enters by (domain/entry.py).

Tasks, batches, schedule and trigger templates, workflow definitions, runs, resumes and redrives are
refused at the door when their target is off the tenant's allow-list; and because a list can shrink
after the work was accepted, the worker and the step function check again before each call: the
refusal is then recorded on the task (or node), never a silent drop and never a call.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

from taskplane import wiring
from taskplane.domain.wheel import WheelEntry

pytestmark = pytest.mark.integration

ALLOWED = {"type": "lambda", "function": "acme-orders"}
REFUSED = {"type": "lambda", "function": "billing-refund"}
ACME_ONLY = {"acme": ["lambda:acme-*"]}


def enforce(aws: Any, allowlists: dict[str, list[str]]) -> Any:
    """Rebuild the platform as a deploy with these allow-lists would (AWS defaults: deny the rest)."""
    settings = aws.settings.model_copy(
        update={"target_allowlists": allowlists, "targets_allowed_by_default": False}
    )
    platform = wiring.build(settings, session=aws.session, clock=aws.platform.tasks.clock)
    wiring.use(platform)
    aws.platform = platform
    return platform


def refused_field(reply: Any) -> str:
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "invalid_request"
    assert "allow-list" in reply.body["error"]["message"], reply.body
    return reply.body["error"]["details"][0]["field"]


def test_every_door_refuses_a_target_off_the_allow_list(aws, api):
    # Given acme may call only lambda:acme-*
    enforce(aws, ACME_ONLY)
    # When acme sends an off-list target through every door that takes one
    task = api("POST", "/v1/tasks", {"target": REFUSED})
    batch = api("POST", "/v1/tasks/batch", {"tasks": [{"target": ALLOWED}, {"target": REFUSED}]})
    schedule = api("POST", "/v1/schedules", {"cron": "0 * * * *", "task": {"target": REFUSED}})
    trigger = api(
        "POST", "/v1/triggers", {"event_pattern": {"source": ["shop"]}, "task": {"target": REFUSED}}
    )
    # Then each is a 400 naming the field where the target sits, and nothing was stored
    assert refused_field(task) == "target"
    assert refused_field(schedule) == "task.target"
    assert refused_field(trigger) == "task.target"
    assert batch.status == 200
    first, second = batch.body["results"]
    assert "task_id" in first and second["error"]["code"] == "invalid_request"
    assert api("GET", "/v1/schedules").body["items"] == []
    assert api("GET", "/v1/triggers").body["items"] == []
    # And another tenant, with no list of its own, may call nothing but builtins
    other = api("POST", "/v1/tasks", {"target": ALLOWED}, tenant="globex")
    assert refused_field(other) == "target"
    assert (
        api("POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}}, tenant="globex").status
        == 201
    )


def test_templates_share_one_payload_limit_and_tasks_keep_large_ones_in_the_bucket(aws, api):
    # Given a payload just over the 64 KiB a template (and a task's inline item) may hold
    big = {"blob": "x" * (64 * 1024)}
    # When it is sent as a schedule's template and as a task
    schedule = api(
        "POST", "/v1/schedules", {"cron": "0 * * * *", "task": {"target": ALLOWED, "payload": big}}
    )
    task = api("POST", "/v1/tasks", {"target": ALLOWED, "payload": big, "delay_ms": 60_000})
    # Then the template is 413 naming where the payload sits, and the task is accepted with its
    # payload kept in the bucket (a template is stored whole with its schedule, at every fire)
    assert schedule.status == 413, schedule.body
    assert schedule.body["error"]["details"][0] == {"field": "task.payload", "size": 65_547, "limit": 65_536}
    assert task.status == 201, task.body
    assert task.body["payload"] is None and task.body["payload_size"] == 65_547


def test_http_headers_are_bounded_for_every_template(aws, api):
    # Given 50 headers of 4 KiB each: once a 218 KB template that only failed when stored (503)
    headers = {f"x-h{i}": "v" * 4096 for i in range(50)}
    target = {"type": "http", "url": "https://api.example.com/x", "headers": headers}
    # When it is sent as a task, a schedule's template and a trigger's template
    replies = [
        api("POST", "/v1/tasks", {"target": target}),
        api("POST", "/v1/schedules", {"cron": "0 * * * *", "task": {"target": target}}),
        api("POST", "/v1/triggers", {"event_pattern": {"source": ["s"]}, "task": {"target": target}}),
    ]
    # Then each is a 400 naming the headers, never a 5xx
    for reply in replies:
        assert reply.status == 400, reply.body
        assert reply.body["error"]["details"][0]["field"].endswith("target.headers"), reply.body


def test_the_worker_refuses_a_target_the_list_no_longer_allows_and_records_it(aws, api, drain):
    # Given a delayed task and an hourly schedule, both accepted while their target was allowed
    enforce(aws, ACME_ONLY)
    task = api("POST", "/v1/tasks", {"target": ALLOWED, "delay_ms": 50})
    assert task.status == 201, task.body
    schedule = api("POST", "/v1/schedules", {"cron": "0 * * * *", "task": {"target": ALLOWED}})
    assert schedule.status == 201, schedule.body
    # When the list shrinks (a deploy), the task comes due and the schedule fires
    platform = enforce(aws, {"acme": ["lambda:acme-other-*"]})
    sid = schedule.body["schedule_id"]
    due = platform.schedules.get("acme", sid).next_fire_at
    platform.schedules.fire(
        WheelEntry(shard=0, due_ms=due, item_id=sid, tenant="acme", kind="schedule", lane="default"), due
    )
    time.sleep(0.06)
    fired = None
    for _ in range(40):
        drain()
        fired = platform.schedules.get("acme", sid).last_task_id
        states = [api("GET", f"/v1/tasks/{t}").body["state"] for t in (task.body["task_id"], fired) if t]
        if states == ["FAILED", "FAILED"]:
            break
        time.sleep(0.05)
    # Then both tasks ended FAILED with TargetRefused, without a call, and each has a dead letter
    for task_id in (task.body["task_id"], fired):
        body = api("GET", f"/v1/tasks/{task_id}").body
        assert body["state"] == "FAILED", body
        assert body["error"]["type"] == "TargetRefused", body["error"]
        assert "allow-list" in body["error"]["message"]
        assert body["attempts"] == 1
        assert any("not called" in (h["detail"] or "") for h in body["history"]), body["history"]
    letters = {d["task_id"] for d in api("GET", "/v1/dead-letters").body["items"]}
    assert {task.body["task_id"], fired} <= letters


def test_a_redrive_is_refused_when_the_target_left_the_list(aws, api, drain):
    # Given a task that failed for good while its target was allowed
    failing = {"target": ALLOWED, "retry": {"max_attempts": 1}}
    task_id = api("POST", "/v1/tasks", failing).body["task_id"]
    for _ in range(40):
        drain()
        if api("GET", f"/v1/tasks/{task_id}").body["state"] == "FAILED":
            break
        time.sleep(0.02)
    assert api("GET", f"/v1/tasks/{task_id}").body["state"] == "FAILED"
    # When the list no longer allows it and the dead letter is redriven
    enforce(aws, {"acme": ["lambda:acme-other-*"]})
    reply = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    # Then that item is refused, naming the target, and no fresh task exists
    assert reply.status == 200, reply.body
    (result,) = reply.body["results"]
    assert result["error"]["code"] == "invalid_request", result
    assert "allow-list" in result["error"]["message"]
    assert [t["task_id"] for t in api("GET", "/v1/tasks").body["items"]] == [task_id]


GATE = threading.Event()


def wait_for_gate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    assert GATE.wait(20), "the test never opened the gate"
    return {"ok": True}


def collect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"called": True}


FLOW = """
nodes:
  - {id: first, target: {type: lambda, function: acme-gate}}
  - {id: second, needs: [first], target: {type: lambda, function: acme-collect}}
"""


@pytest.mark.parametrize(
    "wf", [{"functions": {"acme-gate": wait_for_gate, "acme-collect": collect}}], indirect=True
)
def test_runs_resumes_and_each_node_check_the_policy_again(wf, wf_api):
    # Given a workflow whose nodes acme may call
    enforce(wf, {"acme": ["lambda:acme-*"]})
    assert put_yaml(wf_api, "flow", FLOW).status == 201
    GATE.clear()
    run_id = wf_api("POST", "/v1/workflows/flow/runs", {"input": {}}).body["run_id"]
    # When the list shrinks while the first node runs, and then the gate opens
    enforce(wf, {"acme": ["lambda:acme-gate"]})
    GATE.set()
    run = wait_run(wf_api, run_id)
    # Then the second node was refused before its call, recorded as TargetRefused, and the run failed
    assert run["state"] == "FAILED", run
    second = {n["id"]: n for n in run["nodes"]}["second"]
    assert second["state"] == "FAILED" and second["error"]["type"] == "TargetRefused", second
    # And a new run and a resume are refused at the door (400 naming the node's target)
    start = wf_api("POST", "/v1/workflows/flow/runs", {"input": {}})
    resume = wf_api("POST", f"/v1/runs/{run_id}/resume")
    for reply in (start, resume):
        assert reply.status == 400, reply.body
        assert reply.body["error"]["details"][0]["field"] == "nodes.1.target"
