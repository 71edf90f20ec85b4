"""`taskplane dev` end to end: delayed tasks through the tick, schedules and triggers over HTTP."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from taskplane.client import Client
from taskplane.domain.wheel import DISPATCH_LEAD_MS, GROUP_MS

pytestmark = pytest.mark.e2e


def ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def test_delayed_tasks_start_on_time_never_early(dev):
    # Given tasks due 0.05 s and 0.4 s (straight to the lane) to 2.5 s ahead (through the wheel: an
    # idle tick is woken for them)
    client = Client(dev.url, dev.api_key)
    delays = [50, 400, 1200, 2500]
    tasks = [client.submit({"target": {"type": "builtin", "name": "echo"}, "delay_ms": d}) for d in delays]
    assert all(t["state"] == "SCHEDULED" for t in tasks)
    # When they have run
    done = [client.wait(t["task_id"], timeout_s=30) for t in tasks]
    # Then none started before its run_at, and each started within a fraction of a second of it
    for task in done:
        assert task["state"] == "SUCCEEDED"
        late = ms(task["started_at"]) - ms(task["run_at"])
        assert 0 <= late < 500, (task["run_at"], task["started_at"])
        # (sent to its lane ahead of its run_at, by the tick's lead at most, and waited for)
        assert ms(task["dispatched_at"]) >= ms(task["run_at"]) - DISPATCH_LEAD_MS - GROUP_MS
        assert [h["state"] for h in task["history"]][:3] == ["SCHEDULED", "PENDING", "RUNNING"]


def test_trigger_fires_for_an_event_a_task_puts_on_the_bus(dev):
    # Given a trigger on events from "shop.orders"
    client = Client(dev.url, dev.api_key)
    _, trigger = client.request(
        "POST",
        "/v1/triggers",
        {
            "event_pattern": {"source": ["shop.orders"]},
            "task": {"target": {"type": "builtin", "name": "echo"}},
        },
    )
    # When a task with an eventbridge target puts such an event on the platform's bus (its default)
    client.submit(
        {
            "target": {
                "type": "eventbridge",
                "source": "shop.orders",
                "detail_type": "OrderPlaced",
            },
            "payload": {"order": 7},
        }
    )
    # Then the trigger's task runs with the event as its payload
    deadline = time.monotonic() + 20
    started = []
    while time.monotonic() < deadline and not started:
        started = [t for t in client.iter_tasks() if t.get("trigger_id") == trigger["trigger_id"]]
        time.sleep(0.2)
    assert started, "no task started by the trigger"
    done = client.wait(started[0]["task_id"], timeout_s=20)
    assert done["state"] == "SUCCEEDED"
    assert done["payload"]["source"] == "shop.orders"
    assert done["payload"]["detail"]["payload"] == {"order": 7}
    # stamped by the platform with the tenant that published it
    assert done["payload"]["detail"]["taskplane_tenant"] == "default"


def test_schedule_lifecycle_over_http(dev):
    client = Client(dev.url, dev.other_key)
    _, created = client.request(
        "POST",
        "/v1/schedules",
        {
            "cron": "*/5 * * * *",
            "timezone": "Europe/Paris",
            "task": {"target": {"type": "builtin", "name": "echo"}},
        },
    )
    sid = created["schedule_id"]
    assert created["state"] == "ACTIVE" and created["next_fire_at"].endswith(":00.000Z")
    assert client.request("POST", f"/v1/schedules/{sid}/pause")[1]["state"] == "PAUSED"
    assert client.request("POST", f"/v1/schedules/{sid}/resume")[1]["state"] == "ACTIVE"
    assert client.request("DELETE", f"/v1/schedules/{sid}")[0] == 204
