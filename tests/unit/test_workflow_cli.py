"""``taskplane workflow``: argument checks, and watching a run with a fake API client."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from taskplane.cli import Context, main
from taskplane.cli.workflows import watch

pytestmark = pytest.mark.unit


def run_state(state: str, nodes: dict[str, tuple[str, int]], compensations: list[Any] | None = None) -> dict:
    return {
        "run_id": "01JD7Z5M6R8W3Q4T2Y1X0V9B8N",
        "workflow": "w",
        "version": 1,
        "state": state,
        "phase": "nodes",
        "created_at": "2026-01-01T00:00:00.000Z",
        "finished_at": None,
        "executions": 1,
        "error": None,
        "nodes": [
            {"id": k, "state": s, "attempts": a, "started_at": None, "finished_at": None, "error": None}
            for k, (s, a) in nodes.items()
        ],
        "compensations": compensations or [],
    }


class FakeClient:
    """Answers GET /v1/runs/{id} from a script of run states."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = script
        self.calls = 0

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        answer = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return 200, answer


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["workflow", "route", "w"], "VERSION=PERCENT"),
        (["workflow", "route", "w", "3=90", "--clear"], "VERSION=PERCENT"),
        (["workflow", "route", "w", "three=90"], "expected VERSION=PERCENT"),
        (["workflow", "run", "not-a-file", "--local"], "--local runs a definition FILE"),
        (["workflow", "run", "w", "--functions", "f.py"], "--functions goes with --local"),
        (["workflow", "get", "w", "--version", "0"], "at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(argv, words, capsys):
    # Given a command line that cannot work
    # When it is run
    code = main(argv)
    # Then it exits 2 saying why, before calling any API
    assert code == 2
    assert words in capsys.readouterr().err


def test_watch_prints_each_change_once_and_exits_by_the_final_state(capsys):
    # Given a run that goes from running to compensated
    script = [
        run_state("RUNNING", {"a": ("RUNNING", 1), "b": ("PENDING", 0)}),
        run_state("RUNNING", {"a": ("RUNNING", 1), "b": ("PENDING", 0)}),
        run_state("RUNNING", {"a": ("SUCCEEDED", 1), "b": ("RETRYING", 1)}),
        run_state(
            "COMPENSATED",
            {"a": ("SUCCEEDED", 1), "b": ("FAILED", 2)},
            [
                {
                    "node": "a",
                    "state": "SUCCEEDED",
                    "attempts": 1,
                    "started_at": None,
                    "finished_at": None,
                    "error": None,
                }
            ],
        ),
    ]
    ctx = Context(argparse.Namespace(json=False))
    # When it is watched (output is not a terminal: one line per change)
    code = watch(ctx, FakeClient(script), "01JD7Z5M6R8W3Q4T2Y1X0V9B8N", timeout_s=5, poll_s=0)
    out = capsys.readouterr().out
    # Then each state change is printed once, the compensation too, and a compensated run exits 1
    assert code == 1
    lines = [line for line in out.splitlines() if "  " in line and line[:2].isdigit()]
    assert [line.split()[1:3] for line in lines] == [
        ["a", "RUNNING"],
        ["b", "PENDING"],
        ["run", "RUNNING"],
        ["a", "SUCCEEDED"],
        ["b", "RETRYING"],
        ["b", "FAILED"],
        ["undo", "a"],
        ["run", "COMPENSATED"],
    ]
    assert "attempt 2" in out


def test_watch_gives_up_after_its_timeout(capsys):
    # Given a run that never ends
    ctx = Context(argparse.Namespace(json=True))
    # When the watch times out
    code = watch(
        ctx, FakeClient([run_state("RUNNING", {"a": ("RUNNING", 1)})]), "r", timeout_s=0.05, poll_s=0.01
    )
    # Then it exits 1 and says so, after printing the last run seen as JSON
    assert code == 1
    captured = capsys.readouterr()
    assert "still RUNNING" in captured.err and '"state": "RUNNING"' in captured.out


# -- Python flows: workflow put FILE.py and client.put_flow -----------------------------------------

TWO_FLOWS = """\
from taskplane.flow import flow, task


@task(target="builtin:echo")
def step(*outputs):
    raise RuntimeError("a task body never runs")


@flow
def alpha(order):
    step(step(order))


@flow(description="The second.")
def beta(order):
    step(order)
"""


@pytest.fixture
def two_flows(tmp_path):
    path = tmp_path / "two_flows.py"
    path.write_text(TWO_FLOWS)
    return path


def test_put_of_a_python_file_publishes_every_flow_as_yaml(api, two_flows, capsys):
    # Given a file with two flows, When it is put
    code = main(api.cli("workflow", "put", str(two_flows)))
    # Then each flow went to its own path as YAML, and each was published
    out = capsys.readouterr().out
    assert code == 0
    puts = [s for s in api.seen if s.method == "PUT"]
    assert [s.path for s in puts] == ["/v1/workflows/alpha", "/v1/workflows/beta"]
    assert all(s.headers["content-type"] == "application/yaml" for s in puts)
    from taskplane.domain.workflow import load_document

    assert load_document(puts[0].body)["nodes"] == [
        {"id": "step", "target": {"type": "builtin", "name": "echo"}},
        {"id": "step_2", "needs": ["step"], "target": {"type": "builtin", "name": "echo"}},
    ]
    assert load_document(puts[1].body)["description"] == "The second."
    assert "published alpha v1  (2 nodes, 1 edges)" in out and "published beta v1  (1 nodes, 0 edges)" in out


def test_put_dry_run_prints_the_yaml_it_would_send_and_sends_nothing(api, two_flows, capsys):
    # Given the same file, When it is put with --dry-run
    code = main(api.cli("workflow", "put", str(two_flows), "--dry-run"))
    # Then the two definitions are printed as YAML documents, and nothing was sent
    out = capsys.readouterr().out
    assert code == 0 and api.seen == []
    import yaml

    assert [d["name"] for d in yaml.safe_load_all(out)] == ["alpha", "beta"]
    # And it is exactly what a put sends
    main(api.cli("workflow", "put", str(two_flows)))
    assert "---\n".join(s.body for s in api.seen) == out


def test_put_json_answers_every_reply(api, two_flows, capsys):
    assert main(api.cli("workflow", "put", str(two_flows), "--json")) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["alpha", "beta"]


def test_a_flow_that_cannot_be_recorded_exits_1_with_file_and_line_and_sends_nothing(api, tmp_path, capsys):
    # Given a flow that branches on an output on its line 9
    path = tmp_path / "branching.py"
    path.write_text(
        "from taskplane.flow import flow, task\n\n"
        "@task(target='builtin:echo')\n"
        "def step(x): ...\n\n"
        "@flow\n"
        "def branching(order):\n"
        "    out = step(order)\n"
        "    if out:\n"
        "        step(out)\n"
    )
    # When it is put, Then nothing is sent, and the error names the file and the line
    code = main(api.cli("workflow", "put", str(path)))
    err = capsys.readouterr().err
    assert code == 1 and api.seen == []
    assert err.startswith(f"error: {path.resolve()}:9: branching on")


def test_name_goes_with_a_single_flow(api, two_flows, tmp_path, capsys):
    # Given two flows in a file, When --name is given, Then it is a usage error naming the flows
    assert main(api.cli("workflow", "put", str(two_flows), "--name", "x")) == 2
    assert "defines 2 flows (alpha, beta)" in capsys.readouterr().err
    # And with one flow, --name renames it
    one = tmp_path / "one.py"
    one.write_text(TWO_FLOWS.split("\n\n\n@flow(description")[0])
    assert main(api.cli("workflow", "put", str(one), "--name", "renamed")) == 0
    [put] = [s for s in api.seen if s.method == "PUT"]
    assert put.path == "/v1/workflows/renamed" and "name: renamed\n" in put.body


def test_an_api_error_about_a_node_says_where_the_node_is_called(api, two_flows, capsys):
    # Given an API that refuses node step_2 (say, a target off the allow-list)
    from fake_api import error

    api.override = lambda seen: error(
        400, "invalid_request", "target not allowed", [{"node": "step_2", "message": "not on the allow-list"}]
    )
    # When alpha is put
    assert main(api.cli("workflow", "put", str(two_flows))) == 1
    # Then the detail points at the line of the file that calls step_2
    err = capsys.readouterr().err
    assert f"not on the allow-list (node 'step_2' is called at {two_flows.resolve()}:11)" in err


def test_run_of_a_file_with_several_flows_asks_to_put_and_run_by_name(two_flows, capsys):
    assert main(["workflow", "run", str(two_flows), "--url", "http://127.0.0.1:9"]) == 2
    assert "defines 2 flows (alpha, beta)" in capsys.readouterr().err


def test_client_put_flow_sends_the_flow_as_yaml(api, two_flows):
    # Given a flow object and a client
    from taskplane.client import Client
    from taskplane.flow import flows_in

    alpha = flows_in(str(two_flows))[0]
    client = Client(api.url, api_key=api.cli()[-1])
    # When it is put, Then the API got its YAML and the reply comes back
    reply = client.put_flow(alpha)
    assert (reply["name"], reply["version"], reply["published"]) == ("alpha", 1, True)
    [put] = api.seen
    assert (put.method, put.path, put.headers["content-type"]) == (
        "PUT",
        "/v1/workflows/alpha",
        "application/yaml",
    )
    assert put.body == alpha.definition().yaml()
    # And a non-flow is refused before anything is sent
    with pytest.raises(TypeError, match="expected a @flow"):
        client.put_flow(lambda order: None)
    assert len(api.seen) == 1
