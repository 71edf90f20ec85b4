"""Workflow definitions and the run ledger: one behaviour on moto (DynamoDB) and on SQLite.

Attempts are fenced by their try id, a lost race is an ordinary answer, outputs too large for the
node item live apart, and expired items stay readable until TTL deletes them (as DynamoDB does).
"""

from __future__ import annotations

import json
import random
import threading

import pytest

from taskplane.adapters.run_store import RunRecord
from taskplane.adapters.workflow_store import VersionRecord, WorkflowRecord
from taskplane.domain.errors import Conflict, PayloadTooLarge
from taskplane.domain.ids import new_id
from taskplane.domain.workflow import NodeState, Phase, RunState

pytestmark = pytest.mark.contract

T0 = 1_780_000_000_000
DEFINITION = {"name": "w", "nodes": [{"id": "a", "target": {"type": "builtin", "name": "echo"}}]}


def workflow(tenant: str, name: str, latest: int, **fields) -> WorkflowRecord:
    return WorkflowRecord(
        tenant=tenant,
        name=name,
        latest=latest,
        digest=f"d{latest}",
        machine_arn=f"arn:aws:states:us-east-1:1:stateMachine:{name}",
        created_at=T0,
        updated_at=T0 + latest,
        description="a workflow",
        node_count=1,
        **fields,
    )


def version(n: int, definition: dict | None = None) -> VersionRecord:
    return VersionRecord(
        version=n,
        digest=f"d{n}",
        version_arn=f"arn:v:{n}",
        created_at=T0 + n,
        node_count=1,
        gates=("j",) if n % 2 else (),
        definition=definition or {**DEFINITION, "description": f"v{n}"},
    )


# -- workflows ------------------------------------------------------------------------------------


def test_publishing_versions_is_conditional_on_the_latest_seen(backend):
    t = backend.tenant
    v1, w1 = version(1), workflow(t, "orders", 1)
    backend.workflows.publish(None, w1, v1)
    assert backend.workflows.get(t, "orders") == w1
    with pytest.raises(Conflict):
        backend.workflows.publish(None, workflow(t, "orders", 1), version(1))  # someone published first
    w2 = workflow(t, "orders", 2, routing={1: 90, 2: 10})
    backend.workflows.publish(w1, w2, version(2))
    with pytest.raises(Conflict):
        backend.workflows.publish(w1, workflow(t, "orders", 3), version(3))  # stale: latest is 2
    assert backend.workflows.get(t, "orders") == w2
    assert backend.workflows.version(t, "orders", 2) == version(2)
    assert backend.workflows.version(t, "orders", 3) is None
    listed = backend.workflows.versions(t, "orders")
    assert [(v.version, v.digest, v.definition) for v in listed] == [(1, "d1", None), (2, "d2", None)]
    assert backend.workflows.get("other", "orders") is None
    assert backend.workflows.version("other", "orders", 1) is None


def test_two_racing_publishes_of_one_version_one_wins(backend):
    t = backend.tenant
    backend.workflows.publish(None, workflow(t, "race", 1), version(1))
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def publish(i: int) -> None:
        start.wait()
        try:
            backend.workflows.publish(
                workflow(t, "race", 1), workflow(t, "race", 2), version(2, {**DEFINITION, "i": i})
            )
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["won"]


def test_a_definition_too_large_for_an_item_is_refused_on_both(backend):
    rng = random.Random(7)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(600_000))
    with pytest.raises(PayloadTooLarge):
        backend.workflows.publish(None, workflow(backend.tenant, "big", 1), version(1, {"noise": noise}))
    assert backend.workflows.get(backend.tenant, "big") is None


def test_workflows_list_by_name_with_a_cursor_and_routing_changes(backend):
    t = backend.tenant
    names = ["b", "a", "d", "c", "e"]
    for name in names:
        backend.workflows.publish(None, workflow(t, name, 1), version(1))
    backend.workflows.publish(None, workflow("other" + t, "a", 1), version(1))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = backend.workflows.list_workflows(t, limit=2, cursor=cursor)
        seen += [w.name for w in page]
        if cursor is None:
            break
    assert seen == sorted(names)
    record = backend.workflows.get(t, "c")
    backend.workflows.set_routing(record, {1: 50, 2: 50}, T0 + 99)
    after = backend.workflows.get(t, "c")
    assert (after.routing, after.updated_at, after.latest) == ({1: 50, 2: 50}, T0 + 99, 1)


# -- runs -----------------------------------------------------------------------------------------


def run(tenant: str, n: int = 0, workflow_name: str = "w", **fields) -> RunRecord:
    return RunRecord(
        tenant=tenant,
        run_id=fields.pop("run_id", new_id(T0 + n)),
        workflow=workflow_name,
        version=1,
        version_arn="arn:v:1",
        state=RunState.RUNNING,
        phase=Phase.NODES,
        input={"order": n, "name": "ünï"},
        created_at=T0 + n,
        **fields,
    )


def test_a_run_is_created_once_and_read_back_whole(backend):
    r = run(backend.tenant, on_failure="compensate", execution_arn="arn:exec")
    backend.runs.create(r, expires_at=2_000_000_000)
    with pytest.raises(Conflict):
        backend.runs.create(r)
    got = backend.runs.get(backend.tenant, r.run_id)
    assert got == r.__class__(**{**r.__dict__, "updated_at": r.created_at})
    assert backend.runs.get("other", r.run_id) is None
    ledger = backend.runs.ledger(backend.tenant, r.run_id)
    assert ledger == (got, {}, {})


def test_run_updates_are_conditional_and_the_listing_follows_the_state(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    # A change from a state the run is not in, or another exec or phase: a lost race (None)
    assert backend.runs.update_run(r, states=[RunState.FAILED], changes={}, now_ms=T0 + 1) is None
    assert backend.runs.update_run(r, states=[RunState.RUNNING], exec=2, changes={}, now_ms=T0 + 1) is None
    assert (
        backend.runs.update_run(
            r, states=[RunState.RUNNING], phases=[Phase.COMPENSATING], changes={}, now_ms=T0 + 1
        )
        is None
    )
    settling = backend.runs.update_run(
        r,
        states=[RunState.RUNNING],
        exec=1,
        phases=[Phase.NODES],
        changes={"phase": Phase.SETTLING, "error": {"type": "Boom"}},
        now_ms=T0 + 2,
    )
    assert (settling.phase, settling.error, settling.updated_at) == (Phase.SETTLING, {"type": "Boom"}, T0 + 2)
    done = backend.runs.update_run(
        settling,
        states=[RunState.RUNNING],
        changes={"state": RunState.FAILED, "finished_at": T0 + 3},
        remove=("error",),
        now_ms=T0 + 3,
        expires_at=2_000_000_000,
    )
    assert (done.state, done.finished_at, done.error) == (RunState.FAILED, T0 + 3, None)
    summaries, _ = backend.runs.list_runs(t, "w")
    assert [(s.run_id, s.state, s.finished_at) for s in summaries] == [(r.run_id, RunState.FAILED, T0 + 3)]
    # Resumed: RUNNING again, the listing loses its finish time
    again = backend.runs.update_run(
        done,
        states=[RunState.FAILED],
        changes={"state": RunState.RUNNING, "exec": 2},
        remove=("finished_at",),
        now_ms=T0 + 4,
    )
    assert again.exec == 2
    assert backend.runs.list_runs(t, "w")[0][0].finished_at is None
    # record_error keeps the first error of the exec it names only
    backend.runs.record_error(t, r.run_id, 1, {"type": "Old"})
    backend.runs.record_error(t, r.run_id, 2, {"type": "First"})
    backend.runs.record_error(t, r.run_id, 2, {"type": "Second"})
    assert backend.runs.get(t, r.run_id).error == {"type": "First"}


def test_runs_list_newest_first_per_workflow_with_a_cursor(backend):
    t = backend.tenant
    made = [run(t, n) for n in range(5)]
    for r in made:
        backend.runs.create(r)
    backend.runs.create(run(t, 9, workflow_name="other"))
    first, cursor = backend.runs.list_runs(t, "w", limit=3)
    rest, end = backend.runs.list_runs(t, "w", limit=3, cursor=cursor)
    assert [s.run_id for s in first + rest] == sorted((r.run_id for r in made), reverse=True)
    assert end is None
    assert backend.runs.list_runs("other" + t, "w") == ([], None)


def test_node_attempts_are_fenced_by_their_try_id(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    first = backend.runs.start_node(
        t, r.run_id, "a", exec=1, try_id="try1", now_ms=T0 + 1, expires_at=2 * 10**9
    )
    assert (first.state, first.attempts, first.started_at, first.try_id) == (
        NodeState.RUNNING,
        1,
        T0 + 1,
        "try1",
    )
    # A second attempt (the first timed out in Step Functions) takes over the fence
    second = backend.runs.start_node(
        t, r.run_id, "a", exec=1, try_id="try2", now_ms=T0 + 5, expires_at=2 * 10**9
    )
    assert (second.attempts, second.started_at, second.attempt_at) == (2, T0 + 1, T0 + 5)
    stale = dict(try_id="try1", attempt=1, now_ms=T0 + 6, output_json='{"x":1}', out_bytes=7)
    assert not backend.runs.node_succeeded(
        t, r.run_id, "a", **stale, preview_json='{"x":1}', expires_at=2 * 10**9
    )
    assert not backend.runs.node_failed(
        t, r.run_id, "a", try_id="try1", state=NodeState.FAILED, error={"type": "E"}, now_ms=T0 + 6
    )
    assert backend.runs.node_succeeded(
        t,
        r.run_id,
        "a",
        try_id="try2",
        attempt=2,
        now_ms=T0 + 7,
        output_json='{"y":2}',
        out_bytes=7,
        preview_json='{"y":2}',
        expires_at=2 * 10**9,
    )
    assert backend.runs.output(t, r.run_id, "a") == (True, {"y": 2})
    # A node that succeeded is not started again (a resumed run skips it)
    assert (
        backend.runs.start_node(t, r.run_id, "a", exec=2, try_id="try3", now_ms=T0 + 8, expires_at=1) is None
    )
    _, nodes, _ = backend.runs.ledger(t, r.run_id)
    node = nodes["a"]
    assert (node.state, node.attempts, node.finished_at, node.out_bytes, node.preview) == (
        NodeState.SUCCEEDED,
        2,
        T0 + 7,
        7,
        {"y": 2},
    )


def test_a_large_output_lives_apart_and_reaches_the_nodes_that_need_it(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    big = {"rows": ["r" * 100] * 500}
    text = json.dumps(big)
    for node, value in (("small", {"n": 1}), ("big", big)):
        backend.runs.start_node(t, r.run_id, node, exec=1, try_id="x", now_ms=T0, expires_at=2 * 10**9)
        small = node == "small"
        assert backend.runs.node_succeeded(
            t,
            r.run_id,
            node,
            try_id="x",
            attempt=1,
            now_ms=T0 + 1,
            output_json=json.dumps(value),
            out_bytes=len(json.dumps(value)),
            preview_json=json.dumps(value) if small else None,
            expires_at=2 * 10**9,
        )
    run_seen, outputs = backend.runs.node_inputs(t, r.run_id, ["small", "big", "never"])
    assert run_seen.run_id == r.run_id
    assert outputs == {"small": {"n": 1}, "big": big}
    assert backend.runs.output(t, r.run_id, "big") == (True, big)
    assert backend.runs.output(t, r.run_id, "never") == (False, None)
    _, nodes, _ = backend.runs.ledger(t, r.run_id)
    assert not nodes["big"].has_preview and nodes["big"].out_bytes == len(text)


def test_an_output_kept_in_the_bucket_is_answered_as_its_reference(backend):
    from taskplane.domain.blobs import BlobRef

    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    ref = BlobRef(key=f"t/{t}/runs/{r.run_id}/huge/x", size=300_000, sha256="ab")
    backend.runs.start_node(t, r.run_id, "huge", exec=1, try_id="x", now_ms=T0, expires_at=2 * 10**9)
    assert backend.runs.node_succeeded(
        t,
        r.run_id,
        "huge",
        try_id="x",
        attempt=1,
        now_ms=T0 + 1,
        output_json="",
        out_bytes=300_000,
        preview_json=None,
        expires_at=2 * 10**9,
        output_ref=ref,
    )
    assert backend.runs.node_inputs(t, r.run_id, ["huge"])[1] == {"huge": ref}
    assert backend.runs.output(t, r.run_id, "huge") == (True, ref)


def test_withdrawn_starts_and_failures_follow_their_conditions(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    backend.runs.start_node(t, r.run_id, "a", exec=1, try_id="x", now_ms=T0, expires_at=2 * 10**9)
    backend.runs.withdraw_start(t, r.run_id, "a", try_id="other")  # not its attempt: nothing
    backend.runs.withdraw_start(t, r.run_id, "a", try_id="x")
    _, nodes, _ = backend.runs.ledger(t, r.run_id)
    assert (nodes["a"].state, nodes["a"].attempts, nodes["a"].try_id) == (NodeState.PENDING, 0, None)
    backend.runs.start_node(t, r.run_id, "a", exec=1, try_id="y", now_ms=T0 + 1, expires_at=2 * 10**9)
    assert backend.runs.node_failed(
        t, r.run_id, "a", try_id="y", state=NodeState.RETRYING, error={"type": "E1"}, now_ms=T0 + 2
    )
    assert not backend.runs.node_failed(  # expects RUNNING, it is RETRYING now
        t, r.run_id, "a", try_id="y", state=NodeState.FAILED, error={"type": "E2"}, now_ms=T0 + 3
    )
    assert backend.runs.node_failed(
        t,
        r.run_id,
        "a",
        try_id=None,
        state=NodeState.FAILED,
        error={"type": "E3"},
        now_ms=T0 + 4,
        expect=NodeState.RETRYING,
    )
    _, nodes, _ = backend.runs.ledger(t, r.run_id)
    assert (nodes["a"].state, nodes["a"].error, nodes["a"].finished_at) == (
        NodeState.FAILED,
        {"type": "E3"},
        T0 + 4,
    )
    assert not backend.runs.node_failed(
        t, r.run_id, "missing", try_id=None, state=NodeState.FAILED, error={}, now_ms=T0
    )


def test_gates_count_each_need_once_per_execution(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    assert backend.runs.need_done(t, r.run_id, "join", "a", 1, expires_at=2 * 10**9) == (None, {"a"})
    assert backend.runs.need_done(t, r.run_id, "join", "a", 1, expires_at=2 * 10**9) == (None, {"a"})
    assert backend.runs.register_gate(t, r.run_id, "join", "tok1", 1, expires_at=2 * 10**9) == {"a"}
    assert backend.runs.need_done(t, r.run_id, "join", "b", 1, expires_at=2 * 10**9) == ("tok1", {"a", "b"})
    # A resumed execution counts afresh, and a gate of another execution is not its gate
    assert backend.runs.need_done(t, r.run_id, "join", "a", 2, expires_at=2 * 10**9) == (None, {"a"})
    assert backend.runs.register_gate(t, r.run_id, "join", "tok2", 2, expires_at=2 * 10**9) == {"a"}
    assert backend.runs.need_done(t, r.run_id, "join", "b", 2, expires_at=2 * 10**9) == ("tok2", {"a", "b"})


def test_compensations_start_until_one_succeeds(backend):
    t = backend.tenant
    r = run(t)
    backend.runs.create(r)
    start = dict(now_ms=T0, expires_at=2 * 10**9)
    assert backend.runs.start_compensation(t, r.run_id, "a", try_id="c1", **start) == (True, 1)
    assert not backend.runs.compensation_finished(
        t, r.run_id, "a", try_id="c0", state=NodeState.FAILED, error=None, now_ms=T0
    )
    assert backend.runs.compensation_finished(
        t, r.run_id, "a", try_id="c1", state=NodeState.RETRYING, error={"type": "E"}, now_ms=T0 + 1
    )
    assert backend.runs.start_compensation(
        t, r.run_id, "a", try_id="c2", now_ms=T0 + 2, expires_at=2 * 10**9
    ) == (
        True,
        2,
    )
    assert backend.runs.compensation_finished(
        t, r.run_id, "a", try_id="c2", state=NodeState.SUCCEEDED, error=None, now_ms=T0 + 3
    )
    assert backend.runs.start_compensation(t, r.run_id, "a", try_id="c3", **start) == (False, 0)
    _, _, comps = backend.runs.ledger(t, r.run_id)
    c = comps["a"]
    assert (c.state, c.attempts, c.started_at, c.attempt_at, c.finished_at, c.error) == (
        NodeState.SUCCEEDED,
        2,
        T0,
        T0 + 2,
        T0 + 3,
        None,
    )


def test_expired_items_stay_readable_until_ttl_deletes_them(backend):
    # DynamoDB serves an item past its TTL until its background deletion (days later); SQLite keeps
    # the same rule, its purge (Database.purge_expired) playing the TTL process.
    t = backend.tenant
    r = run(t)
    backend.runs.create(r, expires_at=1)  # expired in 1970
    backend.runs.start_node(t, r.run_id, "a", exec=1, try_id="x", now_ms=T0, expires_at=1)
    assert backend.runs.get(t, r.run_id) is not None
    assert "a" in backend.runs.ledger(t, r.run_id)[1]
    assert [s.run_id for s in backend.runs.list_runs(t, "w")[0]] == [r.run_id]
