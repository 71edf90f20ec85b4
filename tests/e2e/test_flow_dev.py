"""Python flows end to end: put with the CLI, run on `taskplane dev`, and the YAML twins agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskplane.cli import main
from taskplane.client import Client
from taskplane.domain.workflow import load_document, parse_workflow

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

JOINED = '''\
from taskplane.flow import flow, task


@task(target="builtin:sleep", payload={"ms": 20})
def fast(order):
    """A quick first step."""


@task(target="builtin:sleep", payload={"ms": 400})
def slow(order):
    """A slow first step."""


@task(target="builtin:echo")
def after_fast(first):
    """Needs only the quick step."""


@task(target="lambda:greet", payload={"name": "d"})
def greet(first, second):
    """A local Lambda function that needs both."""


@flow(name="joined-flow")
def joined(order):
    """Two first steps; one node after the quick one, one after both."""
    quick = fast(order)
    after_fast(quick)
    greet(quick, slow(order))
'''


def test_a_python_flow_put_with_the_cli_runs_on_dev(dev, capsys, tmp_path):
    common = ["--url", dev.url, "--api-key", dev.api_key]
    path = tmp_path / "joined_flow.py"
    path.write_text(JOINED)
    # Given the YAML the CLI would send for a Python flow
    assert main(["workflow", "put", str(path), "--dry-run"]) == 0
    sent = capsys.readouterr().out
    # When the flow is put with the CLI
    assert main(["workflow", "put", str(path), *common]) == 0
    assert "published joined-flow v1  (4 nodes, 3 edges)" in capsys.readouterr().out
    # Then the platform stores that very definition
    stored = Client(dev.url, dev.api_key).request("GET", "/v1/workflows/joined-flow")[1]
    assert isinstance(stored, dict)
    expected = parse_workflow(load_document(sent), name="joined-flow").canonical()
    assert stored["definition"] == expected
    # And a run of it succeeds: the local Lambda ran as a node, and a node did not wait for an
    # unrelated slow one
    code = main(["workflow", "run", "joined-flow", "--input", '{"order": 1}', "--watch", "--json", *common])
    run = json.loads(capsys.readouterr().out)
    assert code == 0 and run["state"] == "SUCCEEDED", run
    nodes = {n["id"]: n for n in run["nodes"]}
    assert nodes["greet"]["output"] == {"greeting": "hello d"}
    assert nodes["after_fast"]["finished_at"] < nodes["slow"]["finished_at"]


def test_the_example_flows_are_the_yaml_examples(dev, capsys):
    common = ["--url", dev.url, "--api-key", dev.api_key]
    # Given the Python examples published with the CLI
    assert main(["workflow", "put", str(ROOT / "examples" / "flows.py"), "--json", *common]) == 0
    versions = {r["name"]: r["version"] for r in json.loads(capsys.readouterr().out)}
    # When their YAML twins are published after them
    for name, twin in (("order-fulfillment", "order-fulfillment.yaml"), ("preheat", "preheat.yaml")):
        assert main(["workflow", "put", str(ROOT / "examples" / twin), "--json", *common]) == 0
        reply = json.loads(capsys.readouterr().out)
        # Then the platform sees the same definition: nothing new is published
        assert (reply["name"], reply["published"], reply["version"]) == (name, False, versions[name])
