"""The task body contract (ARCHITECTURE.md §3), the task entity and its API resource."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskplane.domain.models import (
    MAX_DELAY_MS,
    HistoryEntry,
    Task,
    TaskErrorInfo,
    TaskSubmit,
    new_task,
    payload_size,
)
from taskplane.domain.retry import RetryPolicy
from taskplane.domain.states import TaskState

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00.000Z
ECHO = {"type": "builtin", "name": "echo"}
README_EXAMPLE = {"target": {"type": "builtin", "name": "echo"}, "payload": {"hello": "world"}}
RFC3339_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def submit(**fields: Any) -> TaskSubmit:
    """Validate a body the way the API sees it: parsed JSON, so strings stay strings."""
    return TaskSubmit.model_validate(json.loads(json.dumps({"target": ECHO, **fields})))


def error_locs(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        TaskSubmit.model_validate(body)
    return [tuple(e["loc"]) for e in info.value.errors()]


# -- accepted bodies -----------------------------------------------------------------------------
def test_readme_example_with_defaults() -> None:
    # Given the README's example body
    # When validating it
    body = TaskSubmit.model_validate(README_EXAMPLE)
    # Then it is accepted with the documented defaults
    assert body.target.model_dump() == {"type": "builtin", "name": "echo"}
    assert body.payload == {"hello": "world"}
    assert body.timeout_s == 300
    assert body.priority == "default"
    assert body.retry == RetryPolicy()
    assert body.retry.to_api() == {
        "max_attempts": 3,
        "base_delay_ms": 1000,
        "max_delay_ms": 300_000,
        "jitter": "full",
        "critical": True,
        "min_remaining_ms": 200,
    }
    assert body.labels == {}
    assert body.run_at is None and body.delay_ms is None and body.deadline is None
    assert body.due_ms(NOW) == NOW


def test_readme_example_from_json_text() -> None:
    # Given the README example as raw JSON text
    # When validating it in JSON mode
    body = TaskSubmit.model_validate_json(json.dumps(README_EXAMPLE))
    # Then it gives the same model as the parsed dict
    assert body == TaskSubmit.model_validate(README_EXAMPLE)


@pytest.mark.parametrize(
    "target",
    [
        {"type": "lambda", "function": "my-fn"},
        {"type": "lambda", "function": "arn:aws:lambda:eu-west-1:123456789012:function:my-fn:$LATEST"},
        {"type": "http", "url": "https://example.com/hook", "method": "PUT", "headers": {"x-a": "1"}},
        {"type": "http", "url": "http://localhost:8080/x"},
        {"type": "sqs", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"},
        {"type": "eventbridge", "bus": "b", "source": "s", "detail_type": "d"},
        {"type": "eventbridge"},
        {"type": "builtin", "name": "sleep"},
        {"type": "builtin", "name": "fail"},
    ],
)
def test_every_target_type_is_accepted(target: dict[str, Any]) -> None:
    # Given a well-formed target of each documented type
    # When validating a body with it
    body = TaskSubmit.model_validate({"target": target})
    # Then it is accepted with its type kept
    assert body.target.type == target["type"]


def test_full_body_is_accepted() -> None:
    # Given every optional field set to a valid value
    body = submit(
        payload=[1, "two", None],
        run_at="2026-01-01T01:00:00+01:00",
        timeout_s=900,
        retry={"max_attempts": 5, "base_delay_ms": 10, "max_delay_ms": 20, "jitter": "none"},
        priority="high",
        labels={f"k{i}": "v" for i in range(20)},
        deadline="2026-01-02T00:00:00Z",
        idempotency_key="abc",
    )
    # When reading it back
    # Then the values are kept, and run_at with an offset is the same instant in UTC
    assert body.due_ms(NOW + 123) == NOW
    assert body.retry.max_attempts == 5
    assert len(body.labels) == 20


# -- rejected bodies -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param(
            {"target": ECHO, "run_at": "2026-01-01T00:00:00Z", "delay_ms": 10},
            ("delay_ms",),
            id="run_at-and-delay_ms",
        ),
        pytest.param({"target": ECHO, "run_at": "2026-01-01T00:00:00"}, ("run_at",), id="naive-run_at"),
        pytest.param({"target": ECHO, "run_at": "tomorrow"}, ("run_at",), id="run_at-not-a-time"),
        pytest.param({"target": ECHO, "deadline": "2026-01-01T00:00:00"}, ("deadline",), id="naive-deadline"),
        pytest.param({"target": ECHO, "delay_ms": -1}, ("delay_ms",), id="negative-delay"),
        pytest.param({"target": ECHO, "delay_ms": MAX_DELAY_MS + 1}, ("delay_ms",), id="delay-too-large"),
        pytest.param({"target": ECHO, "delay_ms": "10"}, ("delay_ms",), id="delay-string"),
        pytest.param({"target": ECHO, "timeout_s": 0}, ("timeout_s",), id="timeout-0"),
        pytest.param({"target": ECHO, "timeout_s": 901}, ("timeout_s",), id="timeout-901"),
        pytest.param({"target": ECHO, "timeout_s": "30"}, ("timeout_s",), id="timeout-string"),
        pytest.param({"target": ECHO, "timeout_s": True}, ("timeout_s",), id="timeout-bool"),
        pytest.param({"target": ECHO, "timeout_s": 30.5}, ("timeout_s",), id="timeout-float"),
        pytest.param({"target": {"type": "smtp", "to": "a@b"}}, ("target",), id="unknown-target-type"),
        pytest.param({"target": {"name": "echo"}}, ("target",), id="target-without-type"),
        pytest.param({"target": "echo"}, ("target",), id="target-not-an-object"),
        pytest.param({"payload": {"a": 1}}, ("target",), id="missing-target"),
        pytest.param(
            {"target": {"type": "http", "url": "ftp://example.com/x"}},
            ("target", "http", "url"),
            id="http-ftp-url",
        ),
        pytest.param(
            {"target": {"type": "http", "url": "/hooks/x"}},
            ("target", "http", "url"),
            id="http-relative-url",
        ),
        pytest.param(
            {"target": {"type": "http", "url": "https://example.com", "method": "TRACE"}},
            ("target", "http", "method"),
            id="http-bad-method",
        ),
        pytest.param(
            {"target": {"type": "lambda", "function": "my function"}},
            ("target", "lambda", "function"),
            id="lambda-name-with-spaces",
        ),
        pytest.param(
            {"target": {"type": "builtin", "name": "rm"}}, ("target", "builtin", "name"), id="unknown-builtin"
        ),
        pytest.param(
            {"target": {"type": "builtin", "name": "echo", "extra": 1}},
            ("target", "builtin", "extra"),
            id="unknown-target-field",
        ),
        pytest.param({"target": ECHO, "colour": "red"}, ("colour",), id="unknown-top-level-field"),
        pytest.param({"target": ECHO, "priority": "urgent"}, ("priority",), id="priority-urgent"),
        pytest.param({"target": ECHO, "labels": {"team": 1}}, ("labels", "team"), id="label-int-value"),
        pytest.param({"target": ECHO, "labels": {"team": None}}, ("labels", "team"), id="label-null-value"),
        pytest.param({"target": ECHO, "labels": {"team": ["a"]}}, ("labels", "team"), id="label-list-value"),
        pytest.param(
            {"target": ECHO, "labels": {f"k{i}": "v" for i in range(21)}}, ("labels",), id="21-labels"
        ),
        pytest.param({"target": ECHO, "labels": ["a"]}, ("labels",), id="labels-not-a-map"),
        pytest.param(
            {"target": ECHO, "retry": {"max_attempts": True}}, ("retry", "max_attempts"), id="retry-bool"
        ),
        pytest.param(
            {"target": ECHO, "retry": {"base_delay_ms": 10, "max_delay_ms": 1}}, ("retry",), id="retry-cap"
        ),
        pytest.param({"target": ECHO, "idempotency_key": ""}, ("idempotency_key",), id="empty-idem-key"),
    ],
)
def test_invalid_bodies_name_the_bad_field(body: dict[str, Any], loc: tuple[Any, ...]) -> None:
    # Given a body with one bad field
    # When validating it
    locs = error_locs(body)
    # Then it is refused, and the error's location names that field
    assert loc in locs, locs
    assert all(located[: len(loc)] == loc for located in locs), locs


def test_run_at_and_delay_ms_error_says_why() -> None:
    # Given a body with both start times
    # When validating it
    with pytest.raises(ValidationError) as info:
        TaskSubmit.model_validate({"target": ECHO, "run_at": "2026-01-01T00:00:00Z", "delay_ms": 0})
    # Then the message names both fields
    message = info.value.errors()[0]["msg"]
    assert "run_at" in message and "delay_ms" in message


# -- new_task ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "state", "run_at"),
    [
        ({}, TaskState.PENDING, NOW),
        ({"delay_ms": 0}, TaskState.PENDING, NOW),
        ({"delay_ms": 1}, TaskState.SCHEDULED, NOW + 1),
        ({"delay_ms": 60_000}, TaskState.SCHEDULED, NOW + 60_000),
        ({"run_at": "2026-01-01T00:00:00.000Z"}, TaskState.PENDING, NOW),
        ({"run_at": "2025-12-31T23:00:00Z"}, TaskState.PENDING, NOW - 3_600_000),
        ({"run_at": "2026-01-01T00:00:00.001Z"}, TaskState.SCHEDULED, NOW + 1),
        ({"run_at": "2026-01-01T05:30:00+05:30"}, TaskState.PENDING, NOW),
        ({"run_at": "2026-01-01T06:30:00+05:30"}, TaskState.SCHEDULED, NOW + 3_600_000),
    ],
)
def test_new_task_state_follows_due_time(fields: dict[str, Any], state: TaskState, run_at: int) -> None:
    # Given a body due now, in the past or in the future
    body = submit(**fields)
    # When turning it into a task
    task = new_task(body, task_id="T1", tenant="acme", now_ms=NOW)
    # Then it is PENDING when due, SCHEDULED otherwise, with one history entry for the submission
    assert task.state is state
    assert task.run_at == run_at
    assert task.created_at == NOW
    assert task.attempts == 0
    assert task.history == [HistoryEntry(state=state, at=NOW, detail="submitted")]


def test_new_task_copies_the_body() -> None:
    # Given a body with every field the entity keeps
    body = submit(
        target={"type": "http", "url": "https://example.com/x"},
        payload={"n": 1},
        timeout_s=30,
        retry={"max_attempts": 2},
        priority="low",
        labels={"team": "core"},
        deadline="2026-01-01T01:00:00Z",
        idempotency_key="key-1",
    )
    # When turning it into a task
    task = new_task(body, task_id="T1", tenant="acme", now_ms=NOW)
    # Then the entity carries them, the target as a plain dict and the deadline in ms
    assert task.task_id == "T1" and task.tenant == "acme"
    assert task.target == {"type": "http", "url": "https://example.com/x", "method": "POST", "headers": {}}
    assert task.target_type == "http"
    assert task.payload == {"n": 1}
    assert task.timeout_s == 30
    assert task.retry.max_attempts == 2
    assert task.priority == "low"
    assert task.labels == {"team": "core"}
    assert task.deadline == NOW + 3_600_000
    assert task.idempotency_key == "key-1"


# -- to_api --------------------------------------------------------------------------------------
def test_to_api_formats_times_and_hides_the_tenant() -> None:
    # Given a task that ran, failed once and succeeded, with times that have milliseconds
    task = Task(
        task_id="T1",
        tenant="acme",
        state=TaskState.SUCCEEDED,
        target=ECHO,
        payload={"hello": "world"},
        run_at=NOW + 7,
        created_at=NOW,
        dispatched_at=NOW + 7,
        started_at=NOW + 10,
        finished_at=NOW + 1_234,
        attempts=2,
        deadline=NOW + 86_400_000,
        result={"ok": True},
        error=TaskErrorInfo(type="Boom", message="first try"),
        history=[
            HistoryEntry(state=TaskState.PENDING, at=NOW, detail="submitted"),
            HistoryEntry(state=TaskState.RUNNING, at=NOW + 10),
            HistoryEntry(state=TaskState.SUCCEEDED, at=NOW + 1_234),
        ],
    )
    # When rendering the API resource
    api = task.to_api()
    # Then no tenant is shown, times are RFC 3339 UTC with three millisecond digits and a Z
    assert "tenant" not in api
    assert "tenant" not in json.dumps(api)
    assert api["run_at"] == "2026-01-01T00:00:00.007Z"
    assert api["created_at"] == "2026-01-01T00:00:00.000Z"
    assert api["started_at"] == "2026-01-01T00:00:00.010Z"
    assert api["finished_at"] == "2026-01-01T00:00:01.234Z"
    assert api["deadline"] == "2026-01-02T00:00:00.000Z"
    for key in ("run_at", "created_at", "dispatched_at", "started_at", "finished_at", "deadline"):
        assert RFC3339_MS_Z.match(api[key]), key
    assert api["next_attempt_at"] is None
    # And the rest of the resource is there, history included, in order
    assert api["task_id"] == "T1"
    assert api["state"] == "SUCCEEDED"
    assert api["attempts"] == 2
    assert api["result"] == {"ok": True}
    assert api["error"] == {"type": "Boom", "message": "first try"}
    assert api["history"] == [
        {"state": "PENDING", "at": "2026-01-01T00:00:00.000Z", "detail": "submitted"},
        {"state": "RUNNING", "at": "2026-01-01T00:00:00.010Z", "detail": None},
        {"state": "SUCCEEDED", "at": "2026-01-01T00:00:01.234Z", "detail": None},
    ]
    # And it is plain JSON
    assert json.loads(json.dumps(api)) == api


def test_to_api_of_a_new_task() -> None:
    # Given a freshly submitted task
    task = new_task(submit(delay_ms=1500), task_id="T1", tenant="acme", now_ms=NOW)
    # When rendering the API resource
    api = task.to_api()
    # Then the unset times are null and the one history entry is there
    assert api["state"] == "SCHEDULED"
    assert api["run_at"] == "2026-01-01T00:00:01.500Z"
    assert api["dispatched_at"] is None and api["started_at"] is None and api["finished_at"] is None
    assert api["error"] is None
    assert api["history"] == [{"state": "SCHEDULED", "at": "2026-01-01T00:00:00.000Z", "detail": "submitted"}]
    assert "tenant" not in api


# -- payload_size --------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


@PROPERTY
@given(json_values)
def test_payload_size_is_compact_utf8_json_length(payload: Any) -> None:
    # Given any JSON value
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    # When measuring it, directly, after a JSON round trip, and after validation as a task payload
    size = payload_size(payload)
    # Then every measure is the UTF-8 length of the compact JSON text
    assert size == len(text.encode("utf-8"))
    assert payload_size(json.loads(text)) == size
    assert payload_size(TaskSubmit.model_validate({"target": ECHO, "payload": payload}).payload) == size


@pytest.mark.parametrize(
    ("payload", "size"),
    [
        (None, 4),
        ({}, 2),
        ({"hello": "world"}, 17),
        ([1, 2], 5),
        ("é", 4),
        ("€", 5),
        ("😀", 6),
    ],
)
def test_payload_size_examples(payload: Any, size: int) -> None:
    # Given a small payload
    # When measuring it
    # Then multi-byte characters count as their UTF-8 bytes, not as escapes
    assert payload_size(payload) == size


def test_payload_size_of_a_lone_surrogate_from_json() -> None:
    # Given a payload whose JSON carries a lone surrogate escape (valid JSON text, not valid UTF-8)
    payload = json.loads('{"s":"\\ud800"}')
    # When measuring it
    # Then it is measured (each lone surrogate as 3 bytes), not raised as an encoding error
    assert payload_size(payload) == len('{"s":""}') + 3
    assert payload_size(TaskSubmit.model_validate({"target": ECHO, "payload": payload}).payload) == 11
