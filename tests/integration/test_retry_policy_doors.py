# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""One retry policy, validated the same way at every door that takes one: tasks, batches, schedules,
triggers and workflow definitions (and so TaskFlow, which sends a definition); always a 400 naming
the field, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
from test_entry_policy import ACME_ONLY, ALLOWED, REFUSED, enforce
from workflow_fixtures import put_yaml, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

BAD = [
    ({"retry": {"breaker": {"error_rate": 1.5}}}, "retry.breaker.error_rate"),
    ({"retry": {"breaker": {"window_ms": 45_000}}}, "retry.breaker.window_ms"),
    ({"retry": {"breaker": {"window_ms": 1_500}}}, "retry.breaker.window_ms"),
    ({"retry": {"min_remaining_ms": -1}}, "retry.min_remaining_ms"),
    ({"retry": {"critical": "no"}}, "retry.critical"),
    ({"retry": {"fallback": {"type": "builtin", "name": "nope"}}}, "retry.fallback.name"),
    ({"timeout_s": "auto", "auto_timeout": {"floor_s": 60, "ceiling_s": 30}}, "auto_timeout"),
    ({"timeout_s": 30, "auto_timeout": {"k": 2}}, "auto_timeout"),
    ({"timeout_s": "soon"}, "timeout_s"),
    ({"timeout_s": "auto", "auto_timeout": {"k": 0.5}}, "auto_timeout.k"),
]


def field_of(reply: Any) -> str:
    assert reply.status == 400, reply.body
    return reply.body["error"]["details"][0]["field"]


@pytest.mark.parametrize(("extra", "field"), BAD, ids=[f for _, f in BAD])
def test_every_task_door_names_the_bad_field(aws, api, extra, field):
    body = {"target": ALLOWED, **extra}
    assert field_of(api("POST", "/v1/tasks", body)) == field
    assert field_of(api("POST", "/v1/schedules", {"cron": "0 * * * *", "task": body})) == f"task.{field}"
    trigger = {"event_pattern": {"source": ["shop"]}, "task": body}
    assert field_of(api("POST", "/v1/triggers", trigger)) == f"task.{field}"
    batch = api("POST", "/v1/tasks/batch", {"tasks": [body]})
    assert batch.status == 200 and batch.body["results"][0]["error"]["code"] == "invalid_request"


def test_a_fallback_off_the_allow_list_is_refused_at_every_task_door(aws, api):
    # Given acme may call only lambda:acme-*
    enforce(aws, ACME_ONLY)
    body = {"target": ALLOWED, "retry": {"fallback": REFUSED}}
    # When a task, a schedule, a trigger and a batch name an off-list fallback
    # Then each is a 400 naming where the fallback sits, and nothing is stored
    assert field_of(api("POST", "/v1/tasks", body)) == "retry.fallback"
    assert (
        field_of(api("POST", "/v1/schedules", {"cron": "0 * * * *", "task": body})) == "task.retry.fallback"
    )
    trigger = {"event_pattern": {"source": ["s"]}, "task": body}
    assert field_of(api("POST", "/v1/triggers", trigger)) == "task.retry.fallback"
    batch = api("POST", "/v1/tasks/batch", {"tasks": [body]}).body["results"][0]
    assert batch["error"]["details"][0]["field"] == "retry.fallback"
    # And an allowed fallback is accepted and shown
    ok = api(
        "POST",
        "/v1/tasks",
        {"target": ALLOWED, "retry": {"fallback": {"type": "lambda", "function": "acme-x"}}},
    )
    assert ok.status == 201 and ok.body["retry"]["fallback"] == {"type": "lambda", "function": "acme-x"}


def test_workflow_nodes_share_the_rules(wf, wf_api):
    # Given acme may call only builtins and lambda:acme-*
    from taskplane import wiring

    settings = wf.settings.model_copy(
        update={"target_allowlists": ACME_ONLY, "targets_allowed_by_default": False}
    )
    wiring.use(wiring.build(settings, session=wf.session))
    head = "nodes:\n  - id: a\n    target: {type: builtin, name: echo}\n"
    cases = [
        ("    retry: {fallback: {type: lambda, function: billing}}\n", "nodes.0.retry.fallback"),
        ("    retry: {breaker: {error_rate: 0}}\n", "nodes.0.retry.breaker.error_rate"),
        ("    timeout_s: auto\n    auto_timeout: {floor_s: 9, ceiling_s: 3}\n", "nodes.0.auto_timeout"),
        ("    timeout_s: 30\n    auto_timeout: {k: 2}\n", "nodes.0.auto_timeout"),
    ]
    for extra, field in cases:
        reply = put_yaml(wf_api, "w", head + extra)
        assert reply.status == 400, (extra, reply.body)
        assert reply.body["error"]["details"][0]["field"] == field, (extra, reply.body)
    defaults = "defaults: {timeout_s: auto, auto_timeout: {floor_s: 9, ceiling_s: 3}}\n" + head
    assert field_of(put_yaml(wf_api, "w", defaults)) == "defaults.auto_timeout"
    assert put_yaml(wf_api, "w", head + "    timeout_s: auto\n    retry: {critical: false}\n").status in (
        200,
        201,
    )


def test_a_redrive_is_refused_when_the_fallback_left_the_list(aws, api, drain):
    # Given a task that failed for good (its fallback called) while both targets were allowed
    import time

    body = {
        "target": ALLOWED,
        "retry": {"max_attempts": 1, "fallback": {"type": "lambda", "function": "acme-x"}},
    }
    task_id = api("POST", "/v1/tasks", body).body["task_id"]
    for _ in range(40):
        drain()
        if api("GET", f"/v1/tasks/{task_id}").body["state"] == "FAILED":
            break
        time.sleep(0.02)
    assert api("GET", f"/v1/tasks/{task_id}").body["state"] == "FAILED"
    # When the list keeps the target but no longer the fallback, and the dead letter is redriven
    enforce(aws, {"acme": ["lambda:acme-orders"]})
    reply = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    # Then that item is refused, naming the fallback, and no fresh task exists
    (result,) = reply.body["results"]
    assert result["error"]["code"] == "invalid_request", result
    assert "lambda:acme-x is not on this tenant's target allow-list" in result["error"]["message"], result
    assert [t["task_id"] for t in api("GET", "/v1/tasks").body["items"]] == [task_id]
