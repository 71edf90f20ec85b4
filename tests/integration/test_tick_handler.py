"""The tick handler driven by the real-shaped EventBridge event of a shard's rule."""

from __future__ import annotations

import json

import pytest
from support import load_event

from taskplane.domain.models import TaskSubmit
from taskplane.domain.wheel import DISPATCH_LEAD_MS
from taskplane.local.context import LocalContext
from taskplane.local.handlers import load_handler
from taskplane.services.tick import MAX_SEND_BEFORE_READ_MS

pytestmark = pytest.mark.integration


def test_tick_handler_dispatches_its_shard_until_just_before_its_timeout(aws):
    # Given a task due in 1.5 s (so it waits in the wheel) and a tick with 9 s of function time left
    task, _ = aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 1500})
    )
    handler = load_handler("tick").lambda_handler
    # When the shard's rule invokes it
    result = handler(load_event("eventbridge_tick_shard"), LocalContext("taskplane-tick", timeout_s=9))
    # Then it held the lease, sent the task to its lane, and handed over before the timeout margin
    assert result["shard"] == 0 and result["acquired"] and result["dispatched"] == 1
    body = json.loads(
        aws.client("sqs").receive_message(QueueUrl=aws.settings.queue_urls["default"])["Messages"][0]["Body"]
    )
    # (a lead ahead of its run_at, with its due time for the worker to wait for; up to
    # MAX_SEND_BEFORE_READ_MS more when the tick's reads take that long, as under load: it sends what
    # must leave during a read before the read)
    assert body["task_id"] == task.task_id and body["state"] == "SCHEDULED"
    earliest = task.run_at - DISPATCH_LEAD_MS - MAX_SEND_BEFORE_READ_MS
    assert body["dispatched_at"] >= earliest and body["due"] == task.run_at


@pytest.mark.parametrize("event", [{"shard": 256}, {"shard": "0"}, {"shard": -1}])
def test_a_malformed_shard_is_refused(aws, event):
    handler = load_handler("tick").lambda_handler
    with pytest.raises(ValueError, match="shard"):
        handler(event, LocalContext("taskplane-tick", timeout_s=10))


def test_a_shard_neither_configured_nor_draining_ends_without_touching_the_wheel(aws):
    # Given one configured shard and a ring that never had a shard 3
    handler = load_handler("tick").lambda_handler
    # When a stray invocation names shard 3 (a removed rule's last run, after its drain ended)
    result = handler({"shard": 3}, LocalContext("taskplane-tick", timeout_s=10))
    # Then it ends at once: no lease taken, nothing read
    assert result == {"shard": 3, "acquired": False, "retired": True}
    assert aws.platform.ticker.wheel.peek(3) is None


def test_each_tick_reports_its_shards_weight_and_lag_as_emf_per_shard(aws, monkeypatch, capsys):
    # Given metrics on (the tests turn them off) and the ring of one shard
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    handler = load_handler("tick").lambda_handler
    capsys.readouterr()
    # When the shard's rule invokes the tick (idle: it only looks)
    handler({"shard": 0}, LocalContext("taskplane-tick", timeout_s=9))
    # Then one EMF document carries the shard's weight and lag, with the dimension the dashboard reads
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (doc,) = [d for d in docs if "wheel_weight" in d]
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert sorted(directive["Dimensions"][0]) == ["service", "shard"]
    assert doc["shard"] == "0" and doc["wheel_weight"] == [1.0] and doc["wheel_lag_ms"] == [0]
