# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""OTLP export of a workflow run: one trace from the api's start through Step Functions to every node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from otlp_receiver import OtlpReceiver
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

from taskplane import wiring
from taskplane.domain.tracecontext import child_span_id, hex_trace_id, run_trace

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver(wf, monkeypatch) -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    settings = wf.settings.model_copy(update={"otlp_endpoint": r.url})
    # A loaded machine may take longer than the deployed 1 s to answer on loopback, and a failed
    # export goes quiet for a minute: here the receiver always answers, so wait for it instead.
    from taskplane.otlp import OtlpExport

    monkeypatch.setattr(
        wiring,
        "observability_export",
        lambda s: OtlpExport(
            s.otlp_endpoint, sample_ratio=s.otlp_sample_ratio, export_timeout_s=30, quiet_s=0
        ),
    )
    wiring.use(wiring.build(settings, session=wf.session))
    yield r
    r.stop()


def test_a_run_is_one_trace_from_start_through_every_node(receiver, wf_api):
    # Given a workflow a -> (b, c) whose node b fails once and is retried by Step Functions
    put_yaml(
        wf_api,
        "traced",
        """
nodes:
  - {id: a, target: {type: builtin, name: echo}, payload: {a: 1}}
  - id: b
    needs: [a]
    target: {type: builtin, name: fail}
    payload: {times: 1}
    retry: {max_attempts: 2, base_delay_ms: 100, max_delay_ms: 100}
  - {id: c, needs: [a], target: {type: builtin, name: echo}}
""",
    )
    # When a run starts (with a caller's traceparent) and ends
    reply = wf_api(
        "POST",
        "/v1/workflows/traced/runs",
        {"input": {"x": 1}},
        headers={"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"},
    )
    assert reply.status == 201, reply.body
    run_id = reply.body["run_id"]
    run = wait_run(wf_api, run_id)
    assert run["state"] == "SUCCEEDED", run
    ids = run_trace("acme", run_id)
    trace_id = hex_trace_id(ids.trace_id)
    # Then the run resource names its trace
    assert run["trace_id"] == trace_id == reply.body["trace_id"]
    # (the run says SUCCEEDED from inside its last step, whose span is exported as that step returns)
    spans = receiver.wait_for(
        lambda: (
            len([s for s in receiver.trace(trace_id) if s.name == "workflow.node"]) == 4
            and any(s.name == "workflow.succeeded" for s in receiver.trace(trace_id))
            and receiver.trace(trace_id)
        )
    )
    by_name: dict[str, list] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    (root,) = by_name["workflow.run"]
    (start,) = by_name["workflow.start"]
    # the root has the derived ids and links to the caller; the execution's start hangs under it
    assert root.span_id == f"{ids.root_span_id:016x}" and root.parent_span_id == ""
    assert root.links == [("11111111111111111111111111111111", "2222222222222222")]
    assert start.parent_span_id == root.span_id
    assert start.span_id == f"{child_span_id(ids, 'exec/1'):016x}"
    # every step function task of the execution hangs under the start (its input carried it)
    steps = [s for s in spans if s.name not in ("workflow.run", "workflow.start")]
    assert steps and all(s.parent_span_id == start.span_id for s in steps)
    assert {s.trace_id for s in spans} == {trace_id}
    nodes = sorted(
        (s.attributes["taskplane.node"], s.attributes["taskplane.attempt"], s.status)
        for s in by_name["workflow.node"]
    )
    assert nodes == [("a", 1, "UNSET"), ("b", 1, "ERROR"), ("b", 2, "UNSET"), ("c", 1, "UNSET")]
    failed = next(s for s in by_name["workflow.node"] if s.status == "ERROR")
    assert (
        failed.attributes["error.type"] == "NodeAttemptFailed" and "BuiltinFailure" in failed.status_message
    )
    assert by_name.get("workflow.succeeded"), [s.name for s in spans]
    # And the node metrics carry the seed's attributes (the lane stands for "a workflow node")
    point = receiver.wait_for(
        lambda: receiver.latest("taskplane.node_retried", tenant="acme", lane="workflow", stage="workflow")
    )
    assert point.value == 1 and point.attributes["attempt"] == 1
    assert point.attributes["error_type"] == "BuiltinFailure" and point.unit == "{node}"
    ok = receiver.wait_for(lambda: receiver.latest("taskplane.node_succeeded", tenant="acme", attempt=2))
    assert ok.attributes["target_type"] == "builtin"
