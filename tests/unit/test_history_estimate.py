"""The worst-case history-event figure of a workflow (pure: no AWS; checked against moto in
tests/integration/test_workflow_history.py)."""

from __future__ import annotations

import pytest

from taskplane.domain import history
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.workflow import MAX_NODES, parse_workflow

pytestmark = pytest.mark.unit


def nodes(count: int, extra: str = "", needs_previous: bool = False) -> str:
    lines = []
    for i in range(count):
        needs = f", needs: [n{i - 1}]" if needs_previous and i else ""
        lines.append(f"  - {{id: n{i}, target: {{type: builtin, name: echo}}{needs}{extra}}}")
    return "nodes:\n" + "\n".join(lines) + "\n"


def test_the_largest_plain_workflows_fit() -> None:
    # Given the most nodes the API accepts, with the default retry policy (3 attempts, 60 s timeouts)
    for chain in (False, True):
        workflow = parse_workflow(nodes(MAX_NODES, needs_previous=chain), name="big")
        # Then one run's worst case fits the limit
        estimate = history.check(workflow)
        assert estimate.total <= history.HISTORY_LIMIT
        # and the clean run is far below it (about 5 events a node)
        assert 5 * MAX_NODES < history.clean_run(workflow) < 6 * MAX_NODES + 100


def test_retries_timeouts_and_compensation_each_raise_the_figure() -> None:
    base = history.worst_case(parse_workflow(nodes(10), name="w"))
    retried = history.worst_case(parse_workflow(nodes(10, ", retry: {max_attempts: 5}"), name="w"))
    slow = history.worst_case(parse_workflow(nodes(10, ", timeout_s: 900"), name="w"))
    undo = ", compensate: {type: builtin, name: echo}"
    compensated = history.worst_case(parse_workflow("on_failure: compensate\n" + nodes(10, undo), name="w"))
    # 2 more attempts of 10 nodes: 3 events each
    assert retried.nodes - base.nodes == 10 * 2 * history.RETRY
    # each second of settling is a verdict task, a Choice and a Wait
    assert slow.settle - base.settle == (900 - 60) * (history.TASK + history.CHOICE + history.WAIT)
    assert compensated.compensation > base.compensation
    assert compensated.total > base.total


def test_a_workflow_over_the_limit_is_refused_naming_its_figure() -> None:
    # 1,000 nodes of 5 attempts: 1,000 x (5 + 4 x 3) = 17,000 for the nodes, plus gates, settling...
    workflow = parse_workflow(nodes(MAX_NODES, ", retry: {max_attempts: 6}, timeout_s: 900"), name="w")
    with pytest.raises(InvalidRequest) as refused:
        history.check(workflow)
    (detail,) = refused.value.details
    assert detail["events"] == history.worst_case(workflow).total > history.HISTORY_LIMIT
    assert "history events" in str(refused.value) and f"{history.HISTORY_LIMIT:,}" in str(refused.value)
