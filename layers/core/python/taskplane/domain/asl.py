"""Compile a :class:`~taskplane.domain.workflow.Workflow` to Amazon States Language (JSONPath; pure).

Shape
=====
Every node starts as soon as all of its ``needs`` are done, whatever else is still running. A
level-by-level plan (one Parallel per topological level) makes a node wait for its whole level, and
nesting Parallel states only expresses series-parallel graphs (it cannot express a->c, a->d, b->d
without making c or d wait for something it does not need). So:

* a node with **one** need runs right after it, in the same branch: the first such child follows
  its parent directly, and when a node has several, a Parallel state after it runs one branch per
  child. No coordination is needed, and no node waits for anything but its need;
* a node with **several** needs (a join) heads its own branch behind a **gate**: a
  ``lambda:invoke.waitForTaskToken`` task that hands its task token to the step function, which
  records it in the run ledger and sends it back (``SendTaskSuccess``) the moment the last of the
  node's needs has succeeded (or at once, when they already have). Nodes nested too deeply
  (:data:`MAX_NESTING` Parallel states) are gated the same way, to keep the definition flat;
* one Parallel state runs all branches at once, plus a watchdog branch: the gate ``taskplane.end``
  that needs every sink node and times out after the workflow's ``timeout_s`` (Parallel states have
  no ``TimeoutSeconds`` of their own, and a state machine timeout cannot be caught).

A node's task runs the step function with ``{"action": "run", "node": id, "run": ..., "retry":
$$.State.RetryCount}``. Outputs never travel through the execution state: the step function keeps
them in the run ledger and reads a node's ``deps`` from there, so the state stays a few hundred bytes
whatever the outputs weigh (Step Functions caps it at 256 KB). Retries are ASL ``Retry`` with
``JitterStrategy: FULL`` and ``MaxDelaySeconds`` (intervals are whole seconds, at least 1); the step
function raises ``NodeFailed`` for failures no retry can fix, and the first retrier never retries it.

When a branch fails, the Parallel's Catch goes to ``taskplane.failed``: the step function stops new
starts, waits (``taskplane.settle``, one second at a time) for attempts still running, and answers
the compensation plan; a Map over its waves (one wave at a time, the nodes of a wave in parallel)
runs each completed node's ``compensate`` target in reverse topological order. A workflow that
compensates starts at a Choice (``taskplane.begin``): an execution started with ``"resume":
"compensation"`` goes straight to ``taskplane.failed`` and the compensation plan, so resuming a run
whose undo failed retries the undos only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from taskplane.domain.errors import InvalidRequest
from taskplane.domain.retry import RetryPolicy
from taskplane.domain.workflow import FATAL_ERROR, Node, Workflow

#: Step Functions' quota on a state machine definition.
MAX_DEFINITION_BYTES = 1024 * 1024
#: Added to a node's ``timeout_s`` for the task's ``TimeoutSeconds``: the step function enforces the
#: node's own timeout, and this backstop only catches an invocation that never answers.
GRACE_S = 5
#: The watchdog gate's node id (node ids cannot contain ``$``).
END_GATE = "$end"
#: Deepest nesting of Parallel states for single-need nodes; deeper ones are gated instead.
MAX_NESTING = 8

CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
NODES = "taskplane.nodes"
#: The first state of a workflow that compensates: a run's nodes, or (resumed) its compensation only.
BEGIN = "taskplane.begin"
#: ``$.resume`` of an execution that retries a run's failed compensations.
RESUME_COMPENSATION = "compensation"
# Transient failures of the step function itself (throttling, a DynamoDB hiccup): retry a few times.
# (ASL defaults: IntervalSeconds 1, BackoffRate 2.0.)
_STEP_RETRY = [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 3}]


def retry_block(policy: RetryPolicy) -> list[dict[str, Any]]:
    """ASL ``Retry`` for a node: never ``NodeFailed``; everything else per ``policy``.

    ASL counts retries, not attempts, and its intervals are whole seconds (at least 1).

    Examples
    --------
    >>> retry_block(RetryPolicy(max_attempts=3, base_delay_ms=500, max_delay_ms=30000))[1]["IntervalSeconds"]
    1
    """
    if policy.max_attempts <= 1:
        return []
    interval = max(1, -(-policy.base_delay_ms // 1000))
    cap = max(interval, -(-policy.max_delay_ms // 1000))
    retrier: dict[str, Any] = {
        "ErrorEquals": ["States.ALL"],
        "IntervalSeconds": interval,
        "MaxAttempts": policy.max_attempts - 1,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": cap,
    }
    if policy.jitter == "full":
        retrier["JitterStrategy"] = "FULL"
    return [{"ErrorEquals": [FATAL_ERROR], "MaxAttempts": 0}, retrier]


def gate_state(
    node_id: str, function_arn: str, next_state: str | None, timeout_s: int | None = None
) -> dict[str, Any]:
    """The task that waits until ``node_id``'s needs are done (the step function sends the token)."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": CALLBACK,
        "Parameters": {
            "FunctionName": function_arn,
            "Payload": {"action": "gate", "node": node_id, "run.$": "$.run", "token.$": "$$.Task.Token"},
        },
        "ResultPath": None,
        "Retry": _STEP_RETRY,
    }
    if timeout_s is not None:
        state["TimeoutSeconds"] = timeout_s
    return _link(state, next_state)


def node_state(node: Node, function_arn: str, next_state: str | None) -> dict[str, Any]:
    """The task that runs one node's target through the step function."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": function_arn,
        "Parameters": {"action": "run", "node": node.id, "run.$": "$.run", "retry.$": "$$.State.RetryCount"},
        "TimeoutSeconds": node.timeout_s + GRACE_S,
        "ResultPath": None,
    }
    retry = retry_block(node.retry)
    if retry:
        state["Retry"] = retry
    return _link(state, next_state)


def _link(state: dict[str, Any], next_state: str | None) -> dict[str, Any]:
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def gate_name(node_id: str) -> str:
    return f"{node_id}.wait"


@dataclass(frozen=True)
class Layout:
    """Where each node runs: ``roots`` head top-level branches; ``children[n]`` run right after ``n``
    (in sequence when there is one, in a Parallel state when there are several); ``gated`` nodes
    start behind a gate."""

    roots: tuple[str, ...]
    children: dict[str, tuple[str, ...]]
    gated: frozenset[str]


def layout(workflow: Workflow) -> Layout:
    """Place every node: after its need when it has one (up to :data:`MAX_NESTING` nested Parallel
    states deep), else at the top level, behind a gate when it has needs.

    Children are ordered longest path first, so the child that continues its parent's branch in
    sequence (no Parallel state) is the one with the most work below it.
    """
    height: dict[str, int] = {}
    for node_id in reversed(workflow.order):
        below = [height[d] for d in workflow.dependants[node_id]]
        height[node_id] = 1 + max(below) if below else 1
    position = {node_id: i for i, node_id in enumerate(workflow.order)}
    roots: list[str] = []
    children: dict[str, tuple[str, ...]] = {}
    depth: dict[str, int] = {}  # Parallel states around a node
    for node_id in workflow.order:  # a parent comes before its children
        if node_id not in depth:  # not placed under its need: it heads a top-level branch
            roots.append(node_id)
            depth[node_id] = 0
        kids = sorted(
            (d for d in workflow.dependants[node_id] if workflow.by_id[d].needs == (node_id,)),
            key=lambda d: (-height[d], position[d]),
        )
        if len(kids) > 1 and depth[node_id] >= MAX_NESTING:
            kids = kids[:1]  # the others head their own branches, behind gates
        if kids:
            children[node_id] = tuple(kids)
        for d in kids:
            depth[d] = depth[node_id] + (1 if len(kids) > 1 else 0)
    gates = frozenset(r for r in roots if workflow.by_id[r].needs)
    return Layout(roots=tuple(roots), children=children, gated=gates)


def gated(workflow: Workflow) -> frozenset[str]:
    """Nodes that wait behind a gate; every other node runs right after its one need."""
    return layout(workflow).gated


def _sequence(head: str, plan: Layout, workflow: Workflow, function_arn: str, states: dict[str, Any]) -> str:
    """Add the states that run ``head`` and everything placed under it; answers the first state's name."""
    start = head
    if head in plan.gated:
        start = gate_name(head)
        states[start] = gate_state(head, function_arn, head)
    node_id: str | None = head
    while node_id is not None:
        kids = plan.children.get(node_id, ())
        if len(kids) == 1:
            states[node_id] = node_state(workflow.by_id[node_id], function_arn, kids[0])
            node_id = kids[0]
        elif kids:
            fan = f"{node_id}.then"
            states[node_id] = node_state(workflow.by_id[node_id], function_arn, fan)
            branches = []
            for kid in kids:
                inner: dict[str, Any] = {}
                branches.append(
                    {"StartAt": _sequence(kid, plan, workflow, function_arn, inner), "States": inner}
                )
            states[fan] = {"Type": "Parallel", "Branches": branches, "ResultPath": None, "End": True}
            node_id = None
        else:
            states[node_id] = node_state(workflow.by_id[node_id], function_arn, None)
            node_id = None
    return start


def compile_asl(workflow: Workflow, function_arn: str, *, version: int | None = None) -> dict[str, Any]:
    """The state machine definition of ``workflow``, calling the step function ``function_arn``.

    Parameters
    ----------
    workflow
        A validated workflow.
    function_arn
        ARN of the platform's step function.
    version
        Shown in the definition's ``Comment``.

    Returns
    -------
    dict
        The ASL document (serialize with :func:`to_json`).

    Raises
    ------
    InvalidRequest
        The compiled definition is over Step Functions' 1 MB quota.

    Examples
    --------
    >>> from taskplane.domain.workflow import parse_workflow
    >>> wf = parse_workflow("nodes: [{id: a, target: {type: builtin, name: echo}}]", name="demo")
    >>> asl = compile_asl(wf, "arn:aws:lambda:us-east-1:123456789012:function:taskplane-step")
    >>> asl["StartAt"]
    'taskplane.nodes'
    """
    plan = layout(workflow)
    branches = []
    for root in plan.roots:
        states_of_branch: dict[str, Any] = {}
        branches.append(
            {
                "StartAt": _sequence(root, plan, workflow, function_arn, states_of_branch),
                "States": states_of_branch,
            }
        )
    branches.append(
        {
            "StartAt": "taskplane.end",
            "States": {
                "taskplane.end": gate_state(END_GATE, function_arn, None, timeout_s=workflow.timeout_s)
            },
        }
    )
    label = f" v{version}" if version is not None else ""
    states: dict[str, Any] = {
        NODES: {
            "Type": "Parallel",
            "Branches": branches,
            "ResultPath": None,
            "Next": "taskplane.succeeded",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "taskplane.failed"}],
        },
        "taskplane.succeeded": _step("succeeded", function_arn, result_path=None, end=True),
        "taskplane.failed": {
            **_step("failed", function_arn, result_path="$.plan", end=False),
            "Parameters": {"action": "failed", "run.$": "$.run", "error.$": "$.error"},
            "Next": "taskplane.route",
        },
        "taskplane.route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.wait", "BooleanEquals": True, "Next": "taskplane.settle"}],
            "Default": "taskplane.stopped",
        },
        "taskplane.settle": {"Type": "Wait", "Seconds": 1, "Next": "taskplane.failed"},
        "taskplane.stopped": {
            "Type": "Fail",
            "Error": "taskplane.RunFailed",
            "Cause": "a node failed; the run ledger has the details",
        },
    }
    compensable = [n for n in workflow.nodes if n.compensate is not None]
    start = NODES
    if workflow.on_failure == "compensate" and compensable:
        states["taskplane.route"]["Choices"].append(
            {"Variable": "$.plan.compensate", "BooleanEquals": True, "Next": "taskplane.compensate"}
        )
        states.update(_compensation_states(workflow, compensable, function_arn))
        # A run whose compensation failed is resumed straight into the plan: no node runs again,
        # and the undos that succeeded are skipped by the ledger (see services/workflows.py).
        start = BEGIN
        states[BEGIN] = {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.resume", "IsPresent": True},
                        {"Variable": "$.resume", "StringEquals": RESUME_COMPENSATION},
                    ],
                    "Next": "taskplane.failed",
                }
            ],
            "Default": NODES,
        }
    return {
        "Comment": f"taskplane workflow {workflow.name}{label}: {len(workflow.nodes)} nodes",
        "StartAt": start,
        "States": states,
    }


def _step(action: str, function_arn: str, *, result_path: str | None, end: bool) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": function_arn,
        "Parameters": {"action": action, "run.$": "$.run"},
        "ResultPath": result_path,
        "Retry": _STEP_RETRY,
    }
    if end:
        state["End"] = True
    return state


def _compensation_states(workflow: Workflow, compensable: list[Node], function_arn: str) -> dict[str, Any]:
    undo: dict[str, Any] = {
        "Type": "Task",
        "Resource": function_arn,
        "Parameters": {
            "action": "compensate",
            "node.$": "$.node",
            "run.$": "$.run",
            "retry.$": "$$.State.RetryCount",
        },
        "TimeoutSeconds": max(n.timeout_s for n in compensable) + GRACE_S,
        "ResultPath": None,
        # The step function has recorded the failure in the ledger; the other compensations go on.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "taskplane.undo-failed"}],
        "End": True,
    }
    retry = retry_block(workflow.spec.defaults.retry)
    if retry:
        undo["Retry"] = retry
    wave = {
        "Type": "Map",
        "ItemsPath": "$.wave",
        "ItemSelector": {"node.$": "$$.Map.Item.Value", "run.$": "$.run"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": "taskplane.undo",
            "States": {
                "taskplane.undo": undo,
                "taskplane.undo-failed": {"Type": "Pass", "Result": {}, "End": True},
            },
        },
        "ResultPath": None,
        "End": True,
    }
    return {
        "taskplane.compensate": {
            "Type": "Map",
            "ItemsPath": "$.plan.waves",
            "MaxConcurrency": 1,
            "ItemSelector": {"wave.$": "$$.Map.Item.Value", "run.$": "$.run"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "taskplane.wave",
                "States": {"taskplane.wave": wave},
            },
            "ResultPath": None,
            "Next": "taskplane.compensated",
        },
        "taskplane.compensated": {
            **_step("compensated", function_arn, result_path="$.outcome", end=False),
            "Next": "taskplane.outcome",
        },
        "taskplane.outcome": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.outcome.state",
                    "StringEquals": "COMPENSATED",
                    "Next": "taskplane.rolled-back",
                }
            ],
            "Default": "taskplane.compensation-failed",
        },
        "taskplane.rolled-back": {
            "Type": "Fail",
            "Error": "taskplane.Compensated",
            "Cause": "a node failed; every completed node was compensated",
        },
        "taskplane.compensation-failed": {
            "Type": "Fail",
            "Error": "taskplane.CompensationFailed",
            "Cause": "a node failed and a compensation failed too; the run ledger has the details",
        },
    }


def to_json(asl: dict[str, Any]) -> str:
    """Compact JSON of a definition, checked against the 1 MB quota."""
    text = json.dumps(asl, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode("utf-8"))
    if size > MAX_DEFINITION_BYTES:
        raise InvalidRequest(
            f"the compiled state machine is {size} bytes, over Step Functions' {MAX_DEFINITION_BYTES}-byte quota",
            [
                {
                    "field": "nodes",
                    "problem": "definition_too_large",
                    "size": size,
                    "limit": MAX_DEFINITION_BYTES,
                }
            ],
        )
    return text
