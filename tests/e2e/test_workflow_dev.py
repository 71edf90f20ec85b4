"""Workflows end to end: the README's one-command examples, and the CLI against `taskplane dev`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskplane.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def taskplane(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_ENDPOINT_URL")}
    return subprocess.run(
        [sys.executable, "-m", "taskplane", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=env,
    )


def test_preheat_example_runs_with_one_command():
    # Given the fan-out example, as the README runs it
    # When it runs on a local runtime started by the command itself
    done = taskplane("workflow", "run", "examples/preheat.yaml", "--local", "--watch")
    # Then it succeeded (exit 0), after retrying the shard that fails once
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published preheat v1" in done.stderr
    assert "SUCCEEDED  attempt 2" in done.stdout
    assert "run                      SUCCEEDED" in done.stdout


def test_order_saga_example_compensates_with_one_command():
    # Given the saga example and an order no carrier can ship
    # When it runs with the example's local Lambda functions
    done = taskplane(
        "workflow",
        "run",
        "examples/order-fulfillment.yaml",
        "--local",
        "--functions",
        "examples/order_fulfillment.py",
        "--input",
        "@examples/order-undeliverable.json",
        "--watch",
        "--json",
    )
    # Then the run ended COMPENSATED (exit 1: the order did not go through) ...
    assert done.returncode == 1, done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert run["state"] == "COMPENSATED"
    assert run["error"]["type"] == "Undeliverable" and run["error"]["node"] == "create_shipment"
    # ... and both completed steps that can be undone were, the shipment never having been made
    assert sorted(c["node"] for c in run["compensations"]) == ["charge_card", "reserve_stock"]
    assert {n["id"]: n["state"] for n in run["nodes"]}["notify_customer"] == "SKIPPED"


def test_cli_put_run_watch_graph_against_dev(dev, capsys, tmp_path):
    # Given a definition file whose join needs a fast and a slow node
    flow = tmp_path / "joined.yaml"
    flow.write_text(
        "name: joined\nnodes:\n"
        "  - {id: a, target: {type: builtin, name: sleep}, payload: {ms: 20}}\n"
        # b sleeps long enough that c (after a's 20 ms) finishes first on a loaded machine too
        "  - {id: b, target: {type: builtin, name: sleep}, payload: {ms: 1500}}\n"
        "  - {id: c, needs: [a], target: {type: builtin, name: echo}}\n"
        "  - {id: d, needs: [a, b], target: {type: lambda, function: greet}, payload: {name: d}}\n"
    )
    common = ["--url", dev.url, "--api-key", dev.api_key]
    # When it is published, run and watched through the CLI
    assert main(["workflow", "put", str(flow), *common]) == 0
    assert "published joined v1" in capsys.readouterr().out
    code = main(["workflow", "run", "joined", "--input", '{"x": 1}', "--watch", "--json", *common])
    run = json.loads(capsys.readouterr().out)
    # Then it succeeded, the local Lambda function ran as a node, and each join waited for its needs
    # (that c need not wait for b is tests/integration/test_workflow_runs.py's, without racing a sleep)
    assert code == 0 and run["state"] == "SUCCEEDED", run
    nodes = {n["id"]: n for n in run["nodes"]}
    assert nodes["d"]["output"] == {"greeting": "hello d"}
    assert nodes["c"]["started_at"] >= nodes["a"]["finished_at"]
    assert nodes["d"]["started_at"] >= max(nodes["a"]["finished_at"], nodes["b"]["finished_at"])
    # And the graph and the status are one command each
    assert main(["workflow", "graph", "joined", *common]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    assert main(["workflow", "status", run["run_id"], *common]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out
    # And another tenant does not see it
    assert main(["workflow", "status", run["run_id"], "--url", dev.url, "--api-key", dev.other_key]) == 1
    assert "not_found" in capsys.readouterr().err
