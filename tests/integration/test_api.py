"""The api handler under moto through real-shaped REST proxy events: the HTTP contract of ARCHITECTURE §3."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from support import Reply, api_event

from taskplane.domain.clock import FixedClock

pytestmark = pytest.mark.integration

ECHO: dict[str, Any] = {"target": {"type": "builtin", "name": "echo"}, "payload": {"hello": "world"}}
RFC3339_UTC_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def task_body(**changes: Any) -> dict[str, Any]:
    """The echo example with some fields changed."""
    return {**ECHO, **changes}


def assert_error(reply: Reply, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The contract's error shape, and when ``field`` is given, details and message that name it."""
    assert reply.status == status, reply.body
    assert reply.headers.get("Content-Type") == "application/json"
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, reply.body
    error = reply.body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], list), error
    if field is not None:
        # Query parameters are reported as query.<name>.
        fields = [d.get("field") or "" for d in error["details"]]
        assert any(f == field or f.endswith("." + field) for f in fields), (field, error)
        assert field in error["message"], (field, error)
    return error


def submit(api: Any, body: Any = None, **kwargs: Any) -> dict[str, Any]:
    reply = api("POST", "/v1/tasks", ECHO if body is None else body, **kwargs)
    assert reply.status == 201, reply.body
    return reply.body


def list_ids(api: Any, tenant: str = "acme", **query: str) -> list[str]:
    reply = api("GET", "/v1/tasks", tenant=tenant, query={"limit": "500", **query})
    assert reply.status == 200, reply.body
    return [t["task_id"] for t in reply.body["items"]]


def parse_time(value: str) -> datetime:
    assert RFC3339_UTC_MS.fullmatch(value), value
    return datetime.fromisoformat(value)


# -- happy paths ---------------------------------------------------------------------------------
def test_echo_task_is_accepted_then_succeeds_with_its_payload(api, drain):
    # Given the contract's echo example
    # When it is submitted
    reply = api("POST", "/v1/tasks", ECHO)

    # Then it is accepted as PENDING with one history entry and RFC 3339 UTC times
    assert reply.status == 201, reply.body
    task = reply.body
    assert task["state"] == "PENDING"
    assert task["target"] == ECHO["target"] and task["payload"] == ECHO["payload"]
    assert [h["state"] for h in task["history"]] == ["PENDING"]
    assert parse_time(task["created_at"]) == parse_time(task["run_at"])
    parse_time(task["dispatched_at"])
    parse_time(task["history"][0]["at"])
    assert task["started_at"] is None and task["finished_at"] is None and task["result"] is None
    assert "tenant" not in task

    # When the worker drains the lanes
    drain()
    got = api("GET", f"/v1/tasks/{task['task_id']}")

    # Then the task succeeded, echoing its payload, through PENDING -> RUNNING -> SUCCEEDED
    assert got.status == 200, got.body
    done = got.body
    assert done["state"] == "SUCCEEDED"
    assert done["result"] == ECHO["payload"]
    assert [h["state"] for h in done["history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert done["attempts"] == 1
    assert parse_time(done["started_at"]) <= parse_time(done["finished_at"])
    for entry in done["history"]:
        parse_time(entry["at"])


def test_delay_in_the_future_is_scheduled(api):
    # Given a task that should start in a minute
    body = task_body(delay_ms=60_000)

    # When it is submitted
    task = submit(api, body)

    # Then it waits as SCHEDULED, due exactly delay_ms after it was created, not yet dispatched
    assert task["state"] == "SCHEDULED"
    assert [h["state"] for h in task["history"]] == ["SCHEDULED"]
    assert parse_time(task["run_at"]) - parse_time(task["created_at"]) == timedelta(minutes=1)
    assert task["dispatched_at"] is None


def test_health_needs_no_key(api):
    # Given no API key
    # When the health endpoint is called
    reply = api("GET", "/v1/health", tenant=None)

    # Then it answers 200
    assert reply.status == 200, reply.body
    assert reply.body == {"status": "ok"}


def test_openapi_document_describes_the_task_endpoints(api):
    # Given the API
    # When its OpenAPI document is fetched
    reply = api("GET", "/v1/openapi.json")

    # Then it is OpenAPI 3 with every task path and method
    assert reply.status == 200, reply.body
    doc = reply.body
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "post" in paths["/v1/tasks"] and "get" in paths["/v1/tasks"]
    assert "post" in paths["/v1/tasks/batch"]
    assert "get" in paths["/v1/tasks/{task_id}"]
    assert "post" in paths["/v1/tasks/{task_id}/cancel"]
    assert "/v1/health" in paths


def test_docs_page_is_html(api):
    # Given the API
    # When the docs page is fetched
    reply = api("GET", "/v1/docs")

    # Then it is a Swagger UI HTML page
    assert reply.status == 200
    assert reply.headers.get("Content-Type", "").startswith("text/html")
    assert isinstance(reply.body, str) and "<html" in reply.body.lower()


# -- idempotency ---------------------------------------------------------------------------------
def test_idempotency_key_header_replays_the_first_task(api, aws):
    # Given a task submitted with an Idempotency-Key header
    key = {"Idempotency-Key": "order-42"}
    first = api("POST", "/v1/tasks", ECHO, headers=key)
    assert first.status == 201, first.body

    # When the same body is sent again with the same key
    again = api("POST", "/v1/tasks", ECHO, headers=key)

    # Then the answer is 200 with the same task, and only one message went on the lane
    assert again.status == 200, again.body
    assert again.body["task_id"] == first.body["task_id"]
    assert aws.queue_depth() == 1
    assert list_ids(api) == [first.body["task_id"]]


def test_idempotency_key_header_with_another_body_conflicts(api, aws):
    # Given a task submitted with an Idempotency-Key header
    key = {"Idempotency-Key": "order-43"}
    assert api("POST", "/v1/tasks", ECHO, headers=key).status == 201

    # When another body is sent with the same key
    reply = api("POST", "/v1/tasks", task_body(payload={"hello": "moon"}), headers=key)

    # Then it is a 409 conflict and nothing new is queued
    assert_error(reply, 409, "conflict", "Idempotency-Key")
    assert aws.queue_depth() == 1


def test_idempotency_keys_are_per_tenant(api, aws):
    # Given tenant acme used a key
    key = {"Idempotency-Key": "shared-key"}
    mine = api("POST", "/v1/tasks", ECHO, headers=key)
    assert mine.status == 201

    # When another tenant uses the same key with the same body
    theirs = api("POST", "/v1/tasks", ECHO, headers=key, tenant="other")

    # Then that is an independent, new task
    assert theirs.status == 201, theirs.body
    assert theirs.body["task_id"] != mine.body["task_id"]
    assert aws.queue_depth() == 2
    assert api("GET", f"/v1/tasks/{theirs.body['task_id']}", tenant="acme").status == 404


def test_idempotency_key_in_the_body_works_like_the_header(api, aws):
    # Given a task submitted with idempotency_key in its body
    body = task_body(idempotency_key="body-key-1")
    first = api("POST", "/v1/tasks", body)
    assert first.status == 201, first.body

    # When the same body is sent again, then one with another payload and the same key
    again = api("POST", "/v1/tasks", body)
    other = api("POST", "/v1/tasks", {**body, "payload": {"hello": "moon"}})

    # Then the replay is 200 with the same task, the other body is a conflict, one message queued
    assert again.status == 200, again.body
    assert again.body["task_id"] == first.body["task_id"]
    assert_error(other, 409, "conflict")
    assert aws.queue_depth() == 1


# -- tenancy -------------------------------------------------------------------------------------
def test_another_tenant_cannot_see_or_cancel_a_task(api):
    # Given a scheduled task of tenant acme
    task = submit(api, task_body(delay_ms=60_000), tenant="acme")
    path = f"/v1/tasks/{task['task_id']}"

    # When tenant other reads it, cancels it and lists its tasks
    read = api("GET", path, tenant="other")
    cancel = api("POST", f"{path}/cancel", tenant="other")
    listed = list_ids(api, tenant="other")

    # Then it is 404 both times, absent from the list, and acme's task is untouched
    assert_error(read, 404, "not_found")
    assert_error(cancel, 404, "not_found")
    assert listed == []
    mine = api("GET", path, tenant="acme")
    assert mine.status == 200 and mine.body["state"] == "SCHEDULED"
    assert list_ids(api, tenant="acme") == [task["task_id"]]


# -- list ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("aws", [{"clock": FixedClock()}], indirect=True, ids=["fixed-clock"])
def test_list_pages_newest_first_through_the_cursor(api, aws):
    # Given seven tasks of acme, one millisecond apart, and one of another tenant
    clock = aws.platform.tasks.clock
    submit(api, tenant="other")
    created = []
    for n in range(7):
        clock.advance(1)
        created.append(submit(api, task_body(payload={"n": n}))["task_id"])

    # When the list is read three at a time, following next_cursor
    pages: list[list[str]] = []
    cursors: list[str | None] = []
    query = {"limit": "3"}
    for _ in range(4):
        reply = api("GET", "/v1/tasks", query=query)
        assert reply.status == 200, reply.body
        pages.append([t["task_id"] for t in reply.body["items"]])
        cursors.append(reply.body["next_cursor"])
        if reply.body["next_cursor"] is None:
            break
        query = {"limit": "3", "cursor": reply.body["next_cursor"]}

    # Then the pages hold 3, 3 and 1 of acme's tasks, newest first, and the last has no cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == created[::-1]
    assert cursors[-1] is None and all(c is not None for c in cursors[:-1])


def test_list_filters_by_state(api):
    # Given two tasks due now and two scheduled for later
    pending = [submit(api)["task_id"] for _ in range(2)]
    scheduled = [submit(api, task_body(delay_ms=60_000))["task_id"] for _ in range(2)]

    # When the list is filtered by state
    only_scheduled = api("GET", "/v1/tasks", query={"state": "SCHEDULED"})
    only_pending = list_ids(api, state="PENDING")

    # Then each filter returns exactly the tasks in that state
    assert only_scheduled.status == 200, only_scheduled.body
    assert sorted(t["task_id"] for t in only_scheduled.body["items"]) == sorted(scheduled)
    assert {t["state"] for t in only_scheduled.body["items"]} == {"SCHEDULED"}
    assert only_scheduled.body["next_cursor"] is None
    assert sorted(only_pending) == sorted(pending)


# -- cancel --------------------------------------------------------------------------------------
def test_cancel_a_scheduled_task_once(api):
    # Given a scheduled task
    task = submit(api, task_body(delay_ms=60_000))
    path = f"/v1/tasks/{task['task_id']}/cancel"

    # When it is cancelled
    reply = api("POST", path)

    # Then it is CANCELLED with a finish time, and GET agrees
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "CANCELLED"
    parse_time(reply.body["finished_at"])
    assert [h["state"] for h in reply.body["history"]] == ["SCHEDULED", "CANCELLED"]
    assert api("GET", f"/v1/tasks/{task['task_id']}").body["state"] == "CANCELLED"

    # When it is cancelled again
    again = api("POST", path)

    # Then that is a conflict
    assert_error(again, 409, "conflict")


def test_cancel_a_finished_task_conflicts(api, drain):
    # Given a task that already succeeded
    task = submit(api)
    drain()
    assert api("GET", f"/v1/tasks/{task['task_id']}").body["state"] == "SUCCEEDED"

    # When it is cancelled
    reply = api("POST", f"/v1/tasks/{task['task_id']}/cancel")

    # Then that is a conflict and the task keeps its outcome
    error = assert_error(reply, 409, "conflict")
    assert "SUCCEEDED" in error["message"]
    assert api("GET", f"/v1/tasks/{task['task_id']}").body["state"] == "SUCCEEDED"


# -- batch ---------------------------------------------------------------------------------------
def test_batch_answers_each_item_in_order(api, aws):
    # Given three valid tasks and an invalid one in third place
    items = [
        task_body(payload={"n": 0}),
        task_body(payload={"n": 1}),
        task_body(payload={"n": 2}, timeout_s=0),
        task_body(payload={"n": 3}),
    ]

    # When they are submitted as a batch
    reply = api("POST", "/v1/tasks/batch", {"tasks": items})

    # Then each is answered in order: the invalid one with an error naming timeout_s
    assert reply.status == 200, reply.body
    results = reply.body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    bad = results[2]
    assert "task_id" not in bad
    assert bad["error"]["code"] == "invalid_request"
    assert "timeout_s" in [d["field"] for d in bad["error"]["details"]]
    # And the valid ones exist with their own payloads, each queued once
    for n in (0, 1, 3):
        got = api("GET", f"/v1/tasks/{results[n]['task_id']}")
        assert got.status == 200, got.body
        assert got.body["payload"] == {"n": n}
    assert aws.queue_depth() == 3


def test_batch_item_with_an_oversized_payload_fails_alone(api):
    # Given a batch with a normal task and one whose payload is over the 5 MiB a request may carry
    items = [ECHO, task_body(payload="x" * (5 * 1024 * 1024 + 10))]

    # When it is submitted
    reply = api("POST", "/v1/tasks/batch", {"tasks": items})

    # Then only the big one fails, as payload_too_large
    assert reply.status == 200, reply.body
    first, second = reply.body["results"]
    assert api("GET", f"/v1/tasks/{first['task_id']}").status == 200
    assert "task_id" not in second
    assert second["error"]["code"] == "payload_too_large"
    assert second["error"]["details"][0]["field"] == "payload"


# -- one shared world: requests that create nothing ----------------------------------------------
# The ``api`` fixture builds a fresh moto world per test (~0.3 s); the tables below hold ~90 cases,
# so they share one. These tests stay at the end of the file: a per-test ``aws`` world must not start
# while the shared one is alive (moto worlds nest into one, and its tables already exist).
@pytest.fixture(scope="module")
def shared_api() -> Iterator[Callable[..., Reply]]:
    """Like ``api``, over one moto world for the whole module; ``event=`` sends a prepared event."""
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.local.resources import create_resources

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            platform = wiring.build(create_resources(session), session=session)
            handler = load_handler("api").lambda_handler

            def call(method: str = "GET", path: str = "/", body: Any = None, **kwargs: Any) -> Reply:
                event = kwargs.pop("event", None) or api_event(method, path, body, **kwargs)
                wiring.use(platform)
                response = handler(event, LocalContext(function_name="taskplane-api"))
                headers = dict(response.get("headers") or {})
                for name, values in (response.get("multiValueHeaders") or {}).items():
                    headers[name] = ", ".join(values)
                raw = response.get("body")
                try:
                    parsed = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    parsed = raw
                return Reply(response["statusCode"], parsed, headers)

            try:
                yield call
            finally:
                wiring.use(None)


TASK_ENDPOINTS = [
    pytest.param("POST", "/v1/tasks", ECHO, id="submit"),
    pytest.param("POST", "/v1/tasks/batch", {"tasks": [ECHO]}, id="batch"),
    pytest.param("GET", f"/v1/tasks/{UNKNOWN_ID}", None, id="get"),
    pytest.param("GET", "/v1/tasks", None, id="list"),
    pytest.param("POST", f"/v1/tasks/{UNKNOWN_ID}/cancel", None, id="cancel"),
]


@pytest.mark.parametrize(("method", "path", "body"), TASK_ENDPOINTS)
def test_task_endpoints_need_a_key(shared_api, method, path, body):
    # Given a well-formed request without an API key
    # When it is sent
    reply = shared_api(method, path, body, tenant=None)

    # Then it is 401 in the error shape
    assert_error(reply, 401, "unauthorized")


def _deep(levels: int) -> str:
    return '{"target":{"type":"builtin","name":"echo"},"payload":' + "[" * levels + "]" * levels + "}"


BAD_SUBMISSIONS = [
    # the body as a whole
    pytest.param({"raw_body": '{"target":'}, 400, "invalid_request", "body", id="malformed-json"),
    pytest.param({"raw_body": ""}, 400, "invalid_request", "body", id="empty-body"),
    pytest.param({"body": [ECHO]}, 400, "invalid_request", "body", id="body-is-a-list"),
    pytest.param({"body": "echo"}, 400, "invalid_request", "body", id="body-is-a-string"),
    pytest.param({"body": 42}, 400, "invalid_request", "body", id="body-is-a-number"),
    pytest.param({"raw_body": "null"}, 400, "invalid_request", "body", id="body-is-null"),
    pytest.param({"body": task_body(colour="red")}, 400, "invalid_request", "colour", id="unknown-field"),
    # target
    pytest.param({"body": {"payload": 1}}, 400, "invalid_request", "target", id="missing-target"),
    pytest.param(
        {"body": task_body(target="echo")}, 400, "invalid_request", "target", id="target-not-object"
    ),
    pytest.param(
        {"body": task_body(target={"type": "ftp"})},
        400,
        "invalid_request",
        "target",
        id="unknown-target-type",
    ),
    pytest.param(
        {"body": task_body(target={"type": "builtin", "name": "rm -rf"})},
        400,
        "invalid_request",
        "target.name",
        id="builtin-rm-rf",
    ),
    pytest.param(
        {"body": task_body(target={"type": "lambda", "function": "my function"})},
        400,
        "invalid_request",
        "target.function",
        id="lambda-name-with-spaces",
    ),
    pytest.param(
        {"body": task_body(target={"type": "http", "url": "ftp://x"})},
        400,
        "invalid_request",
        "target.url",
        id="http-ftp-url",
    ),
    pytest.param(
        {"body": task_body(target={"type": "http", "url": "not a url"})},
        400,
        "invalid_request",
        "target.url",
        id="http-not-a-url",
    ),
    # an http target the worker could never call (each was accepted, then broke or failed every attempt)
    pytest.param(
        {"body": task_body(target={"type": "http", "url": "http://127.0.0.1:99999999/"})},
        400,
        "invalid_request",
        "target.url",
        id="http-port-out-of-range",
    ),
    pytest.param(
        {"body": task_body(target={"type": "http", "url": "http://example.com:http/"})},
        400,
        "invalid_request",
        "target.url",
        id="http-port-not-a-number",
    ),
    pytest.param(
        {
            "body": task_body(
                target={"type": "http", "url": "http://x/", "headers": {"X": "a\r\nInjected: 1"}}
            )
        },
        400,
        "invalid_request",
        "target.headers",
        id="http-header-value-crlf",
    ),
    pytest.param(
        {"body": task_body(target={"type": "http", "url": "http://x/", "headers": {"Bad Name": "v"}})},
        400,
        "invalid_request",
        "target.headers",
        id="http-header-name-not-a-token",
    ),
    # start time
    pytest.param(
        {"body": task_body(run_at="2030-01-01T00:00:00Z", delay_ms=5)},
        400,
        "invalid_request",
        "delay_ms",
        id="run_at-and-delay_ms",
    ),
    pytest.param(
        {"body": task_body(run_at="2030-01-01T00:00:00")}, 400, "invalid_request", "run_at", id="run_at-naive"
    ),
    pytest.param({"body": task_body(run_at="yesterday")}, 400, "invalid_request", "run_at", id="run_at-word"),
    pytest.param(
        {"body": task_body(run_at="9999-12-31T23:59:59-14:00")},
        400,
        "invalid_request",
        "run_at",
        id="run_at-past-year-9999-in-utc",
    ),
    pytest.param(
        {"body": task_body(run_at="0001-01-01T00:00:00+14:00")},
        400,
        "invalid_request",
        "run_at",
        id="run_at-before-year-1-in-utc",
    ),
    pytest.param(
        {"body": task_body(run_at=(datetime.now().astimezone() + timedelta(days=400)).isoformat())},
        400,
        "invalid_request",
        "run_at",
        id="run_at-past-the-horizon",
    ),
    pytest.param(
        {"body": task_body(deadline="9999-12-31T23:59:59-14:00")},
        400,
        "invalid_request",
        "deadline",
        id="deadline-past-year-9999-in-utc",
    ),
    pytest.param(
        {"body": task_body(delay_ms=-1)}, 400, "invalid_request", "delay_ms", id="delay_ms-negative"
    ),
    pytest.param(
        {"body": task_body(delay_ms=10**12)}, 400, "invalid_request", "delay_ms", id="delay_ms-huge"
    ),
    pytest.param({"body": task_body(delay_ms=1.5)}, 400, "invalid_request", "delay_ms", id="delay_ms-float"),
    pytest.param(
        {"body": task_body(delay_ms="10")}, 400, "invalid_request", "delay_ms", id="delay_ms-string"
    ),
    # limits and options
    pytest.param({"body": task_body(timeout_s=0)}, 400, "invalid_request", "timeout_s", id="timeout_s-0"),
    pytest.param({"body": task_body(timeout_s=901)}, 400, "invalid_request", "timeout_s", id="timeout_s-901"),
    pytest.param(
        {"body": task_body(timeout_s=True)}, 400, "invalid_request", "timeout_s", id="timeout_s-bool"
    ),
    pytest.param(
        {"body": task_body(retry={"max_attempts": 0})},
        400,
        "invalid_request",
        "retry.max_attempts",
        id="retry-max_attempts-0",
    ),
    pytest.param(
        {"body": task_body(retry={"max_attempts": 1000})},
        400,
        "invalid_request",
        "retry.max_attempts",
        id="retry-max_attempts-1000",
    ),
    pytest.param(
        {"body": task_body(retry={"base_delay_ms": 5000, "max_delay_ms": 1000})},
        400,
        "invalid_request",
        "retry",
        id="retry-cap-below-base",
    ),
    pytest.param(
        {"body": task_body(priority="urgent")}, 400, "invalid_request", "priority", id="priority-urgent"
    ),
    pytest.param(
        {"body": task_body(labels={"team": 7})},
        400,
        "invalid_request",
        "labels.team",
        id="label-value-number",
    ),
    pytest.param(
        {"body": task_body(labels={f"k{i}": "v" for i in range(21)})},
        400,
        "invalid_request",
        "labels",
        id="21-labels",
    ),
    # payload
    pytest.param(
        {"body": task_body(payload="x" * (5 * 1024 * 1024 + 10))},
        413,
        "payload_too_large",
        "payload",
        id="payload-over-5mib",
    ),
    pytest.param({"raw_body": _deep(65)}, 400, "invalid_request", "payload", id="payload-nested-65-deep"),
    pytest.param({"raw_body": _deep(300)}, 400, "invalid_request", "payload", id="payload-nested-300-deep"),
    pytest.param({"raw_body": _deep(100_000)}, 400, "invalid_request", "body", id="body-nested-100k-deep"),
    pytest.param(
        {"raw_body": '{"target":{"type":"builtin","name":"echo"},"payload":NaN}'},
        400,
        "invalid_request",
        "body",
        id="payload-NaN",
    ),
    pytest.param(
        {"raw_body": '{"target":{"type":"builtin","name":"echo"},"payload":1e400}'},
        400,
        "invalid_request",
        "body",
        id="payload-number-overflows",
    ),
    pytest.param(
        {"raw_body": '{"target":{"type":"builtin","name":"echo"},"payload":' + "9" * 5000 + "}"},
        400,
        "invalid_request",
        "body",
        id="payload-5000-digit-integer",
    ),
    # headers
    pytest.param(
        {"body": ECHO, "headers": {"Idempotency-Key": "k" * 200}},
        400,
        "invalid_request",
        "Idempotency-Key",
        id="idempotency-key-200-chars",
    ),
    pytest.param(
        {"body": task_body(idempotency_key="k" * 200)},
        400,
        "invalid_request",
        "idempotency_key",
        id="idempotency_key-field-200-chars",
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status", "code", "field"), BAD_SUBMISSIONS)
def test_bad_submission_is_a_4xx_naming_the_problem(shared_api, request_kwargs, status, code, field):
    # Given a malformed or out-of-contract submission
    kwargs = dict(request_kwargs)
    body = kwargs.pop("body", None)

    # When it is posted
    reply = shared_api("POST", "/v1/tasks", body, **kwargs)

    # Then it is the expected 4xx in the error shape, naming the field at fault
    assert_error(reply, status, code, field)


def test_body_over_6_mb_is_413(shared_api):
    # Given a request body over Lambda's 6 MB limit
    raw = json.dumps(task_body(payload="x" * (6 * 1024 * 1024)))

    # When it is posted
    reply = shared_api("POST", "/v1/tasks", raw_body=raw)

    # Then it is 413 payload_too_large in the error shape
    error = assert_error(reply, 413, "payload_too_large")
    assert "body" in error["message"]


def test_body_that_is_not_utf8_is_400(shared_api):
    # Given bytes that are not UTF-8, which the (local) gateway forwards base64-encoded
    from taskplane.local.gateway import build_event

    headers = {"Content-Type": "application/json", "x-api-key": "key-acme"}
    event = build_event(
        "POST", "/v1/tasks", headers, b'{"payload":"\xff\xfe"}', {"key-acme": "acme"}, "127.0.0.1"
    )
    assert event["isBase64Encoded"] is True

    # When it is posted
    reply = shared_api(event=event)

    # Then it is a 400 about the body, not a crash
    assert_error(reply, 400, "invalid_request", "body")


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        pytest.param({"body": {"tasks": []}}, "tasks", id="empty-list"),
        pytest.param({"body": {"tasks": [ECHO] * 501}}, "tasks", id="501-items"),
        pytest.param({"body": {"tasks": ECHO}}, "tasks", id="tasks-not-a-list"),
        pytest.param({"body": [ECHO]}, "body", id="body-is-a-list"),
        pytest.param({"raw_body": '{"tasks":['}, "body", id="malformed-json"),
    ],
)
def test_bad_batch_is_400(shared_api, request_kwargs, field):
    # Given a batch request that is wrong as a whole
    kwargs = dict(request_kwargs)
    body = kwargs.pop("body", None)

    # When it is posted
    reply = shared_api("POST", "/v1/tasks/batch", body, **kwargs)

    # Then it is a 400 naming the field
    assert_error(reply, 400, "invalid_request", field)


def test_batch_items_that_are_not_objects_fail_one_by_one(shared_api):
    # Given a batch whose items are not task objects
    items: list[Any] = [1, "echo", None, [ECHO], True]

    # When it is posted
    reply = shared_api("POST", "/v1/tasks/batch", {"tasks": items})

    # Then every item is answered in order with its own validation error and no task
    assert reply.status == 200, reply.body
    results = reply.body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    for result in results:
        assert "task_id" not in result
        assert result["error"]["code"] == "invalid_request"
        assert result["error"]["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param({"state": "NOPE"}, "state", id="unknown-state"),
        pytest.param({"state": "pending"}, "state", id="state-lowercase"),
        pytest.param({"limit": "0"}, "limit", id="limit-0"),
        pytest.param({"limit": "501"}, "limit", id="limit-501"),
        pytest.param({"limit": "abc"}, "limit", id="limit-abc"),
        pytest.param({"cursor": "garbage"}, "cursor", id="cursor-garbage"),
        pytest.param({"cursor": "x" * 300}, "cursor", id="cursor-300-chars"),
    ],
)
def test_bad_list_query_is_400(shared_api, query, field):
    # Given a list query with a bad parameter
    # When it is sent
    reply = shared_api("GET", "/v1/tasks", query=query)

    # Then it is a 400 naming the parameter
    assert_error(reply, 400, "invalid_request", field)


@pytest.mark.parametrize("action", ["", "/cancel"], ids=["get", "cancel"])
@pytest.mark.parametrize(
    "task_id",
    [
        "..",
        "%2e%2e",
        "a" * 300,
        "ÄÖÜ",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "01arz3ndektsv4rrffq69g5fav",
        "' OR 1=1 --",
    ],
    ids=["dot-dot", "encoded-dot-dot", "300-chars", "umlauts", "valid-shape-unknown", "lowercase", "sql"],
)
def test_strange_task_ids_are_404_or_400(shared_api, task_id, action):
    # Given a task id that names no task of this tenant
    method = "POST" if action else "GET"

    # When it is read or cancelled
    reply = shared_api(method, f"/v1/tasks/{task_id}{action}")

    # Then the answer is a 404 (or a 400 for an impossible id) in the error shape
    assert reply.status in (400, 404), reply.body
    assert_error(reply, reply.status, "not_found" if reply.status == 404 else "invalid_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v1/nope", id="unknown-route"),
        pytest.param("GET", "/v2/tasks", id="unknown-version"),
        pytest.param("DELETE", "/v1/tasks", id="wrong-method"),
        pytest.param("PUT", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV", id="wrong-method-on-a-task"),
    ],
)
def test_unknown_route_or_method_is_in_the_error_shape(shared_api, method, path):
    # Given a route or method the API does not have
    # When it is called
    reply = shared_api(method, path)

    # Then it is 404 (or 405) in the error shape
    assert reply.status in (404, 405), reply.body
    assert_error(reply, reply.status, "not_found" if reply.status == 404 else "method_not_allowed")
