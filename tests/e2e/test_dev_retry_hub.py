"""`taskplane dev` over HTTP: a fallback, a circuit breaker opening on its window, an auto timeout,
and the tenant's stats (as tenant "other", so the session's shared server keeps its own breakers)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskplane.client import Client

pytestmark = pytest.mark.e2e

EXPLODE = {"type": "lambda", "function": "explode"}
GREET = {"type": "lambda", "function": "greet"}


def get(client: Client, path: str) -> Any:
    status, body = client.request("GET", path)
    assert status == 200, body
    return body


def breaker_state(client: Client, target: str, *, until: str, timeout_s: float = 30) -> dict[str, Any]:
    """The target's breaker in the tenant's stats, once it is ``until`` (the worker writes it at the
    end of the delivery batch, just after the task's own end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = {t["target"]: t for t in get(client, "/v1/stats")["targets"]}
        breaker = rows.get(target, {}).get("breaker") or {}
        if breaker.get("state") == until or time.monotonic() > deadline:
            return breaker
        time.sleep(0.1)


def details(task: dict) -> str:
    return " | ".join(h["detail"] or "" for h in task["history"])


def test_fallback_breaker_and_auto_timeout_end_to_end(dev):
    client = Client(dev.url, dev.other_key)
    # Given tasks calling a function that always raises, with a fallback and a breaker that opens
    # once 2 calls in 10 s failed
    body = {
        "target": EXPLODE,
        "payload": {"name": "fallback"},
        "retry": {"max_attempts": 1, "fallback": GREET, "breaker": {"min_calls": 2, "open_ms": 600_000}},
    }
    # When the first runs / Then it FAILED, and its fallback answered
    first = client.wait(client.submit(body)["task_id"], timeout_s=30)
    assert first["state"] == "FAILED" and first["error"]["type"] == "RuntimeError"
    assert first["fallback"]["state"] == "SUCCEEDED"
    assert first["fallback"]["result"] == {"greeting": "hello fallback"}
    assert "fallback called: it succeeded" in details(first)
    # When the second fails too / Then the breaker opened at the end of its batch (2 of 2 calls failed)
    second = client.wait(client.submit(body)["task_id"], timeout_s=30)
    assert second["state"] == "FAILED"
    opened = breaker_state(client, "lambda:explode", until="open")
    assert opened["state"] == "open" and opened["reason"].startswith(
        "error rate 100% over 10 s (2 of 2 calls"
    )
    # And the third fails fast without calling the function, saying why, and still gets its fallback
    third = client.wait(client.submit(body)["task_id"], timeout_s=30)
    assert third["error"]["type"] == "CircuitOpen" and third["fallback"]["state"] == "SUCCEEDED"
    assert "error rate 100% over 10 s (2 of 2 calls" in third["error"]["message"]
    # And the dead letters keep both outcomes
    letters = {d["task_id"]: d for d in get(client, "/v1/dead-letters")["items"]}
    assert letters[third["task_id"]]["error"]["type"] == "CircuitOpen"
    assert letters[third["task_id"]]["fallback"]["result"] == {"greeting": "hello fallback"}
    # When an auto-timeout task runs on a target never measured
    auto = client.submit({"target": {"type": "builtin", "name": "echo"}, "timeout_s": "auto", "payload": 1})
    done = client.wait(auto["task_id"], timeout_s=30)
    # Then it had the ceiling, saying why, and shows "auto"
    assert done["state"] == "SUCCEEDED" and done["timeout_s"] == "auto"
    assert "timeout 300 s (auto: " in details(done) and "the ceiling)" in details(done)
    # And the stats show this tenant's targets: the breaker open, durations measured
    targets = {t["target"]: t for t in get(client, "/v1/stats")["targets"]}
    assert targets["lambda:explode"]["breaker"]["state"] == "open"
    assert targets["lambda:explode"]["samples"] >= 2
    assert targets["builtin:echo"]["samples"] >= 1
