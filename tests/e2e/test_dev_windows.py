"""`taskplane dev` end to end: windowed triggers made with the CLI, fed over HTTP, their ends sent by the tick
and closed by the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from taskplane.client import Client

pytestmark = pytest.mark.e2e


def ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def cli(dev: Any, *args: str) -> dict[str, Any]:
    env = {**os.environ, "TASKPLANE_URL": dev.url, "TASKPLANE_API_KEY": dev.api_key}
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "taskplane"), *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def publish(client: Client, user: str, kind: str, n: int) -> None:
    status, reply = client.request(
        "POST",
        "/v1/events",
        {"events": [{"source": "e2e.web", "detail_type": kind, "detail": {"user": user, "n": n}}]},
    )
    assert status == 200 and "event_id" in reply["results"][0], reply


def started_by(client: Client, trigger_id: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [t for t in client.iter_tasks() if t.get("trigger_id") == trigger_id]
        if len(found) >= count:
            break
        time.sleep(0.2)
    return [client.wait(t["task_id"], timeout_s=20) for t in found]


def test_a_batch_trigger_made_with_the_cli_starts_one_task_per_window(dev):
    # Given a batch trigger (1.5 s windows per user) made with `taskplane trigger create`
    client = Client(dev.url, dev.api_key)
    trigger = cli(
        dev,
        "trigger",
        "create",
        "--pattern",
        '{"source": ["e2e.web"], "detail-type": ["view"]}',
        "--target",
        "builtin:echo",
        "--batch",
        "key=$.detail.user,window_ms=1500,max_events=50",
    )
    assert trigger["batch"] == {"key": "$.detail.user", "window_ms": 1500, "max_events": 50}
    # When u1 views three pages and u2 one
    for n in range(3):
        publish(client, "u1", "view", n)
    publish(client, "u2", "view", 9)
    # Then one task per user ran with that user's events, started when its window closed
    tasks = started_by(client, trigger["trigger_id"], 2)
    assert len(tasks) == 2 and all(t["state"] == "SUCCEEDED" for t in tasks)
    by_key = {t["payload"]["key"]: t for t in tasks}
    assert sorted(e["detail"]["n"] for e in by_key["u1"]["payload"]["events"]) == [0, 1, 2]
    assert [e["detail"]["n"] for e in by_key["u2"]["payload"]["events"]] == [9]
    for task in tasks:
        window = task["payload"]["window"]
        late = ms(task["created_at"]) - window["closes_at"]
        assert window["reason"] == "time" and late >= 0, window
    # And the CLI lists it with its mode
    listed = cli(dev, "trigger", "list")
    assert trigger["trigger_id"] in [t["trigger_id"] for t in listed["items"]]


def test_a_correlation_completes_over_http(dev):
    client = Client(dev.url, dev.api_key)
    status, trigger = client.request(
        "POST",
        "/v1/triggers",
        {
            "correlate": {
                "within_ms": 10_000,
                "key": "$.detail.user",
                "events": [
                    {"source": ["e2e.web"], "detail-type": ["exposure"]},
                    {"source": ["e2e.web"], "detail-type": ["click"]},
                ],
            },
            "task": {"target": {"type": "builtin", "name": "echo"}},
        },
    )
    assert status == 201, trigger
    publish(client, "u7", "exposure", 1)
    publish(client, "u7", "click", 2)
    (task,) = started_by(client, trigger["trigger_id"], 1)
    assert task["state"] == "SUCCEEDED"
    assert task["payload"]["window"]["reason"] == "complete"
    assert sorted(e["detail-type"] for e in task["payload"]["events"]) == ["click", "exposure"]
