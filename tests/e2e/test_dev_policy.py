"""`taskplane dev` honours the policy it is given (environment, --strict) and says what is in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from .conftest import free_port, start_dev, stop, wait_healthy

pytestmark = pytest.mark.e2e


def post(url: str, path: str, body: Any, key: str = "dev-key") -> tuple[int, Any]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"x-api-key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_strict_and_the_environment_are_enforced_and_shown(monkeypatch):
    # Given taskplane dev --strict with an allow-list for the default tenant in the environment
    monkeypatch.setenv("TASKPLANE_TARGET_ALLOWLISTS", json.dumps({"default": ["lambda:orders-*"]}))
    port = free_port()
    process = start_dev(port, "--strict")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        # When tasks and a schedule name targets on and off the list, and a private address
        listed = post(
            url, "/v1/tasks", {"target": {"type": "lambda", "function": "orders-create"}, "delay_ms": 60_000}
        )
        other = post(url, "/v1/tasks", {"target": {"type": "lambda", "function": "billing"}})
        private = post(url, "/v1/tasks", {"target": {"type": "http", "url": "http://127.0.0.1:9/x"}})
        schedule = post(
            url,
            "/v1/schedules",
            {"cron": "0 * * * *", "task": {"target": {"type": "lambda", "function": "billing"}}},
        )
    finally:
        code, out = stop(process)
    # Then only the listed target is accepted; the rest are 400s naming the target
    assert listed[0] == 201, listed
    for status, body in (other, private, schedule):
        assert status == 400, body
        assert body["error"]["details"][0]["field"].endswith("target"), body
    assert "private" in private[1]["error"]["message"]
    # And the banner said which rules were in force and where each came from
    assert code == 0, out
    assert "rules in force" in out
    assert "allow-lists for default; other tenants: builtins only   [$TASKPLANE_TARGET_ALLOWLISTS]" in out
    assert "refused   [--strict]" in out


def test_an_unreadable_setting_stops_dev_with_a_message_naming_it():
    env = {**os.environ, "TASKPLANE_MAX_LANE_DEPTH": "lots"}
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "taskplane", "dev", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result
    assert "TASKPLANE_MAX_LANE_DEPTH='lots'" in result.stderr, result.stderr
