"""The ASL compiler: each node waits for exactly its needs (property-tested), retries, size, shape."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from test_workflow_definition import ECHO, dags, node

from taskplane.domain.asl import (
    CALLBACK,
    END_GATE,
    MAX_DEFINITION_BYTES,
    MAX_NESTING,
    compile_asl,
    gated,
    layout,
    retry_block,
    to_json,
)
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.mermaid import to_mermaid
from taskplane.domain.retry import RetryPolicy
from taskplane.domain.workflow import FATAL_ERROR, parse_workflow

pytestmark = pytest.mark.unit

FN = "arn:aws:lambda:us-east-1:123456789012:function:taskplane-step"
PROPERTY = settings(max_examples=150, deadline=None)


def waits(asl: dict[str, Any]) -> dict[str, set[str]]:
    """What each node's task waits for in the compiled machine: the node task before it in its
    branch (nested Parallel states included), or ``<gate>`` when it starts behind a gate."""
    found: dict[str, set[str]] = {}

    def walk(branch: dict[str, Any], before: set[str]) -> None:
        states, name = branch["States"], branch["StartAt"]
        while True:
            state = states[name]
            if state["Type"] == "Parallel":
                for inner in state["Branches"]:
                    walk(inner, before)
            elif state["Resource"] == CALLBACK:
                before = {"<gate>"}
            else:
                node_id = state["Parameters"]["node"]
                assert node_id == name and node_id not in found, "every node runs exactly once"
                found[node_id] = before
                before = {node_id}
            if state.get("End"):
                return
            name = state["Next"]

    for branch in asl["States"]["taskplane.nodes"]["Branches"][:-1]:
        walk(branch, set())
    return found


@PROPERTY
@given(dags())
def test_each_node_waits_for_its_needs_and_nothing_else(nodes):
    # Given any DAG
    wf = parse_workflow({"nodes": nodes}, name="w")
    # When it is compiled
    asl = compile_asl(wf, FN)
    # Then a node follows another task in its branch (in sequence or in a Parallel state after it) only
    # when that task is its one need, and every other node with needs waits behind a gate that the
    # step function opens on exactly those needs
    seen = waits(asl)
    assert set(seen) == {n.id for n in wf.nodes}
    gates = gated(wf)
    for n in wf.nodes:
        if n.id in gates:
            assert seen[n.id] == {"<gate>"} and n.needs
        else:
            assert seen[n.id] == set(n.needs)
    # And the end gate (the workflow timeout) waits for the sinks
    end = asl["States"]["taskplane.nodes"]["Branches"][-1]["States"]["taskplane.end"]
    assert end["Parameters"]["Payload"]["node"] == END_GATE


def nesting(asl: dict[str, Any]) -> int:
    """The deepest nesting of Parallel states under the top-level one."""

    def deepest(states: dict[str, Any]) -> int:
        inner = [
            1 + deepest(b["States"])
            for st in states.values()
            if st["Type"] == "Parallel"
            for b in st["Branches"]
        ]
        return max(inner, default=0)

    return max((deepest(b["States"]) for b in asl["States"]["taskplane.nodes"]["Branches"]), default=0)


def test_non_series_parallel_graph_gates_only_the_join():
    # Given a->c, a->d, b->d
    wf = parse_workflow({"nodes": [node("a"), node("b"), node("c", "a"), node("d", "a", "b")]}, name="w")
    # When it is laid out
    plan = layout(wf)
    # Then c follows a directly, b runs on its own, and only d waits behind a gate
    assert plan.roots == ("a", "b", "d") and plan.children == {"a": ("c",)}
    assert plan.gated == {"d"}


def test_fan_out_of_single_need_nodes_needs_no_gate():
    # Given a with three children that need only a, one of which leads further
    wf = parse_workflow(
        {"nodes": [node("a"), node("x", "a"), node("long", "a"), node("y", "a"), node("tail", "long")]},
        name="w",
    )
    # When it is compiled
    asl = compile_asl(wf, FN)
    # Then a Parallel state after a runs all three children, the longest path first, and nothing is gated
    assert layout(wf).children["a"] == ("long", "x", "y")
    branch = asl["States"]["taskplane.nodes"]["Branches"][0]["States"]
    assert branch["a"]["Next"] == "a.then" and branch["a.then"]["Type"] == "Parallel"
    assert [b["StartAt"] for b in branch["a.then"]["Branches"]] == ["long", "x", "y"]
    assert gated(wf) == frozenset()


def test_deep_fan_outs_are_gated_past_the_nesting_limit():
    # Given a caterpillar: every node has two single-need children, one a leaf, fifty levels deep
    nodes = [node("c0")]
    for i in range(1, 51):
        nodes += [node(f"c{i}", f"c{i - 1}"), node(f"leaf{i}", f"c{i - 1}")]
    wf = parse_workflow({"nodes": nodes}, name="w")
    # When it is compiled
    asl = compile_asl(wf, FN)
    # Then Parallel states nest no deeper than the limit, and every node still waits only for its need
    assert nesting(asl) <= MAX_NESTING + 1
    assert gated(wf)
    seen = waits(asl)
    assert all(seen[n.id] in ({"<gate>"}, set(n.needs)) for n in wf.nodes)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            RetryPolicy(max_attempts=3, base_delay_ms=500, max_delay_ms=30_000),
            {"IntervalSeconds": 1, "MaxAttempts": 2, "MaxDelaySeconds": 30, "JitterStrategy": "FULL"},
        ),
        (
            RetryPolicy(max_attempts=4, base_delay_ms=2_500, max_delay_ms=2_500, jitter="none"),
            {"IntervalSeconds": 3, "MaxAttempts": 3, "MaxDelaySeconds": 3},
        ),
    ],
)
def test_retry_maps_the_policy_to_asl(policy, expected):
    # Given a retry policy
    block = retry_block(policy)
    # Then NodeFailed is never retried and the rest follows the policy in whole seconds
    assert block[0] == {"ErrorEquals": [FATAL_ERROR], "MaxAttempts": 0}
    assert block[1]["ErrorEquals"] == ["States.ALL"] and block[1]["BackoffRate"] == 2.0
    assert {k: v for k, v in block[1].items() if k in expected} == expected
    assert ("JitterStrategy" in block[1]) == ("JitterStrategy" in expected)


def test_one_attempt_means_no_retry():
    assert retry_block(RetryPolicy(max_attempts=1)) == []


def test_compensation_states_only_when_the_saga_can_compensate():
    # Given the same nodes with and without compensate targets
    plain = compile_asl(parse_workflow({"nodes": [node("a")]}, name="w"), FN)
    saga = compile_asl(parse_workflow({"nodes": [node("a", compensate=ECHO)]}, name="w"), FN)
    stop = compile_asl(
        parse_workflow({"on_failure": "stop", "nodes": [node("a", compensate=ECHO)]}, name="w"), FN
    )
    # Then only the compensating saga has the Map of waves
    assert "taskplane.compensate" not in plain["States"] and "taskplane.compensate" not in stop["States"]
    assert saga["States"]["taskplane.compensate"]["MaxConcurrency"] == 1
    assert saga["States"]["taskplane.route"]["Choices"][-1]["Next"] == "taskplane.compensate"


def test_asl_is_jsonpath_only():
    # Given a compiled saga
    asl = compile_asl(parse_workflow({"nodes": [node("a", compensate=ECHO), node("b", "a")]}, name="w"), FN)
    # Then no state asks for JSONata (moto cannot run it)
    text = json.dumps(asl)
    assert "JSONata" not in text and "QueryLanguage" not in text


def random_dag(n: int, seed: int, fan_in: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        needs = sorted(rng.sample(range(max(0, i - 20), i), k=min(i, rng.randint(0, fan_in)))) if i else []
        nodes.append(
            node(f"node-{i:04d}", *(f"node-{j:04d}" for j in needs), payload={"ms": 100}, compensate=ECHO)
        )
    return nodes


def test_a_thousand_node_definition_fits_the_quota():
    # Given 1,000 nodes, each with a payload and a compensation, up to three needs each
    wf = parse_workflow({"nodes": random_dag(1000, seed=7)}, name="big")
    # When it is compiled
    text = to_json(compile_asl(wf, FN, version=1))
    # Then it is well under Step Functions' 1 MB quota
    assert len(text.encode()) < 0.85 * MAX_DEFINITION_BYTES


def test_an_oversized_definition_is_refused():
    # Given a definition that compiles to more than 1 MB (long ids on every node, every node gated)
    nodes = [node("x" * 60 + f"{i:04d}") for i in range(1000)]
    for i in range(1, 1000):
        nodes[i]["needs"] = [nodes[i - 1]["id"], nodes[0]["id"]] if i > 1 else [nodes[0]["id"]]
    wf = parse_workflow({"nodes": nodes}, name="w")
    long_arn = FN + "-with-a-much-longer-function-name"
    # When it is compiled
    with pytest.raises(InvalidRequest) as seen:
        to_json(compile_asl(wf, long_arn))
    # Then it is refused, saying so
    assert seen.value.details[0]["problem"] == "definition_too_large"


def test_mermaid_escapes_labels_and_colours_states():
    # Given a node whose target has characters Mermaid would misread
    wf = parse_workflow(
        {"nodes": [{"id": "a", "target": {"type": "http", "url": 'https://x.example/q?a="1"&b=<2>'}}]},
        name="w",
    )
    # When drawn with a state
    text = to_mermaid(wf, {"a": "FAILED"})
    # Then quotes and brackets are entities, and the box is coloured
    assert '"1"' not in text and "#quot;1#quot;" in text and "#lt;2#gt;" in text
    assert "class n0 failed" in text
