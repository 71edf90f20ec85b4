"""Trace identity (domain/tracecontext.py), the lane message's traceparent, and the metric stages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from taskplane.adapters.queues import LaneMessage, parse_body
from taskplane.domain.tracecontext import (
    TraceParent,
    child_span_id,
    format_traceparent,
    parse_traceparent,
    run_trace,
    sampled,
    task_trace,
)
from taskplane.observability import METRIC_STAGES, metric_attributes

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ids_128 = st.integers(min_value=1, max_value=2**128 - 1)
ids_64 = st.integers(min_value=1, max_value=2**64 - 1)


@given(ids_128, ids_64, st.booleans())
def test_a_traceparent_reads_back_as_written(trace_id, span_id, is_sampled):
    text = format_traceparent(trace_id, span_id, sampled=is_sampled)
    assert len(text) == 55 and text == text.lower()
    assert parse_traceparent(text) == TraceParent(trace_id, span_id, is_sampled)


@pytest.mark.parametrize(
    "text",
    [
        None,
        42,
        "",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has four fields
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short span id
        "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" + "x" * 600,
    ],
)
def test_what_is_not_a_traceparent_is_refused(text):
    assert parse_traceparent(text) is None


def test_a_later_version_may_carry_more_fields():
    parsed = parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-more")
    assert parsed == TraceParent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False)


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_trace_ids_are_stable_valid_and_kept_apart(tenant, item, other_tenant):
    ids = task_trace(tenant, item)
    assert ids == task_trace(tenant, item)  # every function finds the same trace
    assert 0 < ids.trace_id < 2**128 and 0 < ids.root_span_id < 2**64
    assert run_trace(tenant, item) != ids  # a run and a task with the same id are apart
    if other_tenant != tenant:
        assert task_trace(other_tenant, item) != ids
    assert child_span_id(ids, "exec/1") != child_span_id(ids, "exec/2")


@given(ids_128, st.sampled_from([0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.999, 1.0]))
def test_sampling_is_the_sdk_trace_id_ratio_rule(trace_id, ratio):
    # The derived parents the tick and the worker build must agree with the SDK's own root decision.
    sdk = TraceIdRatioBased(ratio).should_sample(None, trace_id, "x").decision.is_sampled()
    assert sampled(trace_id, ratio) == sdk


def test_a_ratio_keeps_about_that_share_of_tasks():
    kept = sum(sampled(task_trace("acme", f"task-{i}").trace_id, 0.1) for i in range(20_000))
    assert 1_800 < kept < 2_200


# -- the lane message -------------------------------------------------------------------------------
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_lane_message_carries_its_traceparent_and_reads_it_back():
    message = LaneMessage(tenant="acme", task_id="T1", attempt=2, tp=TP)
    assert '"tp":"' + TP + '"' in message.body()
    assert parse_body(message.body()) == LaneMessage(tenant="acme", task_id="T1", attempt=2, tp=TP)


def test_a_message_from_before_tracing_and_one_with_a_bad_traceparent_are_still_deliveries():
    old = '{"v":1,"tenant":"acme","task_id":"T1","attempt":1,"state":"PENDING"}'
    assert parse_body(old) == LaneMessage(tenant="acme", task_id="T1", attempt=1)
    for bad in ('"nope"', "17", "null", '{"a":1}', '"' + TP.upper() + '"'):
        body = old[:-1] + f',"tp":{bad}}}'
        assert parse_body(body) == LaneMessage(tenant="acme", task_id="T1", attempt=1)


def test_a_message_without_traceparent_is_written_as_before():
    assert "tp" not in LaneMessage(tenant="acme", task_id="T1", attempt=1).body()


# -- metric attributes --------------------------------------------------------------------------------
def recorded_metric_names() -> set[str]:
    """Every metric name the code records (``count("name"`` and the workflow's ``_count("name"``)."""
    names: set[str] = set()
    for path in (ROOT / "layers" / "core" / "python" / "taskplane").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'(?:\b|_)count\(\s*"([a-z_]+)"', text))
        for a, b in re.findall(r'_count\(\s*"([a-z_]+)"\s+if\s+\w+\s+else\s+"([a-z_]+)"', text):
            names |= {a, b}
    for path in (ROOT / "functions").rglob("*.py"):
        names |= set(re.findall(r'\bcount\(\s*"([a-z_]+)"', path.read_text()))
    return names


def test_every_metric_the_code_records_has_a_stage():
    names = recorded_metric_names()
    assert {
        "submitted",
        "dispatched",
        "started",
        "succeeded",
        "node_failed",
        "compensation_succeeded",
    } <= names
    assert "poison" in names
    assert names - set(METRIC_STAGES) == set()


def test_metric_attributes_are_the_seeds():
    assert metric_attributes("retried", "acme", "http", "high", 2, "HttpError") == {
        "tenant": "acme",
        "target_type": "http",
        "lane": "high",
        "stage": "run",
        "attempt": 2,
        "error_type": "HttpError",
    }
    assert metric_attributes("schedule_fired", "acme", "http", "default", None, None) == {
        "tenant": "acme",
        "target_type": "http",
        "lane": "default",
        "stage": "schedule",
    }
