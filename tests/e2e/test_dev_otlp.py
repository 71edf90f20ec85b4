"""`taskplane dev --otlp URL` end to end: a real process exporting to a loopback OTLP/HTTP receiver."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from otlp_receiver import OtlpReceiver

from taskplane.client import Client

from .conftest import free_port, start_dev, stop, wait_healthy

pytestmark = pytest.mark.e2e

WORKFLOW = """
nodes:
  - {id: first, target: {type: builtin, name: echo}, payload: {n: 1}}
  - {id: second, needs: [first], target: {type: builtin, name: echo}}
"""


def test_dev_exports_metrics_and_one_trace_per_task_and_run():
    receiver = OtlpReceiver().start()
    port = free_port()
    process = start_dev(port, "--otlp", receiver.url)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        client = Client(url, "dev-key")
        # Given an immediate task and one due in 1.5 s (through the wheel and the dev tick)
        now = client.submit({"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}})
        later = client.submit({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 1500})
        # and a two-node workflow run
        request = urllib.request.Request(
            f"{url}/v1/workflows/pair",
            data=WORKFLOW.encode(),
            method="PUT",
            headers={"x-api-key": "dev-key", "Content-Type": "application/yaml"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
        _, run = client.request("POST", "/v1/workflows/pair/runs", {"input": {"x": 1}})
        # When they have run
        done = [client.wait(t["task_id"], timeout_s=30) for t in (now, later)]
        deadline = time.monotonic() + 30
        while (got := client.request("GET", f"/v1/runs/{run['run_id']}")[1])["state"] == "RUNNING":
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        # Then each names its trace, and the receiver got each trace whole
        assert all(t["state"] == "SUCCEEDED" and t["trace_id"] for t in done)
        assert got["state"] == "SUCCEEDED" and got["trace_id"]
        for task in done:
            spans = receiver.wait_for(
                lambda t=task: len(receiver.trace(t["trace_id"])) >= 3 and receiver.trace(t["trace_id"])
            )
            submit, dispatch, ran = (
                next(s for s in spans if s.name == n) for n in ("task.submit", "task.dispatch", "task.run")
            )
            assert submit.parent_span_id == "" and dispatch.parent_span_id == submit.span_id
            assert (
                ran.parent_span_id == dispatch.span_id and ran.attributes["taskplane.outcome"] == "succeeded"
            )
        delayed = receiver.trace(done[1]["trace_id"])
        assert (
            next(s for s in delayed if s.name == "task.dispatch").attributes["taskplane.delivery"]
            == "scheduled"
        )
        run_spans = receiver.wait_for(
            lambda: (
                len([s for s in receiver.trace(got["trace_id"]) if s.name == "workflow.node"]) == 2
                and receiver.trace(got["trace_id"])
            )
        )
        start = next(s for s in run_spans if s.name == "workflow.start")
        nodes = [s for s in run_spans if s.name == "workflow.node"]
        assert sorted(s.attributes["taskplane.node"] for s in nodes) == ["first", "second"]
        assert all(s.parent_span_id == start.span_id for s in nodes)
        # and the metrics, with the seed's attributes
        receiver.wait_for(lambda: receiver.total("taskplane.succeeded", tenant="default", stage="run") == 2)
        point = receiver.latest("taskplane.succeeded", tenant="default", stage="run")
        assert point.attributes == {
            "tenant": "default",
            "target_type": "builtin",
            "lane": "default",
            "stage": "run",
            "attempt": 1,
        }
        receiver.wait_for(
            lambda: receiver.total("taskplane.node_succeeded", tenant="default", lane="workflow") == 2
        )
    finally:
        code, out = stop(process)
        receiver.stop()
    # And the banner said where it exports, and it stopped cleanly
    assert code == 0, out
    line = next(x for x in out.splitlines() if "OTLP export" in x)
    assert line.split() == [
        "OTLP",
        "export",
        "metrics",
        "and",
        "100%",
        "of",
        "traces",
        "to",
        receiver.url,
        "[--otlp]",
    ]


def test_dev_refuses_an_otlp_value_that_is_not_a_url():
    done = subprocess.run(
        [sys.executable, "-m", "taskplane", "dev", "--otlp", "localhost:4318"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "argument --otlp: expected an http(s) URL such as http://localhost:4318" in done.stderr
