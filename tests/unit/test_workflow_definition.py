"""Workflow definitions: YAML and JSON parsing, graph rules (property-tested), canary split, Saga plan."""

from __future__ import annotations

import time
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain.errors import InvalidRequest
from taskplane.domain.workflow import (
    check_weights,
    choose_version,
    compensation_waves,
    load_document,
    parse_workflow,
)

pytestmark = pytest.mark.unit

ECHO = {"type": "builtin", "name": "echo"}
PROPERTY = settings(max_examples=150, deadline=None)


def node(node_id: str, *needs: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "needs": list(needs), "target": ECHO, **extra}


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 25) -> list[dict[str, Any]]:
    """Random DAGs: node i needs some of the nodes before it (so every DAG shape can come up)."""
    n = draw(st.integers(min_nodes, max_nodes))
    nodes = []
    for i in range(n):
        needs = draw(st.sets(st.integers(0, i - 1), max_size=4)) if i else set()
        nodes.append(node(f"n{i}", *(f"n{j}" for j in sorted(needs))))
    return nodes


def problems(exc: pytest.ExceptionInfo[InvalidRequest]) -> list[tuple[str | None, str | None]]:
    return [(d.get("node"), d.get("problem")) for d in exc.value.details]


# -- parsing ---------------------------------------------------------------------------------------


def test_yaml_and_json_give_the_same_workflow():
    # Given one definition as YAML and as JSON
    yaml_text = "nodes:\n  - {id: a, target: {type: builtin, name: echo}, payload: {when: 2026-01-01}}\n"
    json_text = '{"nodes": [{"id": "a", "target": {"type": "builtin", "name": "echo"}, "payload": {"when": "2026-01-01"}}]}'
    # When both are parsed
    from_yaml = parse_workflow(yaml_text, name="w")
    from_json = parse_workflow(json_text, name="w", content_type="application/json")
    # Then they are the same version (a YAML date stays the string it was written as)
    assert from_yaml.digest() == from_json.digest()
    assert from_yaml.by_id["a"].payload == {"when": "2026-01-01"}


def test_defaults_apply_to_nodes_that_do_not_say_otherwise():
    # Given defaults and one node that overrides them
    wf = parse_workflow(
        {
            "defaults": {"timeout_s": 9, "retry": {"max_attempts": 5}},
            "nodes": [node("a"), node("b", "a", timeout_s=2, retry={"max_attempts": 1})],
        },
        name="w",
    )
    # Then the node values win over the defaults
    assert (wf.by_id["a"].timeout_s, wf.by_id["a"].retry.max_attempts) == (9, 5)
    assert (wf.by_id["b"].timeout_s, wf.by_id["b"].retry.max_attempts) == (2, 1)


def test_on_failure_defaults_to_compensate_only_when_something_can_be_compensated():
    # Given workflows with and without compensate targets
    plain = parse_workflow({"nodes": [node("a")]}, name="w")
    saga = parse_workflow({"nodes": [node("a", compensate=ECHO)]}, name="w")
    explicit = parse_workflow({"on_failure": "stop", "nodes": [node("a", compensate=ECHO)]}, name="w")
    # Then the default follows, and an explicit choice stays
    assert (plain.on_failure, saga.on_failure, explicit.on_failure) == ("stop", "compensate", "stop")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nodes: [1, 2", "line 1"),
        ("a: 1\na: 2\nnodes: []\n", "duplicate key 'a'"),
        ("{1: a}\n", "not a string"),
        ("nodes: [{id: a, target: {type: builtin, name: echo}, payload: .nan}]\n", "not a JSON number"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
        ("[]", "mapping"),
        ("   ", "empty"),
    ],
)
def test_malformed_documents_say_what_is_wrong(text, words):
    # Given a document that is not a workflow mapping
    # When it is loaded
    with pytest.raises(InvalidRequest) as seen:
        load_document(text)
    # Then the error says why
    assert words in seen.value.message


def test_yaml_alias_bomb_is_refused_quickly():
    # Given a billion-laughs document: nine levels of nine aliases each
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    # When it is loaded
    began = time.perf_counter()
    with pytest.raises(InvalidRequest) as seen:
        load_document("\n".join(lines) + "\nnodes: []\n")
    # Then it is refused by its expanded size, without expanding it
    assert "expands to more than" in seen.value.message
    assert time.perf_counter() - began < 1


def test_field_errors_name_the_node_and_the_field():
    # Given a node with a bad retry policy
    # When it is parsed
    with pytest.raises(InvalidRequest) as seen:
        parse_workflow({"nodes": [node("a"), node("b", "a", retry={"max_attempts": 0})]}, name="w")
    # Then the detail names node b and its field
    detail = seen.value.details[0]
    assert detail["node"] == "b" and detail["field"] == "nodes.1.retry.max_attempts"
    assert "node 'b'" in seen.value.message


def test_every_graph_problem_is_reported_at_once():
    # Given a duplicate id, an unknown need and a need listed twice
    with pytest.raises(InvalidRequest) as seen:
        parse_workflow({"nodes": [node("a"), node("a"), node("b", "zz", "a", "a")]}, name="w")
    # Then all three are named
    assert set(problems(seen)) == {("a", "duplicate_id"), ("b", "unknown_need"), ("b", "duplicate_need")}


def test_a_node_that_needs_itself_is_a_cycle():
    with pytest.raises(InvalidRequest) as seen:
        parse_workflow({"nodes": [node("a", "a")]}, name="w")
    assert seen.value.details[0]["cycle"] == ["a", "a"]


# -- graph rules, property-tested -----------------------------------------------------------------


@PROPERTY
@given(dags())
def test_every_dag_is_accepted_in_an_order_that_respects_needs(nodes):
    # Given any DAG
    # When it is parsed
    wf = parse_workflow({"nodes": nodes}, name="w")
    # Then every node comes after all of its needs, and dependants mirror needs
    position = {node_id: i for i, node_id in enumerate(wf.order)}
    assert sorted(wf.order) == sorted(n["id"] for n in nodes)
    for n in wf.nodes:
        assert all(position[need] < position[n.id] for need in n.needs)
        assert all(n.id in wf.dependants[need] for need in n.needs)


@PROPERTY
@given(dags(min_nodes=2), st.data())
def test_closing_a_loop_is_reported_with_a_real_cycle(nodes, data):
    # Given a DAG with an edge a -> b (b needs a), and a made to need something b leads to
    edges = [(need, n["id"]) for n in nodes for need in n["needs"]]
    if not edges:
        nodes[1]["needs"] = ["n0"]
        edges = [("n0", "n1")]
    graph = nx.DiGraph(edges)
    a, _b = data.draw(st.sampled_from(edges))
    later = data.draw(st.sampled_from(sorted(nx.descendants(graph, a))))
    for n in nodes:
        if n["id"] == a:
            n["needs"] = [*n["needs"], later]
    # When it is parsed
    with pytest.raises(InvalidRequest) as seen:
        parse_workflow({"nodes": nodes}, name="w")
    # Then the reported path is a cycle in which each node needs the next
    detail = seen.value.details[0]
    cycle = detail["cycle"]
    assert detail["problem"] == "cycle" and cycle[0] == cycle[-1] and len(cycle) >= 2
    needs = {n["id"]: set(n["needs"]) for n in nodes}
    assert all(cycle[i + 1] in needs[cycle[i]] for i in range(len(cycle) - 1))
    assert " -> ".join(cycle) in seen.value.message


@PROPERTY
@given(dags(), st.data())
def test_compensation_waves_undo_dependants_first(nodes, data):
    # Given any DAG, every node compensable, and a set of completed nodes (closed under needs)
    for n in nodes:
        n["compensate"] = ECHO
    wf = parse_workflow({"nodes": nodes}, name="w")
    picked = data.draw(st.sets(st.sampled_from(wf.order)))
    completed = set(picked)
    for node_id in picked:
        completed |= nx.ancestors(wf.graph, node_id)
    # When the plan is made
    waves = compensation_waves(wf, completed)
    # Then each completed node is undone once, after every completed node that depends on it
    wave_of = {node_id: i for i, wave in enumerate(waves) for node_id in wave}
    assert sorted(wave_of) == sorted(completed)
    for x in completed:
        for y in nx.descendants(wf.graph, x) & completed:
            assert wave_of[y] < wave_of[x]


def test_nodes_without_undo_still_order_the_waves():
    # Given c needs b needs a, where only a and c can be undone
    wf = parse_workflow(
        {"nodes": [node("a", compensate=ECHO), node("b", "a"), node("c", "b", compensate=ECHO)]}, name="w"
    )
    # Then c is undone in an earlier wave than a
    assert compensation_waves(wf, ["a", "b", "c"]) == [["c"], ["a"]]


# -- canary split -----------------------------------------------------------------------------------


@PROPERTY
@given(st.integers(0, 100), st.floats(0, 1, exclude_max=True))
def test_choose_version_gives_each_version_its_share(weight, draw):
    # Given a split of weight% to version 3 and the rest to version 4
    weights = {3: weight, 4: 100 - weight}
    # When a run draws a number in [0, 1)
    chosen = choose_version(weights, latest=4, draw=draw)
    # Then version 3 gets exactly the draws below its share
    assert chosen == (3 if draw * 100 < weight else 4)


def test_check_weights_accepts_a_two_way_split_and_clearing():
    assert check_weights({"3": 90, "4": 10}, versions=[1, 2, 3, 4]) == {3: 90, 4: 10}
    assert check_weights({}, versions=[1]) == {}
    assert check_weights({"2": 100}, versions=[1, 2]) == {2: 100}


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ({"1": 60, "2": 60}, "bad_total"),
        ({"1": True}, "bad_weight"),
        ({"1": 50.5, "2": 49.5}, "bad_weight"),
        ({"0": 100}, "not_a_version"),
        ({"5": 100}, "unknown_version"),
        ({"1": 20, "2": 40, "3": 40}, "too_many_versions"),
    ],
)
def test_check_weights_refuses(weights, problem):
    with pytest.raises(InvalidRequest) as seen:
        check_weights(weights, versions=[1, 2, 3])
    assert seen.value.details[0]["problem"] == problem
