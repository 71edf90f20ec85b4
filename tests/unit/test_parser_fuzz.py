"""Hypothesis on the two parsers that read untrusted text: workflow YAML/JSON and task bodies.

Whatever comes in, the answer is a parsed value or the platform's own InvalidRequest (a 400) or a
pydantic ValidationError naming fields (a 400 at the edge): never another exception (a 5xx).
"""

from __future__ import annotations

import contextlib
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskplane.api.common import parse_json
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.models import TaskSubmit
from taskplane.domain.workflow import parse_workflow

pytestmark = pytest.mark.unit
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
task_keys = st.sampled_from(
    [
        "target",
        "payload",
        "run_at",
        "delay_ms",
        "timeout_s",
        "retry",
        "priority",
        "labels",
        "deadline",
        "idempotency_key",
    ]
)
target_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["lambda", "http", "sqs", "eventbridge", "builtin", "nope"])},
    optional={
        "function": json_values,
        "url": st.text(max_size=30) | json_values,
        "name": json_values,
        "queue_url": json_values,
    },
)
task_bodies = st.dictionaries(task_keys, json_values | target_like, max_size=6)


@FUZZ
@given(body=task_bodies | json_values)
def test_task_body_parser_answers_or_names_the_bad_field(body):
    # Given any JSON value as a task body / When it is parsed
    try:
        TaskSubmit.model_validate(body)
    except ValidationError as exc:
        # Then a refusal names where it is wrong
        assert all(err.get("loc") is not None for err in exc.errors())


@FUZZ
@given(text=st.text(max_size=200))
def test_request_text_parser_never_crashes(text):
    # Given any request body text / When it is read as JSON / Then it is an object or a JSONDecodeError
    with contextlib.suppress(json.JSONDecodeError):
        assert isinstance(parse_json(text), dict)


nodes = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=0, max_size=6), "target": target_like},
        optional={
            "needs": st.lists(st.text(max_size=6), max_size=3),
            "payload": json_values,
            "timeout_s": json_values,
        },
    ),
    max_size=5,
)
documents = st.fixed_dictionaries(
    {"nodes": nodes},
    optional={
        "name": st.text(max_size=10),
        "on_failure": st.text(max_size=10),
        "timeout_s": json_values,
        "defaults": json_values,
    },
)


@FUZZ
@given(doc=documents, as_yaml=st.booleans())
def test_workflow_parser_accepts_or_refuses_with_invalid_request(doc, as_yaml):
    # Given a workflow document, well-formed or not, as YAML or JSON text
    text = yaml.safe_dump(doc) if as_yaml else json.dumps(doc)
    # When it is parsed / Then it is a workflow or an InvalidRequest, nothing else
    try:
        parse_workflow(text, name="wf", content_type=None if as_yaml else "application/json")
    except InvalidRequest as exc:
        assert exc.message


@FUZZ
@given(text=st.text(max_size=300))
def test_workflow_parser_survives_arbitrary_text(text):
    # Given arbitrary text (YAML tags, anchors, tabs, control characters...) / Then only InvalidRequest
    with contextlib.suppress(InvalidRequest):
        parse_workflow(text, name="wf")
