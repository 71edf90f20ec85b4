"""How many Step Functions history events one run of a workflow can write (pure).

A Standard execution stops, failed, at 25,000 history events, whatever it was doing. The compiled
state machine (:mod:`taskplane.domain.asl`) writes a known number of events per state, so the most
a run can write follows from the definition; the API refuses, at PUT, a workflow whose worst case
passes :data:`HISTORY_LIMIT`.

Events per state, as Step Functions writes them (the names of its ``HistoryEventType``; counted on
moto's executor by ``tests/integration/test_workflow_history.py``):

========================================  ======  =================================================
state                                     events  which
========================================  ======  =================================================
the execution                             2       ExecutionStarted, ExecutionSucceeded or -Failed
a node (Lambda task)                      5       TaskStateEntered, LambdaFunctionScheduled,
                                                  -Started, -Succeeded, TaskStateExited
each retried attempt of a node            +3      LambdaFunctionScheduled, -Started, -Failed
a gate (``.waitForTaskToken``)            6       TaskStateEntered, TaskScheduled, TaskStarted,
                                                  TaskSubmitted, TaskSucceeded, TaskStateExited
a Parallel state                          4       ParallelStateEntered, -Started, -Succeeded, -Exited
a Choice, Wait or Pass state              2       ...Entered, ...Exited
a Fail state                              1       FailStateEntered
a Map state                               4 + 2n  MapStateEntered, -Started, -Succeeded, -Exited and
                                                  MapIterationStarted, -Succeeded per item
a state stopped when a sibling branch     +1      ...StateAborted
fails
========================================  ======  =================================================

The worst case of a run is: every node used all its attempts, every gate waited, then a node failed
for good and the run *settled* for as long as an attempt can still be running (the longest node
``timeout_s`` plus the step function's grace, one 9-event loop a second: the verdict task, the
Choice and a one-second Wait), then compensated every node that has an undo, with every undo using
all of the default retry policy's attempts. The platform's own transient retries (a throttled step
function is retried up to 3 times) are not in the figure: the limit keeps a tenth of the quota for
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskplane.domain.workflow import Workflow

#: Step Functions' quota on one Standard execution's history.
STEP_FUNCTIONS_HISTORY_QUOTA = 25_000
#: What a workflow's worst case may reach: 10% of the quota stays for transient retries.
HISTORY_LIMIT = 22_500

EXECUTION = 2
TASK = 5
RETRY = 3
GATE = 6
PARALLEL = 4
CHOICE = WAIT = PASS = 2
FAIL = 1
MAP = 4
MAP_ITEM = 2
ABORTED = 1


@dataclass(frozen=True)
class HistoryEstimate:
    """The worst case of one run, by phase (events)."""

    nodes: int
    aborted: int
    settle: int
    compensation: int

    @property
    def total(self) -> int:
        return EXECUTION + self.nodes + self.aborted + max(TASK, self.settle + self.compensation)


def settle_seconds(workflow: Workflow) -> int:
    """The longest a failed run waits for an attempt still running (its timeout and the grace)."""
    from taskplane.domain.asl import GRACE_S

    return max(node.timeout_s for node in workflow.nodes) + GRACE_S


def worst_case(workflow: Workflow) -> HistoryEstimate:
    """The most history events one run of ``workflow`` can write, phase by phase.

    Examples
    --------
    >>> from taskplane.domain.workflow import parse_workflow
    >>> wf = parse_workflow("nodes: [{id: a, target: {type: builtin, name: echo}}]", name="one")
    >>> worst_case(wf).nodes  # the Parallel (4), the node with its 3 attempts (5 + 2 x 3), the end gate (6)
    21
    """
    from taskplane.domain.asl import layout

    plan = layout(workflow)
    fans = sum(1 for kids in plan.children.values() if len(kids) > 1)
    gates = len(plan.gated) + 1  # and the end gate that waits for the sinks
    parallels = 1 + fans
    node_events = sum(TASK + RETRY * (node.retry.max_attempts - 1) for node in workflow.nodes)
    nodes = PARALLEL * parallels + GATE * gates + node_events
    # When a branch fails, every state still running elsewhere is aborted: at most one per node,
    # gate and Parallel.
    aborted = ABORTED * (len(workflow.nodes) + gates + parallels)
    # The verdict task and its Choice once, then a Wait, the verdict and the Choice each second.
    settle = TASK + CHOICE + (settle_seconds(workflow) + 1) * (WAIT + TASK + CHOICE)
    compensable = [n for n in workflow.nodes if n.compensate is not None]
    if workflow.on_failure == "compensate" and compensable:
        undo = TASK + RETRY * (workflow.spec.defaults.retry.max_attempts - 1) + PASS
        waves = len(compensable)  # at most one wave per node
        compensation = (
            MAP + MAP_ITEM * waves  # the waves, one at a time
            + waves * MAP + MAP_ITEM * len(compensable)  # the nodes of each wave
            + undo * len(compensable)
            + TASK + CHOICE + FAIL  # the verdict and the end
        )  # fmt: skip
    else:
        compensation = FAIL
    return HistoryEstimate(nodes=nodes, aborted=aborted, settle=settle, compensation=compensation)


def clean_run(workflow: Workflow) -> int:
    """The events of a run in which every node succeeds at its first attempt (exact)."""
    from taskplane.domain.asl import layout

    plan = layout(workflow)
    fans = sum(1 for kids in plan.children.values() if len(kids) > 1)
    return (
        EXECUTION + PARALLEL * (1 + fans) + GATE * (len(plan.gated) + 1) + TASK * len(workflow.nodes) + TASK
    )


def check(workflow: Workflow) -> HistoryEstimate:
    """The worst case, or a 400 naming it when one run could pass :data:`HISTORY_LIMIT`.

    Raises
    ------
    InvalidRequest
        The workflow's worst case is over the limit.
    """
    from taskplane.domain.errors import InvalidRequest

    estimate = worst_case(workflow)
    if estimate.total <= HISTORY_LIMIT:
        return estimate
    raise InvalidRequest(
        f"one run of this workflow could write {estimate.total:,} Step Functions history events "
        f"(nodes and their retries {estimate.nodes:,}, waiting {settle_seconds(workflow)} s for running "
        f"nodes after a failure {estimate.settle:,}, compensation {estimate.compensation:,}); the limit is "
        f"{HISTORY_LIMIT:,} (Step Functions stops a run at {STEP_FUNCTIONS_HISTORY_QUOTA:,}): use fewer "
        "nodes, fewer retry attempts or shorter node timeouts, or split the workflow",
        [
            {
                "field": "nodes",
                "problem": "history_quota",
                "events": estimate.total,
                "limit": HISTORY_LIMIT,
                "nodes_events": estimate.nodes,
                "aborted_events": estimate.aborted,
                "settle_events": estimate.settle,
                "compensation_events": estimate.compensation,
            }
        ],
    )
