"""Run-ledger writes DynamoDB accepts: every name an update sends is used by its expressions."""

from __future__ import annotations

import pytest

from taskplane.domain.workflow import NodeState

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("state", [NodeState.RETRYING, NodeState.FAILED])
def test_recording_a_failed_attempt_is_a_valid_update(aws, state):
    # Given the run store and no such node (so the condition, not the request, decides)
    from taskplane.adapters.run_store import RunStore

    runs = RunStore(aws.settings.runs_table, aws.client("dynamodb"))
    error = {"type": "HttpError", "message": "HTTP 503"}
    # When a failed node attempt and a failed compensation attempt are recorded
    node = runs.node_failed("acme", "R1", "a", try_id="t1", state=state, error=error, now_ms=1)
    undo = runs.compensation_finished("acme", "R1", "a", try_id="t1", state=state, error=error, now_ms=1)
    # Then DynamoDB evaluates them (a lost condition: False), instead of refusing the request
    # (an unused ExpressionAttributeNames entry is a ValidationException, which a retry never fixes)
    assert (node, undo) == (False, False)
