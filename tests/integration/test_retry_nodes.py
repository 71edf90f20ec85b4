# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""The same retry policy on workflow nodes, through the step function on moto's Step Functions:
context-aware retries, fallbacks, circuit breakers and adaptive timeouts."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

CALLS: list[str] = []


def down(event: dict[str, Any], context: Any) -> dict[str, Any]:
    CALLS.append(event["node"])
    raise RuntimeError("503 upstream unavailable")


with_down = pytest.mark.parametrize("wf", [{"functions": {"down": down}}], indirect=True)


def run_of(wf_api: Any, name: str) -> dict[str, Any]:
    reply = wf_api("POST", f"/v1/workflows/{name}/runs", {"input": {"order": 7}})
    assert reply.status == 201, reply.body
    return wait_run(wf_api, reply.body["run_id"])


def node(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in run["nodes"] if n["id"] == node_id)


def test_a_failed_node_calls_its_fallback_once_and_records_it(wf_api):
    # Given a node that always fails, with a fallback
    put_yaml(
        wf_api,
        "fb",
        """
nodes:
  - id: charge
    target: {type: builtin, name: fail}
    payload: {times: 99}
    retry: {max_attempts: 1, fallback: {type: builtin, name: echo}}
""",
    )
    # When the run fails
    run = run_of(wf_api, "fb")
    # Then the node is FAILED, its error keeping the fallback's outcome
    assert run["state"] == "FAILED", run
    error = node(run, "charge")["error"]
    assert error["type"] == "BuiltinFailure", error
    assert error["fallback"]["state"] == "SUCCEEDED", error
    assert error["fallback"]["result"] == {"times": 99}  # echo answers the node's payload
    assert "fallback called: it succeeded" in error["notes"]


def test_a_non_critical_node_short_of_the_runs_time_is_not_retried(wf_api):
    # Given a non-critical node wanting 10 minutes left to retry, in a run of at most 2 minutes
    put_yaml(
        wf_api,
        "ctx",
        """
timeout_s: 120
nodes:
  - id: notify
    target: {type: builtin, name: fail}
    payload: {times: 99}
    retry: {max_attempts: 3, base_delay_ms: 1000, critical: false, min_remaining_ms: 600000}
""",
    )
    # When its first attempt fails
    run = run_of(wf_api, "ctx")
    # Then it was not retried, saying why
    n = node(run, "notify")
    assert run["state"] == "FAILED" and n["attempts"] == 1, run
    assert any("retry skipped: not critical" in note for note in n["error"]["notes"]), n


@with_down
def test_a_nodes_breaker_opens_and_the_next_run_fails_fast(wf, wf_api):
    # Given a node calling a Lambda that is down, whose breaker opens after one failed call
    CALLS.clear()
    put_yaml(
        wf_api,
        "cb",
        """
nodes:
  - id: charge
    target: {type: lambda, function: down}
    retry: {max_attempts: 1, breaker: {min_calls: 1, open_ms: 60000}}
""",
    )
    # When two runs go
    first = run_of(wf_api, "cb")
    second = run_of(wf_api, "cb")
    # Then the first called the function and opened the breaker; the second failed fast
    assert CALLS == ["charge"]
    assert any("opened: error rate 100%" in note for note in node(first, "charge")["error"]["notes"])
    assert node(second, "charge")["error"]["type"] == "CircuitOpen"
    # And the tenant's stats show its breaker open
    stats = wf_api("GET", "/v1/stats").body
    row = next(t for t in stats["targets"] if t["target"] == "lambda:down")
    assert row["breaker"]["state"] == "open"


def test_an_auto_timeout_node_runs_and_its_duration_reaches_the_stats(wf_api):
    # Given a node with timeout_s "auto"
    put_yaml(
        wf_api,
        "auto",
        """
defaults: {timeout_s: auto, auto_timeout: {ceiling_s: 30}}
nodes:
  - {id: a, target: {type: builtin, name: echo}}
""",
    )
    # When it runs
    run = run_of(wf_api, "auto")
    # Then it succeeded, and GET /v1/stats shows the target measured for this tenant only
    assert run["state"] == "SUCCEEDED", run
    targets = {t["target"]: t for t in wf_api("GET", "/v1/stats").body["targets"]}
    assert targets["builtin:echo"]["samples"] >= 1
    assert targets["builtin:echo"]["p99_ms"] is not None
    assert wf_api("GET", "/v1/stats", tenant="globex").body["targets"] == []
    # And the definition keeps "auto" with its ceiling as the state's TimeoutSeconds bound
    definition = wf_api("GET", "/v1/workflows/auto").body
    assert "auto" in str(definition)
