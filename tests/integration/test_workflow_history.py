# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""The history-event estimate against the events moto's executor really writes.

The worst case (taskplane.domain.history) must bound every run, and the clean-run figure, from the
same per-state counts, must be exact: that is what keeps the worst case honest rather than a guess.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

from taskplane.domain import history

pytestmark = pytest.mark.integration


def events_of(wf: Any, run_id: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The execution's whole history, read once the execution has ended.

    The run ledger says SUCCEEDED from inside the verdict task, before the executor writes that task's
    last events and ExecutionSucceeded; a loaded machine let the test read the history in between
    (30 events instead of 33). The execution's status changes only after its last event is written.
    """
    sfn = wf.client("stepfunctions")
    arn = wf.platform.workflows.runs.get("acme", run_id).execution_arn
    deadline = time.monotonic() + timeout_s
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {arn} still running after {timeout_s} s"
        time.sleep(0.02)
    found, token = [], {}
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **token)
        found += page["events"]
        if not page.get("nextToken"):
            return found
        token = {"nextToken": page["nextToken"]}


def run(wf: Any, wf_api: Any, name: str, text: str) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    published = put_yaml(wf_api, name, text)
    assert published.status in (200, 201), published.body
    started = wf_api("POST", f"/v1/workflows/{name}/runs", {"input": {}})
    assert started.status == 201, started.body
    done = wait_run(wf_api, started.body["run_id"], timeout_s=60)
    workflow, _ = wf.platform.workflows.catalog.load("acme", name, published.body["version"])
    return done, events_of(wf, done["run_id"]), workflow


DAG = """
nodes:
  - {id: a, target: {type: builtin, name: echo}}
  - {id: b, target: {type: builtin, name: echo}}
  - {id: c, needs: [a, b], target: {type: builtin, name: echo}}
  - {id: d, needs: [c], target: {type: builtin, name: echo}}
  - {id: e, needs: [c], target: {type: builtin, name: echo}}
  - {id: f, needs: [e], target: {type: builtin, name: echo}}
"""


def test_a_clean_run_writes_exactly_the_events_the_formula_counts(wf, wf_api) -> None:
    # Given a DAG with a join (a gate), a fan-out (a Parallel) and a chain
    done, events, workflow = run(wf, wf_api, "clean", DAG)
    # Then the clean-run figure is exact, and the worst case bounds it
    assert done["state"] == "SUCCEEDED"
    assert len(events) == history.clean_run(workflow) == 57
    kinds = Counter(e["type"] for e in events)
    assert (
        kinds["ParallelStateEntered"] == 2 and kinds["TaskSubmitted"] == 2
    )  # the fan-out; the join and the end
    assert len(events) <= history.worst_case(workflow).total


def test_each_retried_attempt_adds_three_events(wf, wf_api) -> None:
    # Given a node that fails twice and then succeeds, retried after 1 s
    text = """
defaults: {retry: {max_attempts: 3, base_delay_ms: 1000, max_delay_ms: 1000}}
nodes:
  - {id: a, target: {type: builtin, name: fail}, payload: {times: 2}}
  - {id: b, needs: [a], target: {type: builtin, name: echo}}
"""
    done, events, workflow = run(wf, wf_api, "retried", text)
    assert done["state"] == "SUCCEEDED"
    assert len(events) == history.clean_run(workflow) + 2 * history.RETRY
    # and the worst case counts every attempt of every node
    assert len(events) <= history.worst_case(workflow).nodes + history.EXECUTION + history.TASK


def test_a_failed_run_that_settles_and_compensates_stays_under_the_worst_case(wf, wf_api) -> None:
    # Given a run where b fails for good while slow is still running (so the run settles, one loop a
    # second), and a's undo fails once before it succeeds
    text = """
on_failure: compensate
defaults: {retry: {max_attempts: 2, base_delay_ms: 1000, max_delay_ms: 1000}}
nodes:
  - {id: a, target: {type: builtin, name: echo}, compensate: {type: builtin, name: fail}, payload: {times: 1}}
  - {id: slow, target: {type: builtin, name: sleep}, payload: {ms: 2500}, timeout_s: 3}
  - {id: b, needs: [a], target: {type: builtin, name: fail}, payload: {times: 9}}
"""
    done, events, workflow = run(wf, wf_api, "settled", text)
    assert done["state"] == "COMPENSATED", done
    kinds = Counter(e["type"] for e in events)
    assert kinds["WaitStateEntered"] >= 1  # it did settle
    assert kinds["MapIterationStarted"] == 2  # one wave, one undo
    estimate = history.worst_case(workflow)
    assert len(events) <= estimate.total
    # phase by phase too: the settle loop ran fewer seconds than the worst case allows
    loops = kinds["WaitStateEntered"]
    assert loops <= history.settle_seconds(workflow) + 1


def test_a_workflow_whose_worst_case_passes_the_quota_is_refused_naming_the_figure(wf_api) -> None:
    # Given 800 nodes that may each try 10 times (800 x (5 + 9 x 3) = 25,600 events before anything else)
    nodes = "\n".join(
        f"  - {{id: n{i}, target: {{type: builtin, name: echo}}, retry: {{max_attempts: 10}}}}"
        for i in range(800)
    )
    refused = put_yaml(wf_api, "huge", "nodes:\n" + nodes + "\n")
    # Then: 400 in the error shape, naming the figure and the limit
    assert refused.status == 400, refused.body
    (detail,) = refused.body["error"]["details"]
    assert detail["problem"] == "history_quota" and detail["limit"] == history.HISTORY_LIMIT
    assert detail["events"] > history.HISTORY_LIMIT
    assert f"{detail['events']:,}" in refused.body["error"]["message"]
    # (tests/unit/test_history_estimate.py: the same nodes with the default retry policy fit)
