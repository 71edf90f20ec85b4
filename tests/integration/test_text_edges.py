"""Text at the API's edge: lone UTF-16 surrogates and duplicate JSON keys are refused by path at every
door, and whatever is already stored (or arrives from outside) never breaks a read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import Reply

pytestmark = pytest.mark.integration

ECHO = '{"type":"builtin","name":"echo"}'


def assert_refused(reply: Reply, field: str, kind: str = "invalid_unicode") -> dict[str, Any]:
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert error["code"] == "invalid_request", error
    assert [d["field"] for d in error["details"]] == [field], error
    assert error["details"][0]["type"] == kind, error
    assert field in error["message"], error
    # The answer itself is valid text: the surrogate is spelt as an escape, never sent raw.
    json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
    return error


SURROGATE_BODIES = [
    pytest.param(
        "/v1/tasks",
        '{"target":@E,"payload":{"\\ud800":1}}'.replace("@E", ECHO),
        "payload.\\ud800",
        id="payload-key",
    ),
    pytest.param(
        "/v1/tasks",
        '{"target":@E,"payload":{"a":"x\\udfff"}}'.replace("@E", ECHO),
        "payload.a",
        id="payload-value",
    ),
    pytest.param(
        "/v1/tasks",
        '{"target":@E,"payload":[1,["\\ud83d"]]}'.replace("@E", ECHO),
        "payload.1.0",
        id="payload-in-a-list",
    ),
    pytest.param(
        "/v1/tasks",
        '{"target":@E,"labels":{"\\udc00":"v"}}'.replace("@E", ECHO),
        "labels.\\udc00",
        id="label-key",
    ),
    pytest.param(
        "/v1/tasks",
        '{"target":@E,"labels":{"env":"\\ud800"}}'.replace("@E", ECHO),
        "labels.env",
        id="label-value",
    ),
    pytest.param(
        "/v1/tasks",
        '{"target":{"type":"http","url":"https://example.com/","headers":{"x-k":"\\ud800"}}}',
        "target.headers.x-k",
        id="http-header-value",
    ),
    pytest.param(
        "/v1/tasks/batch",
        '{"tasks":[{"target":@E},{"target":@E,"payload":{"k":"\\ud800"}}]}'.replace("@E", ECHO),
        "tasks.1.payload.k",
        id="batch-item",
    ),
    pytest.param(
        "/v1/schedules",
        '{"cron":"* * * * *","task":{"target":@E,"payload":{"\\ud800":0}}}'.replace("@E", ECHO),
        "task.payload.\\ud800",
        id="schedule-template",
    ),
    pytest.param(
        "/v1/triggers",
        '{"event_pattern":{"source":["\\ud800"]},"task":{"target":@E}}'.replace("@E", ECHO),
        "event_pattern.source.0",
        id="trigger-pattern",
    ),
    pytest.param("/v1/workflows/flow/runs", '{"input":{"order":"\\udbff"}}', "input.order", id="run-input"),
    pytest.param("/v1/dead-letters/redrive", '{"ids":["\\ud800"]}', "ids.0", id="redrive-ids"),
]


@pytest.mark.parametrize(("path", "raw", "field"), SURROGATE_BODIES)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_naming_its_path(api, path, raw, field):
    # Given a body whose JSON spells a lone UTF-16 surrogate somewhere
    # When it is posted
    reply = api("POST", path, raw_body=raw, headers={"Content-Type": "application/json"})
    # Then it is a 400 naming the key or value at fault, and nothing was stored
    assert_refused(reply, field)
    assert api("GET", "/v1/tasks").body["items"] == []
    assert api("GET", "/v1/schedules").body["items"] == []


@pytest.mark.parametrize(
    ("content_type", "raw", "field", "kind"),
    [
        pytest.param(
            "application/yaml",
            'nodes:\n  - id: a\n    target: {type: builtin, name: echo}\n    payload: {k: "\\ud800"}\n',
            "nodes.0.payload.k",
            "invalid_unicode",
            id="yaml-value",
        ),
        pytest.param(
            "application/yaml",
            'nodes:\n  - id: a\n    target: {type: builtin, name: echo}\n    payload: {"\\udc00": 1}\n',
            "nodes.0.payload.\\udc00",
            "invalid_unicode",
            id="yaml-key",
        ),
        pytest.param(
            "application/json",
            '{"nodes":[{"id":"a","target":@E,"payload":{"k":"\\ud800"}}]}'.replace("@E", ECHO),
            "nodes.0.payload.k",
            "invalid_unicode",
            id="json-value",
        ),
        pytest.param(
            "application/json",
            '{"nodes":[{"id":"a","target":@E,"target":{"type":"builtin","name":"fail"}}]}'.replace(
                "@E", ECHO
            ),
            "nodes.0.target",
            "duplicate_key",
            id="json-duplicate-key",
        ),
    ],
)
def test_a_workflow_definition_is_held_to_the_same_text_rules(api, content_type, raw, field, kind):
    # Given a workflow definition with a lone surrogate or a key given twice
    # When it is published
    reply = api("PUT", "/v1/workflows/flow", raw_body=raw, headers={"Content-Type": content_type})
    # Then it is a 400 naming the path, and no workflow exists
    assert_refused(reply, field, kind)
    assert api("GET", "/v1/workflows/flow").status == 404


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(
            '{"target":@E,"target":{"type":"builtin","name":"fail"}}'.replace("@E", ECHO),
            "target",
            id="top-level",
        ),
        pytest.param(
            '{"target":@E,"payload":{"a":{"b":1,"b":2}}}'.replace("@E", ECHO), "payload.a.b", id="nested"
        ),
        pytest.param(
            '{"target":@E,"payload":[{"k":1},{"k":1,"k":1}]}'.replace("@E", ECHO),
            "payload.1.k",
            id="in-a-list",
        ),
        pytest.param(
            '{"target":@E,"labels":{"env":"a","env":"b"}}'.replace("@E", ECHO), "labels.env", id="labels"
        ),
    ],
)
def test_a_key_given_twice_is_a_400_naming_it(api, raw, field):
    # Given a body naming the same key twice in one object (json.loads would keep the last one)
    # When it is posted
    reply = api("POST", "/v1/tasks", raw_body=raw)
    # Then it is a 400 naming the key's path, and no task was made
    assert_refused(reply, field, "duplicate_key")
    assert api("GET", "/v1/tasks").body["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("POST", "/v1/tasks", {"headers": {"x-env": "canary\ud800"}}, "header.x-env"),
        ("GET", "/v1/tasks", {"query": {"cursor": "\udfff"}}, "query.cursor"),
        ("GET", "/v1/tasks/\ud800", {}, "path"),
    ],
)
def test_a_lone_surrogate_outside_the_body_is_a_400_naming_where(api, method, path, kwargs, field):
    # Given a request whose header, query or path (as API Gateway would hand it over) holds a surrogate
    body = {"target": {"type": "builtin", "name": "echo"}} if method == "POST" else None
    # When it is sent / Then it is a 400 naming where
    assert_refused(api(method, path, body, **kwargs), field)


def test_reads_answer_valid_text_whatever_is_stored(aws, api):
    # Given a task stored with lone surrogates in its target, payload and labels (the fields
    # kept as JSON text, where an escape survives storage), the way a record from outside (an event's
    # detail, a record written before input was checked) could hold them
    from taskplane.domain.models import Task
    from taskplane.domain.states import TaskState

    now = aws.platform.tasks.clock.now_ms()
    task = Task(
        task_id="01HZZZZZZZZZZZZZZZZZZZZZZZ",
        tenant="acme",
        state=TaskState.FAILED,
        target={"type": "http", "url": "https://example.com/", "headers": {"x-k": "\udbff"}},
        payload={"\ud800": 1, "detail": ["a\udfffb"]},
        labels={"env": "x\udc00"},
        run_at=now,
        created_at=now,
    )
    aws.platform.tasks.store.create(task)
    # When the tenant lists its tasks and reads that one
    listed = api("GET", "/v1/tasks")
    one = api("GET", f"/v1/tasks/{task.task_id}")
    # Then both answer 200 with U+FFFD in place of each surrogate, and the rest intact
    assert listed.status == 200, listed.body
    assert one.status == 200, one.body
    (item,) = listed.body["items"]
    for view in (item, one.body):
        assert view["payload"] == {"\ufffd": 1, "detail": ["a\ufffdb"]}
        assert view["labels"] == {"env": "x\ufffd"}
        assert view["target"]["headers"] == {"x-k": "\ufffd"}
    # And the dashboard's figures for the tenant still answer
    assert api("GET", "/v1/stats").status == 200
