"""``taskplane workflow``: argument checks, and watching a run with a fake API client."""

from __future__ import annotations

import argparse
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
