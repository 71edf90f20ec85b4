# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""Workflow runs on moto's Step Functions executor with the step function in-process.

Starts as soon as needs are done (on a graph no series-parallel nesting expresses), outputs passed to
dependants through the ledger, retries, Saga compensation in reverse order, resume, cancel, timeout.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

SEEN: list[dict[str, Any]] = []
_seen_lock = threading.Lock()


def collect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A local Lambda that records what it received and answers a summary of it."""
    with _seen_lock:
        SEEN.append(event)
    return {"node": event["node"], "deps": sorted(event["deps"]), "input": event["input"]}


def big(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"blob": "x" * 10_000}


def refund(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _seen_lock:
        SEEN.append({"undo": event["node"], "output": event["output"], "input": event["input"]})
    return {"refunded": True}


C_RAN = threading.Event()


def opener(event: dict[str, Any], context: Any) -> dict[str, Any]:
    C_RAN.set()
    return {"opened": True}


def gate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Ends only once ``opener`` has run (or after a minute): it says whether it saw that happen."""
    return {"saw_c_run": C_RAN.wait(timeout=60)}


FUNCTIONS = {"collect": collect, "big": big, "refund": refund, "opener": opener, "gate": gate}
with_functions = pytest.mark.parametrize("wf", [{"functions": FUNCTIONS}], indirect=True)


def ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def start(wf_api: Any, name: str, run_input: Any = None, **extra: Any) -> dict[str, Any]:
    reply = wf_api("POST", f"/v1/workflows/{name}/runs", {"input": run_input or {}, **extra})
    assert reply.status == 201, reply.body
    return reply.body


def nodes(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in run["nodes"]}


@with_functions
def test_a_node_starts_when_its_needs_are_done_not_its_level(wf_api):
    # Given a->c, a->d, b->d where b can only end once c has run (no series-parallel nesting
    # expresses it; no race with the machine's speed: a run that held c back until b ended would
    # leave b waiting out its minute and saying so)
    C_RAN.clear()
    put_yaml(
        wf_api,
        "nsp",
        """
nodes:
  - {id: a, target: {type: builtin, name: sleep}, payload: {ms: 20}}
  - {id: b, target: {type: lambda, function: gate}}
  - {id: c, needs: [a], target: {type: lambda, function: opener}}
  - {id: d, needs: [a, b], target: {type: builtin, name: echo}, payload: {d: 1}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "nsp")["run_id"])
    # Then it succeeded, c ran while b was still running, and d waited for b
    assert run["state"] == "SUCCEEDED", run
    n = nodes(run)
    assert n["b"]["output"] == {"saw_c_run": True}, n
    assert ms(n["c"]["started_at"]) < ms(n["b"]["finished_at"]), n
    assert ms(n["d"]["started_at"]) >= ms(n["b"]["finished_at"]), n
    assert all(node["attempts"] == 1 and node["error"] is None for node in run["nodes"])


@with_functions
def test_outputs_reach_dependants_with_input_and_payload(wf_api):
    # Given a fan-in whose nodes are a local Lambda that echoes what it gets
    SEEN.clear()
    put_yaml(
        wf_api,
        "fanin",
        """
nodes:
  - {id: left, target: {type: lambda, function: collect}, payload: {side: L}}
  - {id: right, target: {type: lambda, function: big}}
  - {id: join, needs: [left, right], target: {type: lambda, function: collect}, payload: {p: 1}}
""",
    )
    # When it runs with an input
    run = wait_run(wf_api, start(wf_api, "fanin", {"order": 7})["run_id"])
    # Then the join got the run input, its payload and both needs' outputs (the large one from the ledger)
    assert run["state"] == "SUCCEEDED", run
    join = next(e for e in SEEN if e["node"] == "join")
    assert join["input"] == {"order": 7}
    assert join["payload"] == {"p": 1}
    assert join["deps"]["left"] == {"node": "left", "deps": [], "input": {"order": 7}}
    assert join["deps"]["right"] == {"blob": "x" * 10_000}
    assert join["attempt"] == 1 and join["run_id"] == run["run_id"]
    # And a small output is shown inline, a large one only by size, in full on its own route
    n = nodes(run)
    assert n["join"]["output"] == {"node": "join", "deps": ["left", "right"], "input": {"order": 7}}
    assert "output" not in n["right"] and n["right"]["output_bytes"] > 10_000
    full = wf_api("GET", f"/v1/runs/{run['run_id']}/nodes/right")
    assert full.status == 200 and full.body["output"] == {"blob": "x" * 10_000}


def test_failed_attempt_is_retried_per_the_node_policy(wf_api):
    # Given a node that fails once and may try twice
    put_yaml(
        wf_api,
        "flaky",
        """
nodes:
  - id: flaky
    target: {type: builtin, name: fail}
    payload: {times: 1}
    retry: {max_attempts: 2, base_delay_ms: 100, max_delay_ms: 100}
  - {id: after, needs: [flaky], target: {type: builtin, name: echo}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "flaky")["run_id"])
    # Then the second attempt succeeded
    assert run["state"] == "SUCCEEDED", run
    assert nodes(run)["flaky"]["attempts"] == 2
    assert nodes(run)["flaky"]["output"] == {"attempt": 2, "failed_before": 1}


SAGA = """
name: saga
on_failure: compensate
defaults: {timeout_s: 10, retry: {max_attempts: 1}}
nodes:
  - {id: reserve, target: {type: builtin, name: echo}, payload: {r: 1}, compensate: {type: lambda, function: refund}}
  - {id: charge, target: {type: lambda, function: collect}, compensate: {type: lambda, function: refund}}
  - {id: ship, needs: [reserve, charge], target: {type: builtin, name: echo}, compensate: {type: lambda, function: refund}}
  - {id: notify, needs: [ship], target: {type: builtin, name: fail}, payload: {times: 5}}
"""


@with_functions
def test_saga_compensates_completed_nodes_in_reverse_order(wf_api):
    # Given a saga whose last node always fails
    SEEN.clear()
    put_yaml(wf_api, "saga", SAGA)
    # When it runs
    run = wait_run(wf_api, start(wf_api, "saga", {"order": "A-1"})["run_id"])
    # Then every completed node was compensated, ship before the two it needed, and the run is COMPENSATED
    assert run["state"] == "COMPENSATED", run
    assert run["error"]["type"] == "BuiltinFailure" and run["error"]["node"] == "notify"
    order = [c["node"] for c in run["compensations"]]
    assert order[0] == "ship" and sorted(order[1:]) == ["charge", "reserve"]
    assert all(c["state"] == "SUCCEEDED" and c["attempts"] == 1 for c in run["compensations"])
    first_of_wave_two = min(ms(c["started_at"]) for c in run["compensations"][1:])
    assert ms(run["compensations"][0]["finished_at"]) <= first_of_wave_two
    # And each compensation got the run input and the output of the node it undoes
    undo = {e["undo"]: e for e in SEEN if "undo" in e}
    assert undo["reserve"]["output"] == {"r": 1} and undo["reserve"]["input"] == {"order": "A-1"}
    n = nodes(run)
    assert n["notify"]["state"] == "FAILED" and n["notify"]["error"]["type"] == "BuiltinFailure"
    # And a compensated run cannot be resumed
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/resume").status == 409


def test_failed_compensation_leaves_the_run_failed_with_details(wf_api):
    # Given a saga whose undo of one node fails
    put_yaml(
        wf_api,
        "badundo",
        """
on_failure: compensate
defaults: {retry: {max_attempts: 1}}
nodes:
  - {id: a, target: {type: builtin, name: echo}, compensate: {type: builtin, name: echo}}
  - {id: b, needs: [a], target: {type: builtin, name: echo}, payload: {times: 9}, compensate: {type: builtin, name: fail}}
  - {id: c, needs: [b], target: {type: builtin, name: fail}, payload: {times: 9}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "badundo")["run_id"])
    # Then the run is FAILED, naming the compensation that failed and the node failure behind it
    assert run["state"] == "FAILED", run
    assert run["error"]["type"] == "CompensationFailed"
    assert run["error"]["compensations"][0]["node"] == "b"
    assert run["error"]["cause"]["node"] == "c"
    # And the other compensations still ran
    states = {c["node"]: c["state"] for c in run["compensations"]}
    assert states == {"b": "FAILED", "a": "SUCCEEDED"}


UNDO_BROKEN = threading.Event()


def flaky_refund(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An undo that fails while the test says its dependency is down (and is idempotent)."""
    with _seen_lock:
        SEEN.append({"undo-try": event["node"], "attempt": event["attempt"]})
    if UNDO_BROKEN.is_set():
        raise RuntimeError("refund service unavailable")
    return {"refunded": True}


@pytest.mark.parametrize("wf", [{"functions": {**FUNCTIONS, "flaky_refund": flaky_refund}}], indirect=True)
def test_a_failed_compensation_is_resumed_retrying_the_failed_undos_only(wf_api):
    # Given a saga whose charge undo fails while the refund service is down
    SEEN.clear()
    UNDO_BROKEN.set()
    put_yaml(
        wf_api,
        "undo-again",
        """
on_failure: compensate
defaults: {retry: {max_attempts: 1}}
nodes:
  - {id: reserve, target: {type: builtin, name: echo}, compensate: {type: lambda, function: refund}}
  - {id: charge, needs: [reserve], target: {type: builtin, name: echo}, compensate: {type: lambda, function: flaky_refund}}
  - {id: ship, needs: [charge], target: {type: builtin, name: fail}, payload: {times: 9}}
""",
    )
    run = wait_run(wf_api, start(wf_api, "undo-again", {"order": "B-2"})["run_id"])
    assert run["state"] == "FAILED" and run["error"]["type"] == "CompensationFailed", run
    assert {c["node"]: c["state"] for c in run["compensations"]} == {
        "charge": "FAILED",
        "reserve": "SUCCEEDED",
    }
    # When the service is back and the run is resumed
    UNDO_BROKEN.clear()
    resumed = wf_api("POST", f"/v1/runs/{run['run_id']}/resume")
    assert resumed.status == 200, resumed.body
    assert resumed.body["state"] == "RUNNING" and resumed.body["executions"] == 2
    done = wait_run(wf_api, run["run_id"])
    # Then the run is COMPENSATED, its cause the node failure; the failed undo ran again, the one that
    # had succeeded did not, and no node ran again
    assert done["state"] == "COMPENSATED", done
    assert done["error"]["type"] == "BuiltinFailure" and done["error"]["node"] == "ship"
    comps = {c["node"]: c for c in done["compensations"]}
    assert comps["charge"]["state"] == "SUCCEEDED" and comps["charge"]["attempts"] == 2
    assert comps["reserve"]["attempts"] == 1
    assert [n["attempts"] for n in done["nodes"]] == [1, 1, 1]
    assert [e["attempt"] for e in SEEN if e.get("undo-try") == "charge"] == [1, 2]
    assert sum(1 for e in SEEN if e.get("undo") == "reserve") == 1
    # And a compensated run cannot be resumed again
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/resume").status == 409


def test_stop_then_resume_skips_succeeded_nodes(wf_api):
    # Given a workflow with on_failure stop whose middle node fails on its first attempt only
    put_yaml(
        wf_api,
        "resumable",
        """
on_failure: stop
nodes:
  - {id: first, target: {type: builtin, name: echo}, payload: {one: 1}}
  - {id: side, target: {type: builtin, name: echo}}
  - {id: middle, needs: [first], target: {type: builtin, name: fail}, payload: {times: 1}, retry: {max_attempts: 1}}
  - {id: last, needs: [middle, side], target: {type: builtin, name: echo}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "resumable")["run_id"])
    # Then it FAILED at middle, nothing was compensated, last never ran
    assert run["state"] == "FAILED", run
    n = nodes(run)
    assert n["middle"]["state"] == "FAILED" and n["last"]["state"] == "SKIPPED"
    assert run["compensations"] == []
    first_finished = n["first"]["finished_at"]
    # When it is resumed
    resumed = wf_api("POST", f"/v1/runs/{run['run_id']}/resume")
    assert resumed.status == 200 and resumed.body["state"] == "RUNNING" and resumed.body["executions"] == 2
    run = wait_run(wf_api, run["run_id"])
    # Then only middle and last ran again; first and side kept their single attempt
    assert run["state"] == "SUCCEEDED", run
    n = nodes(run)
    assert n["first"]["attempts"] == 1 and n["first"]["finished_at"] == first_finished
    assert n["side"]["attempts"] == 1
    assert n["middle"]["attempts"] == 2 and n["last"]["attempts"] == 1
    assert run["error"] is None
    # And a succeeded run cannot be resumed
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/resume").status == 409


RELEASE_SLOW = threading.Event()


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A node that runs until the test lets it finish: the cancel surely arrives while it runs."""
    RELEASE_SLOW.wait(30)
    return {"slow": "done"}


@pytest.mark.parametrize("wf", [{"functions": {"slow": slow}}], indirect=True)
def test_cancel_stops_the_run_and_resume_finishes_it(wf_api):
    # Given a run whose first node is running, and stays running until the test says so
    RELEASE_SLOW.clear()
    put_yaml(
        wf_api,
        "slow",
        """
nodes:
  - {id: slow, target: {type: lambda, function: slow}}
  - {id: next, needs: [slow], target: {type: builtin, name: echo}}
""",
    )
    run = start(wf_api, "slow")
    wait_run(wf_api, run["run_id"], until=lambda r: nodes(r)["slow"]["state"] == "RUNNING")
    # When it is cancelled
    cancelled = wf_api("POST", f"/v1/runs/{run['run_id']}/cancel")
    # Then it is CANCELLED at once, and cancelling again is a conflict
    assert cancelled.status == 200 and cancelled.body["state"] == "CANCELLED", cancelled.body
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/cancel").status == 409
    # And next never starts, while the attempt already running finishes on its own
    RELEASE_SLOW.set()
    settled = wait_run(
        wf_api, run["run_id"], until=lambda r: nodes(r)["slow"]["state"] != "RUNNING", timeout_s=30
    )
    assert nodes(settled)["next"]["state"] == "SKIPPED"
    assert settled["state"] == "CANCELLED"
    # When it is resumed
    assert wf_api("POST", f"/v1/runs/{run['run_id']}/resume").status == 200
    done = wait_run(wf_api, run["run_id"])
    # Then it finishes without running slow again
    assert done["state"] == "SUCCEEDED", done
    assert nodes(done)["slow"]["attempts"] == 1 and nodes(done)["next"]["attempts"] == 1


def test_workflow_timeout_fails_the_run(wf_api):
    # Given a workflow that may run one second and a node that takes longer
    put_yaml(
        wf_api,
        "late",
        """
timeout_s: 1
nodes:
  - {id: long, target: {type: builtin, name: sleep}, payload: {ms: 1500}, timeout_s: 5}
  - {id: after, needs: [long], target: {type: builtin, name: echo}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "late")["run_id"], timeout_s=20)
    # Then it FAILED with WorkflowTimeout, after the attempt in flight settled
    assert run["state"] == "FAILED", run
    assert run["error"]["type"] == "WorkflowTimeout"
    assert nodes(run)["long"]["state"] == "SUCCEEDED" and nodes(run)["after"]["state"] == "SKIPPED"


def test_node_timeout_is_a_retryable_failure(wf_api):
    # Given a node that sleeps longer than its timeout, with one attempt
    put_yaml(
        wf_api,
        "tight",
        """
nodes:
  - {id: tight, target: {type: builtin, name: sleep}, payload: {ms: 3000}, timeout_s: 1, retry: {max_attempts: 1}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "tight")["run_id"])
    # Then the node failed with Timeout after about a second
    assert run["state"] == "FAILED", run
    node = nodes(run)["tight"]
    assert node["error"]["type"] == "Timeout"
    assert 900 <= ms(node["finished_at"]) - ms(node["started_at"]) < 2500


def test_list_runs_newest_first(wf_api):
    # Given two runs
    put_yaml(wf_api, "tiny", "nodes: [{id: a, target: {type: builtin, name: echo}}]")
    first = start(wf_api, "tiny")
    second = start(wf_api, "tiny")
    wait_run(wf_api, first["run_id"])
    wait_run(wf_api, second["run_id"])
    # When they are listed
    page = wf_api("GET", "/v1/workflows/tiny/runs", query={"limit": "1"}).body
    rest = wf_api("GET", "/v1/workflows/tiny/runs", query={"cursor": page["next_cursor"]}).body
    # Then they come newest first, one page at a time, with their final state
    assert [r["run_id"] for r in page["items"]] == [second["run_id"]]
    assert [r["run_id"] for r in rest["items"]] == [first["run_id"]] and rest["next_cursor"] is None
    assert page["items"][0]["state"] == "SUCCEEDED"


def test_run_graph_as_mermaid_shows_node_states(wf_api):
    # Given a finished run
    put_yaml(wf_api, "tiny", "nodes: [{id: a, target: {type: builtin, name: echo}}]")
    run = wait_run(wf_api, start(wf_api, "tiny")["run_id"])
    # When its graph is asked for
    text = wf_api("GET", f"/v1/runs/{run['run_id']}", query={"format": "mermaid"}).body
    # Then the box is coloured as succeeded
    assert "class n0 succeeded" in text


def huge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"rows": ["h" * 100] * 3000}  # about 300 KB: over what the ledger keeps in an item


def measure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {need: len(json.dumps(out)) for need, out in event["deps"].items()}


@pytest.mark.parametrize("wf", [{"functions": {"huge": huge, "measure": measure}}], indirect=True)
def test_a_large_node_output_lives_in_the_bucket_and_reaches_its_dependants(wf, wf_api):
    # Given a node whose 300 KB output is over the ledger's 128 KiB, and a node that needs it
    put_yaml(
        wf_api,
        "bigflow",
        """
nodes:
  - {id: produce, target: {type: lambda, function: huge}}
  - {id: consume, needs: [produce], target: {type: lambda, function: measure}}
""",
    )
    # When it runs
    run = wait_run(wf_api, start(wf_api, "bigflow")["run_id"])
    # Then it succeeded, the dependant got the whole output inline (it fits a Lambda call)
    assert run["state"] == "SUCCEEDED", run
    expected = len(json.dumps(huge({}, None)))
    consumed = wf_api("GET", f"/v1/runs/{run['run_id']}/nodes/consume").body["output"]
    assert consumed == {"produce": expected}
    # And the producer's output is served as a URL, its size given, and the object is the tenant's
    produced = wf_api("GET", f"/v1/runs/{run['run_id']}/nodes/produce").body
    assert produced["output"] is None and produced["output_url"].startswith("http")
    assert produced["output_bytes"] == len(json.dumps(huge({}, None), separators=(",", ":")))
    keys = [o["Key"] for o in wf.client("s3").list_objects_v2(Bucket=wf.settings.blob_bucket)["Contents"]]
    assert [k for k in keys if k.startswith(f"t/acme/runs/{run['run_id']}/produce/")], keys
