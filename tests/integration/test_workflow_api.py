# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""Workflow definitions over the HTTP API under moto: publish, versions, validation, tenancy, routing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

DIAMOND = """
name: diamond
description: a to c, a to d, b to d
timeout_s: 120
defaults: {timeout_s: 30, retry: {max_attempts: 2, base_delay_ms: 100, max_delay_ms: 1000}}
nodes:
  - {id: a, target: {type: builtin, name: echo}, payload: {a: 1}}
  - {id: b, target: {type: builtin, name: echo}, payload: {b: 1}}
  - {id: c, needs: [a], target: {type: builtin, name: echo}}
  - {id: d, needs: [a, b], target: {type: builtin, name: echo}}
"""


def error_of(reply: Any, status: int = 400) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert set(reply.body) == {"error"}, reply.body
    return reply.body["error"]


def test_put_yaml_publishes_version_one_with_nodes_and_edges(wf_api):
    # Given a new workflow in YAML
    # When it is PUT
    reply = put_yaml(wf_api, "diamond", DIAMOND)
    # Then it is created as version 1, answering its nodes and edges
    assert reply.status == 201, reply.body
    assert reply.body["version"] == 1 and reply.body["published"] is True
    assert reply.body["nodes"] == ["a", "b", "c", "d"]
    assert sorted(map(tuple, reply.body["edges"])) == [("a", "c"), ("a", "d"), ("b", "d")]


def test_unchanged_put_publishes_nothing_and_a_change_publishes_version_two(wf_api):
    # Given version 1
    assert put_yaml(wf_api, "diamond", DIAMOND).status == 201
    # When the same definition is sent again, as JSON this time
    import yaml

    same = wf_api("PUT", "/v1/workflows/diamond", yaml.safe_load(DIAMOND))
    # Then nothing is published
    assert same.status == 200 and same.body["version"] == 1 and same.body["published"] is False
    # When a node changes
    changed = put_yaml(wf_api, "diamond", DIAMOND.replace("payload: {b: 1}", "payload: {b: 2}"))
    # Then version 2 is published and both versions are listed
    assert changed.status == 200 and changed.body["version"] == 2 and changed.body["published"] is True
    got = wf_api("GET", "/v1/workflows/diamond")
    assert got.status == 200
    assert [v["version"] for v in got.body["versions"]] == [1, 2]
    assert got.body["latest_version"] == 2
    assert got.body["definition"]["nodes"][1]["payload"] == {"b": 2}
    old = wf_api("GET", "/v1/workflows/diamond", query={"version": "1"})
    assert old.body["version"] == 1 and old.body["definition"]["nodes"][1]["payload"] == {"b": 1}


def test_get_answers_the_compiled_asl_with_gates_and_retry(wf_api):
    # Given a published workflow
    put_yaml(wf_api, "diamond", DIAMOND)
    # When it is read
    asl = wf_api("GET", "/v1/workflows/diamond").body["asl"]
    # Then the ASL runs every node once, gates the join, and retries with full jitter and a cap
    branches = asl["States"]["taskplane.nodes"]["Branches"]
    states = {name: state for b in branches for name, state in b["States"].items()}
    assert {"a", "b", "c", "d", "d.wait", "taskplane.end"} <= set(states)
    assert states["d.wait"]["Resource"].endswith("lambda:invoke.waitForTaskToken")
    retry = states["a"]["Retry"][-1]
    assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] == 1 and retry["MaxAttempts"] == 1
    assert states["a"]["TimeoutSeconds"] == 30 + 5
    assert states["taskplane.end"]["TimeoutSeconds"] == 120


def test_mermaid_format_answers_the_graph_as_text(wf_api):
    # Given a published workflow
    put_yaml(wf_api, "diamond", DIAMOND)
    # When its graph is asked for as Mermaid
    reply = wf_api("GET", "/v1/workflows/diamond", query={"format": "mermaid"})
    # Then it is flowchart text with a box per node and an arrow per need
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    lines = reply.body.splitlines()
    assert lines[0] == "flowchart TD"
    assert sum("-->" in line for line in lines) == 3
    assert any(line.strip().startswith('n3["d<br/>builtin:echo"]') for line in lines)


@pytest.mark.parametrize(
    ("text", "problem", "node", "words"),
    [
        (
            "nodes:\n  - {id: a, needs: [c], target: {type: builtin, name: echo}}\n"
            "  - {id: b, needs: [a], target: {type: builtin, name: echo}}\n"
            "  - {id: c, needs: [b], target: {type: builtin, name: echo}}\n",
            "cycle",
            "a",
            "a -> c -> b -> a",
        ),
        (
            "nodes:\n  - {id: a, target: {type: builtin, name: echo}}\n"
            "  - {id: b, needs: [ghost], target: {type: builtin, name: echo}}\n",
            "unknown_need",
            "b",
            "ghost",
        ),
        (
            "nodes:\n  - {id: a, target: {type: builtin, name: echo}}\n  - {id: a, target: {type: builtin, name: echo}}\n",
            "duplicate_id",
            "a",
            "more than once",
        ),
        (
            "nodes:\n  - {id: a, target: {type: builtin, name: echo}}\n"
            "  - {id: slow, timeout_s: 5000, target: {type: builtin, name: echo}}\n",
            "less_than_equal",
            "slow",
            "timeout_s",
        ),
        (
            "nodes:\n  - {id: pay, target: {type: http, url: 'ftp://x'}}\n",
            "value_error",
            "pay",
            "target.url",
        ),
    ],
    ids=["cycle", "unknown-need", "duplicate-id", "field", "target"],
)
def test_invalid_definitions_are_400_naming_node_and_problem(wf_api, text, problem, node, words):
    # Given a definition with one problem
    # When it is PUT
    error = error_of(put_yaml(wf_api, "bad", text))
    # Then the answer names the node and the problem
    assert error["code"] == "invalid_request"
    assert any(d.get("problem") == problem and d.get("node") == node for d in error["details"]), error
    assert words in error["message"] or any(words in json.dumps(d) for d in error["details"]), error
    # And nothing was published
    assert wf_api("GET", "/v1/workflows/bad").status == 404


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("nodes: [\n  {id: a", "line"),
        ("- just\n- a list\n", "mapping"),
        ("", "empty"),
        ("nodes:\n  - {id: a, target: {type: builtin, name: echo}}\nnodes: []\n", "duplicate key"),
        ("x: &a [1, 1]\ny: &b [*a, *a]\nz: [*b, *b]\nnodes: 1\n", "nodes"),
    ],
    ids=["broken", "list", "empty", "duplicate-key", "aliases"],
)
def test_malformed_yaml_is_400_never_500(wf_api, body, words):
    # Given a body that is not a workflow mapping
    # When it is PUT
    error = error_of(put_yaml(wf_api, "bad", body))
    # Then it is a 400 that says what is wrong
    assert words in json.dumps(error), error


def test_name_in_body_must_match_path(wf_api):
    # Given a definition named otherwise
    # When it is PUT under another name
    error = error_of(put_yaml(wf_api, "other", DIAMOND))
    # Then it is refused, naming the field
    assert error["details"][0]["field"] == "name"


def test_bad_workflow_name_is_400(wf_api):
    # Given a name with characters Step Functions cannot use
    # When it is PUT
    error = error_of(put_yaml(wf_api, "has.dot", "nodes: [{id: a, target: {type: builtin, name: echo}}]"))
    # Then it is refused, naming the field
    assert error["details"][0]["field"] == "name"


def test_another_tenant_never_sees_a_workflow_or_its_runs(wf_api):
    # Given acme's workflow and run
    put_yaml(wf_api, "diamond", DIAMOND)
    run = wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}}).body
    # When globex looks
    # Then every read and action is 404 and the lists are empty
    assert wf_api("GET", "/v1/workflows/diamond", tenant="globex").status == 404
    assert wf_api("GET", "/v1/workflows", tenant="globex").body["items"] == []
    assert wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}}, tenant="globex").status == 404
    assert wf_api("PUT", "/v1/workflows/diamond/routing", {"weights": {}}, tenant="globex").status == 404
    assert wf_api("GET", f"/v1/runs/{run['run_id']}", tenant="globex").status == 404
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/cancel", tenant="globex").status == 404
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/resume", tenant="globex").status == 404
    # And globex may use the same name for its own workflow
    assert put_yaml(wf_api, "diamond", DIAMOND, tenant="globex").status == 201
    assert wf_api("GET", "/v1/workflows", tenant="acme").body["items"][0]["latest_version"] == 1
    wait_run(wf_api, run["run_id"])


def test_routing_splits_runs_between_versions_by_weight(wf, wf_api):
    # Given versions 1 and 2 and a 90/10 split
    put_yaml(wf_api, "diamond", DIAMOND)
    put_yaml(wf_api, "diamond", DIAMOND.replace("{a: 1}", "{a: 2}"))
    reply = wf_api("PUT", "/v1/workflows/diamond/routing", {"weights": {"1": 90, "2": 10}})
    assert reply.status == 200 and reply.body["routing"] == {"1": 90, "2": 10}
    # When runs start with draws on either side of the split
    service = wf.platform.workflows
    versions = []
    for draw in (0.1, 0.89, 0.9, 0.99):
        service.draw = lambda d=draw: d
        versions.append(wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}}).body)
    # Then 90% of the range goes to version 1 and 10% to version 2
    assert [r["version"] for r in versions] == [1, 1, 2, 2]
    # And an explicit version wins over the split
    pinned = wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}, "version": 2}).body
    assert pinned["version"] == 2
    # And the alias in Step Functions mirrors the split
    machine = wf.client("stepfunctions").list_state_machines()["stateMachines"][0]["stateMachineArn"]
    alias = wf.client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=f"{machine}:live")
    assert sorted(r["weight"] for r in alias["routingConfiguration"]) == [10, 90]
    # When the split is cleared, runs use the latest version
    service.draw = lambda: 0.0
    assert wf_api("PUT", "/v1/workflows/diamond/routing", {"weights": {}}).body["routing"] == {}
    assert wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}}).body["version"] == 2
    for run in [*versions, pinned]:
        wait_run(wf_api, run["run_id"])


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ({"1": 50, "2": 40}, "bad_total"),
        ({"1": 50, "7": 50}, "unknown_version"),
        ({"1": 101}, "bad_weight"),
        ({"x": 100}, "not_a_version"),
        ({"1": 30, "2": 30, "3": 40}, "too_many_versions"),
    ],
)
def test_bad_routing_is_400(wf_api, weights, problem):
    # Given three versions
    for n in range(3):
        put_yaml(wf_api, "diamond", DIAMOND.replace("{a: 1}", f"{{a: {n}}}"))
    # When a bad split is PUT
    error = error_of(wf_api("PUT", "/v1/workflows/diamond/routing", {"weights": weights}))
    # Then it names the problem
    assert error["details"][0]["problem"] == problem


def test_run_of_unknown_workflow_or_version(wf_api):
    # Given one published version
    put_yaml(wf_api, "diamond", DIAMOND)
    # When a run names a workflow or version that does not exist
    # Then it is 404 for the workflow and 400 for the version
    assert error_of(wf_api("POST", "/v1/workflows/nope/runs", {"input": {}}), 404)["code"] == "not_found"
    error = error_of(wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}, "version": 9}))
    assert error["details"][0]["field"] == "version"
    # And an unknown run id is 404
    assert wf_api("GET", "/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV").status == 404
    assert wf_api("GET", "/v1/runs/not-an-id").status == 404


def test_run_idempotency_key(wf_api):
    # Given a workflow
    put_yaml(wf_api, "diamond", DIAMOND)
    # When the same run is started twice with one key
    first = wf_api(
        "POST", "/v1/workflows/diamond/runs", {"input": {"o": 1}}, headers={"Idempotency-Key": "k1"}
    )
    again = wf_api(
        "POST", "/v1/workflows/diamond/runs", {"input": {"o": 1}}, headers={"Idempotency-Key": "k1"}
    )
    other = wf_api(
        "POST", "/v1/workflows/diamond/runs", {"input": {"o": 2}}, headers={"Idempotency-Key": "k1"}
    )
    # Then the first is created, the second answers the same run, another body is a conflict
    assert first.status == 201 and again.status == 200
    assert again.body["run_id"] == first.body["run_id"]
    assert other.status == 409
    wait_run(wf_api, first.body["run_id"])


def test_run_input_too_large_is_413(wf_api):
    # Given a workflow
    put_yaml(wf_api, "diamond", DIAMOND)
    # When a run's input is over 64 KiB
    reply = wf_api("POST", "/v1/workflows/diamond/runs", {"input": {"blob": "x" * 70_000}})
    # Then it is refused as too large
    assert error_of(reply, 413)["details"][0]["field"] == "input"


def test_run_without_a_body_has_no_input_and_bad_formats_are_400(wf_api):
    # Given a workflow
    put_yaml(wf_api, "diamond", DIAMOND)
    # When a run is started with no body at all
    reply = wf_api("POST", "/v1/workflows/diamond/runs")
    # Then it starts with no input
    assert reply.status == 201 and reply.body["input"] is None
    # And an unknown format is a 400 naming the query parameter
    error = error_of(wf_api("GET", "/v1/workflows/diamond", query={"format": "xml"}))
    assert error["details"][0]["field"] == "query.format"
    wait_run(wf_api, reply.body["run_id"])


def test_targets_must_be_on_the_tenants_allow_list(wf, wf_api):
    # Given a tenant allowed to call only lambda ok-* (as in AWS, where targets are denied by default)
    from taskplane.domain.allowlist import TargetPolicy

    service = wf.platform.workflows
    service.targets = TargetPolicy(allowlists={"acme": ["lambda:ok-*"]}, allow_by_default=False)
    flow = (
        "nodes:\n"
        "  - {id: a, target: {type: lambda, function: ok-charge}, compensate: {type: lambda, function: evil}}\n"
        "  - {id: b, needs: [a], target: {type: http, url: 'http://169.254.169.254/latest'}}\n"
    )
    # When a workflow names targets off the list
    error = error_of(put_yaml(wf_api, "sneaky", flow))
    # Then it is refused, naming each node and role
    refused = {(d["node"], d["field"]) for d in error["details"] if d.get("problem") == "target_refused"}
    assert refused == {("a", "nodes.0.compensate"), ("b", "nodes.1.target")}
    # And a published workflow cannot run once its targets leave the list
    service.targets = TargetPolicy(allow_by_default=True)
    assert put_yaml(wf_api, "fine", "nodes: [{id: a, target: {type: lambda, function: ok-x}}]").status == 201
    service.targets = TargetPolicy(allowlists={"acme": ["lambda:other"]}, allow_by_default=False)
    assert error_of(wf_api("POST", "/v1/workflows/fine/runs", {"input": {}}))["details"][0]["node"] == "a"


class RefusingSfn:
    """A Step Functions client of an account at one of its quotas: ``operation`` refuses with ``code``
    as AWS does (moto enforces no quota); everything else goes through."""

    def __init__(self, real: Any, operation: str, code: str) -> None:
        self._real, self._operation, self._code = real, operation, code

    def __getattr__(self, name: str) -> Any:
        if name != self._operation:
            return getattr(self._real, name)

        def refuse(**kwargs: Any) -> Any:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": self._code, "Message": "quota"}}, name)

        return refuse


def test_an_account_at_its_state_machine_quota_is_a_409_naming_it(wf, wf_api):
    # Given an account that holds as many state machines as Step Functions allows
    sfn = wf.platform.workflows.sfn
    sfn._client = RefusingSfn(sfn.client, "create_state_machine", "StateMachineLimitExceeded")
    # When a new workflow is PUT
    reply = put_yaml(wf_api, "diamond", DIAMOND)
    # Then 409 names the quota (not a 503 to retry), and no workflow is listed
    error = error_of(reply, 409)
    assert error["code"] == "limit_exceeded" and "state machines" in error["message"]
    assert wf_api("GET", "/v1/workflows").body["items"] == []


def test_an_account_at_its_open_executions_quota_is_a_429_to_come_back(wf, wf_api):
    # Given a published workflow, and an account whose open executions are all taken
    assert put_yaml(wf_api, "diamond", DIAMOND).status == 201
    sfn = wf.platform.workflows.sfn
    sfn._client = RefusingSfn(sfn.client, "start_execution", "ExecutionLimitExceeded")
    # When a run is started
    reply = wf_api("POST", "/v1/workflows/diamond/runs", {"input": {}})
    # Then 429 with Retry-After, the way the rest of the API pushes back
    error = error_of(reply, 429)
    assert error["code"] == "throttled"
    assert reply.headers.get("Retry-After") == "30"


def test_a_tenant_past_its_share_of_state_machines_is_a_409_and_others_keep_publishing(wf, wf_api):
    # Given a tenant that may hold two workflows (each is a state machine the account shares), and holds two
    wf.platform.workflows.max_workflows = 2
    for name in ("one", "two"):
        assert put_yaml(wf_api, name, DIAMOND.replace("name: diamond", f"name: {name}")).status == 201
    # When it publishes a third
    reply = put_yaml(wf_api, "three", DIAMOND.replace("name: diamond", "name: three"))
    # Then 409 names its share and what to do; nothing is created
    error = error_of(reply, 409)
    assert error["code"] == "limit_exceeded"
    assert "2 workflow(s)" in error["message"] and "TASKPLANE_MAX_WORKFLOWS" in error["message"]
    assert error["details"] == [{"field": "name", "problem": "too_many_workflows", "limit": 2}]
    assert [w["name"] for w in wf_api("GET", "/v1/workflows").body["items"]] == ["one", "two"]
    # And a new version of a workflow it holds still publishes, and another tenant has its own share
    changed = DIAMOND.replace("name: diamond", "name: two").replace("payload: {b: 1}", "payload: {b: 2}")
    assert put_yaml(wf_api, "two", changed).status == 200
    assert (
        put_yaml(wf_api, "three", DIAMOND.replace("name: diamond", "name: three"), tenant="globex").status
        == 201
    )
