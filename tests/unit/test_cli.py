"""The ``taskplane`` CLI: parsing, task bodies, ``dev`` wiring, and the task commands against a loopback fake."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_api import API_KEY, ECHO, FakeApi

from taskplane import cli
from taskplane.cli import add_command, add_group, build_parser, main, parse_target, task_body_from_args

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("clean_env")]


def submit_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["submit", *argv])


# -- parsing and task bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("builtin:echo", {"type": "builtin", "name": "echo"}),
        ("builtin:sleep", {"type": "builtin", "name": "sleep"}),
        ("lambda:resize", {"type": "lambda", "function": "resize"}),
        (
            "lambda:arn:aws:lambda:eu-west-1:123456789012:function:resize",
            {"type": "lambda", "function": "arn:aws:lambda:eu-west-1:123456789012:function:resize"},
        ),
        (
            "http:https://example.com/hook?a=1",
            {"type": "http", "url": "https://example.com/hook?a=1", "method": "POST"},
        ),
        (
            "sqs:https://sqs.eu-west-1.amazonaws.com/123/q",
            {"type": "sqs", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123/q"},
        ),
        ("eventbridge:orders", {"type": "eventbridge", "bus": "orders"}),
        ("HTTP:http://x.test", {"type": "http", "url": "http://x.test", "method": "POST"}),
    ],
)
def test_target_shorthands(text: str, target: dict[str, Any]) -> None:
    # Given a shorthand, When it is parsed, Then it is the full target object
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["echo", "builtin:", "ftp:x", ":echo"])
def test_bad_target_shorthands_are_refused(text: str) -> None:
    # Given a malformed shorthand, When it is parsed, Then argparse gets a message listing the forms
    with pytest.raises(argparse.ArgumentTypeError, match="builtin:NAME"):
        parse_target(text)


def test_task_body_from_every_option() -> None:
    # Given every body option
    args = submit_args(
        "--target",
        "builtin:sleep",
        "--payload",
        '{"ms": 50}',
        "--delay-ms",
        "500",
        "--timeout-s",
        "30",
        "--max-attempts",
        "4",
        "--priority",
        "high",
        "--label",
        "team=media",
        "--label",
        "env=a=b",
    )
    # When the body is built, Then each option landed in its field
    assert task_body_from_args(args) == {
        "target": {"type": "builtin", "name": "sleep"},
        "payload": {"ms": 50},
        "delay_ms": 500,
        "timeout_s": 30,
        "retry": {"max_attempts": 4},
        "priority": "high",
        "labels": {"team": "media", "env": "a=b"},
    }


def test_options_override_and_merge_into_body(tmp_path: Path) -> None:
    # Given a whole body in a file, with run_at, a retry policy and labels
    body = {
        "target": ECHO,
        "payload": {"keep": True},
        "run_at": "2030-01-01T00:00:00Z",
        "retry": {"max_attempts": 2, "base_delay_ms": 100},
        "labels": {"a": "1"},
    }
    path = tmp_path / "task.json"
    path.write_text(json.dumps(body))
    # When options are given on top of it
    args = submit_args("--body", f"@{path}", "--delay-ms", "10", "--max-attempts", "5", "--label", "b=2")
    result = task_body_from_args(args)
    # Then delay_ms replaced run_at, retry and labels were merged, the rest kept
    assert result == {
        "target": ECHO,
        "payload": {"keep": True},
        "delay_ms": 10,
        "retry": {"max_attempts": 5, "base_delay_ms": 100},
        "labels": {"a": "1", "b": "2"},
    }


def test_payload_from_file_and_null_payload(tmp_path: Path) -> None:
    # Given a payload file
    path = tmp_path / "payload.json"
    path.write_text('[1, {"two": 2}]')
    # When it is given with @, Then the payload is its JSON
    assert task_body_from_args(submit_args("--target", "builtin:echo", "--payload", f"@{path}"))[
        "payload"
    ] == [
        1,
        {"two": 2},
    ]
    # And an explicit null is a payload, while no --payload leaves the field out
    assert task_body_from_args(submit_args("--target", "builtin:echo", "--payload", "null")) == {
        "target": ECHO,
        "payload": None,
    }
    assert "payload" not in task_body_from_args(submit_args("--target", "builtin:echo"))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "builtin:echo", "--payload", "{bad"], ["argument --payload", "invalid JSON"]),
        (
            ["--target", "builtin:echo", "--payload", "@/nonexistent/p.json"],
            ["argument --payload", "cannot read"],
        ),
        (["--target-json", "[1, 2]"], ["argument --target-json", "expected a JSON object"]),
        (["--target-json", "{'type': 'lambda'}"], ["argument --target-json", "invalid JSON"]),
        (["--body", "nope"], ["argument --body", "invalid JSON"]),
        (["--target", "ftp:x"], ["argument --target", "unknown target type 'ftp'"]),
        (["--target", "builtin:echo", "--label", "novalue"], ["argument --label", "KEY=VALUE"]),
        (
            ["--target", "builtin:echo", "--delay-ms", "5", "--run-at", "2030-01-01T00:00:00Z"],
            ["not allowed"],
        ),
        (["--payload", "{}"], ["a target is required"]),
        (["--target", "builtin:echo", "--priority", "urgent"], ["argument --priority", "invalid choice"]),
    ],
)
def test_bad_submit_options_exit_2_naming_the_option(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given options that cannot make a task body (and no server: nothing may be sent)
    # When submit runs
    code = main(["submit", *argv, "--url", "http://127.0.0.1:9"])
    # Then it is a usage error that says which option and what is wrong
    err = capsys.readouterr().err
    assert code == 2
    assert "usage: taskplane submit" in err
    for fragment in expected:
        assert fragment in err


def _commands(parser: argparse.ArgumentParser, prefix: list[str]) -> Iterator[list[str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from _commands(sub, [*prefix, name])


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    # Given every command the parser knows (groups added later included)
    commands = list(_commands(build_parser(), []))
    assert {"dev", "submit", "get", "list", "cancel"} <= {c[0] for c in commands}
    for command in [[], *commands]:
        # When its --help is asked
        code = main([*command, "--help"])
        out = capsys.readouterr().out
        # Then it exits 0 with a description and examples
        assert code == 0, command
        assert "Examples:" in out, command
        assert f"taskplane {' '.join(command)}".strip() in out, command


def test_help_shows_global_options_on_api_commands(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the task commands, When their help is shown, Then --url, --api-key and --json are there
    for command in ("submit", "get", "list", "cancel"):
        main([command, "--help"])
        out = capsys.readouterr().out
        assert all(opt in out for opt in ("--url", "--api-key", "--json")), command


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Given no arguments, When the CLI runs, Then it explains itself on stderr
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_a_command_group_plugs_in_through_group_modules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a group module (as schedules or workflows will be) and a listed module that does not exist
    calls: list[tuple[str, bool]] = []

    def poke(args: argparse.Namespace, ctx: cli.Context) -> int:
        calls.append((args.thing, ctx.json))
        return 0

    def register(subparsers: Any) -> None:
        group = add_group(
            subparsers,
            "widget",
            help="widgets",
            description="Work with widgets.",
            examples="taskplane widget poke w1",
        )
        command = add_command(
            group,
            "poke",
            help="poke one",
            description="Poke a widget.",
            examples="taskplane widget poke w1",
            handler=poke,
        )
        command.add_argument("thing")

    module = types.ModuleType("fake_widget_cli")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_widget_cli", module)
    monkeypatch.setattr(cli, "GROUP_MODULES", ("taskplane.no_such_group", "fake_widget_cli"))
    # When its command runs, with a global option
    code = main(["widget", "poke", "w1", "--json"])
    # Then the handler got its arguments and the context
    assert (code, calls) == (0, [("w1", True)])
    # And the group alone prints its help, and the nested command has examples like every other
    assert main(["widget"]) == 2
    assert "poke" in capsys.readouterr().err
    assert main(["widget", "poke", "--help"]) == 0
    assert "taskplane widget poke w1" in capsys.readouterr().out


# -- taskplane dev ---------------------------------------------------------------------------------


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A fake ``taskplane.local.runtime`` whose ``run_dev`` records its arguments."""
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("taskplane.local.runtime")

    def run_dev(**kwargs: Any) -> None:
        calls.append(kwargs)

    module.run_dev = run_dev  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "taskplane.local.runtime", module)
    return calls


def test_dev_passes_every_option(runtime: list[dict[str, Any]], tmp_path: Path) -> None:
    # Given a functions file and every dev option
    functions = tmp_path / "functions.py"
    functions.write_text("def handler(event, context):\n    return event\n")
    argv = ["dev", "--host", "0.0.0.0", "--port", "9001", "--api-key", "dev-key"]
    argv += ["--tenant", "acme=acme-key", "--tenant", "globex=g=k", "--functions", str(functions), "--strict"]
    argv += ["--otlp", "http://localhost:4318", "--db", str(tmp_path / "dev.db")]
    # When dev runs
    code = main(argv)
    # Then the runtime got them, tenants as a NAME -> KEY dict
    assert code == 0
    assert runtime == [
        {
            "host": "0.0.0.0",
            "port": 9001,
            "api_key": "dev-key",
            "tenants": {"acme": "acme-key", "globex": "g=k"},
            "functions_file": str(functions),
            "strict": True,
            "otlp": "http://localhost:4318",
            "backend": "sqlite",
            "db": str(tmp_path / "dev.db"),
        }
    ]


def test_dev_defaults(runtime: list[dict[str, Any]]) -> None:
    # Given no options and no environment, When dev runs
    assert main(["dev"]) == 0
    # Then it listens on 127.0.0.1:8080 and lets the runtime choose the key
    assert runtime == [
        {
            "host": "127.0.0.1",
            "port": 8080,
            "api_key": None,
            "tenants": {},
            "functions_file": None,
            "strict": False,
            "otlp": None,
            "backend": "sqlite",
            "db": None,
        }
    ]


def test_dev_takes_the_moto_backend(runtime: list[dict[str, Any]]) -> None:
    # When dev runs with --backend moto, Then the runtime is asked for it, with no database file
    assert main(["dev", "--backend", "moto"]) == 0
    assert (runtime[0]["backend"], runtime[0]["db"]) == ("moto", None)


def test_dev_takes_the_default_key_from_the_environment(
    runtime: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given TASKPLANE_API_KEY set (so the CLI and the runtime agree without flags)
    monkeypatch.setenv("TASKPLANE_API_KEY", "from-env")
    # When dev runs, Then that is the default tenant's key
    assert main(["dev"]) == 0
    assert runtime[0]["api_key"] == "from-env"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tenant", "acme"], "expected NAME=KEY, got 'acme'"),
        (["--tenant", "=key"], "expected NAME=KEY"),
        (["--tenant", "acme="], "empty key"),
        (["--tenant", "acme=k1", "--tenant", "acme=k2"], "'acme' is given twice"),
        (["--api-key", "k1", "--tenant", "acme=k1"], "same key as (default tenant)"),
        (["--port", "70000"], "port must be 0-65535"),
        (["--functions", "/nonexistent/functions.py"], "no such file"),
        (["--backend", "dynamo"], "invalid choice: 'dynamo'"),
        (["--db", "x.db", "--backend", "moto"], "cannot go with --backend moto"),
        (["--db", "/"], "not a file name"),
    ],
)
def test_dev_usage_errors(
    runtime: list[dict[str, Any]], argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a malformed dev option, When dev runs
    code = main(["dev", *argv])
    # Then it is a usage error with a clear message, and the runtime never started
    assert code == 2
    assert expected in capsys.readouterr().err
    assert runtime == []


def test_dev_stops_cleanly_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a runtime interrupted by Ctrl-C
    module = types.ModuleType("taskplane.local.runtime")

    def run_dev(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    module.run_dev = run_dev  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "taskplane.local.runtime", module)
    # When dev runs, Then it exits 0
    assert main(["dev"]) == 0


def test_dev_without_moto_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given `pip install taskplane` without the local extra: moto cannot be found
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a)
    )
    started = []
    module = types.ModuleType("taskplane.local.runtime")
    module.run_dev = lambda **kwargs: started.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "taskplane.local.runtime", module)
    # When dev runs, Then it names the missing package and the extra, exits 1, and starts nothing
    assert main(["dev"]) == 1
    err = capsys.readouterr().err
    assert "moto is not installed" in err and "pip install 'taskplane[local]'" in err
    assert started == []


# -- task commands against the fake ----------------------------------------------------------------


def test_submit_sends_the_body_and_prints_the_task(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given options for one task with an idempotency key
    argv = api.cli("submit", "--target", "builtin:echo", "--payload", '{"hi": 1}', "--idempotency-key", "k-1")
    # When submit runs
    code = main(argv)
    # Then the API got that body and header, and the new task id is printed
    out = capsys.readouterr().out
    [seen] = [s for s in api.seen if s.path == "/v1/tasks"]
    assert code == 0
    assert seen.body == {"target": ECHO, "payload": {"hi": 1}}
    assert seen.headers["idempotency-key"] == "k-1"
    assert seen.headers["x-api-key"] == API_KEY
    assert "submitted" in out
    assert "T0001" in out


def test_submit_json_prints_the_raw_task(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given --json, When a task is submitted
    assert main(api.cli("submit", "--target", "builtin:echo", "--json")) == 0
    # Then stdout is exactly the task resource as JSON
    assert json.loads(capsys.readouterr().out) == api.tasks["T0001"]


@pytest.mark.parametrize(("final", "code"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_submit_wait_shows_the_outcome(
    api: FakeApi, capsys: pytest.CaptureFixture[str], final: str, code: int
) -> None:
    # Given a task that runs and then ends in `final`
    api.states_on_get["T0001"] = ["RUNNING", final]
    # When it is submitted with --wait
    result = main(api.cli("submit", "--target", "builtin:echo", "--wait"))
    # Then the final state is shown and the exit code says whether it succeeded
    out = capsys.readouterr().out
    assert result == code
    assert final in out
    assert "history" in out


def test_submit_api_validation_error(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a builtin the API does not know, When it is submitted
    code = main(api.cli("submit", "--target", "builtin:nope"))
    # Then the API error and its details are on stderr and the exit code is 1
    err = capsys.readouterr().err
    assert code == 1
    assert "error: invalid_request: the task body is not valid" in err
    assert "target.name: must be echo, sleep or fail" in err


def test_submit_file_sends_batches_and_sums_up(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given five task bodies over six lines: a blank one, and line 5 without a target
    lines = [json.dumps({"target": ECHO, "payload": i}) for i in range(3)]
    lines += ["", json.dumps({"payload": "lost"}), json.dumps({"target": ECHO})]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # When they are submitted two per batch, all at low priority
    code = main(api.cli("submit", "--file", str(path), "--chunk", "2", "--priority", "low"))
    # Then three batches of 2, 2 and 1 went out, each body with the option applied
    batches = [s.body["tasks"] for s in api.seen if s.path == "/v1/tasks/batch"]
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(body["priority"] == "low" for batch in batches for body in batch)
    # And the summary counts them and names the rejected line; any rejection exits 1
    captured = capsys.readouterr()
    assert code == 1
    assert "accepted 4, rejected 1 (of 5" in captured.out
    assert "line 5: invalid_request: target is required" in captured.out
    assert "submitting" in captured.err  # the progress bar is on stderr


def test_submit_file_sends_throttled_lines_again_and_says_so(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three lines, two of which the API throttles the first time (a full lane)
    lines = [
        {"target": ECHO, "payload": "busy-1"},
        {"target": ECHO, "payload": 2},
        {"target": ECHO, "payload": "busy-3"},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # When they are submitted
    code = main(api.cli("submit", "--file", str(path)))
    # Then the throttled ones went again, all three were accepted, and the wait was shown
    captured = capsys.readouterr()
    sent = [[t["payload"] for t in s.body["tasks"]] for s in api.seen if s.path == "/v1/tasks/batch"]
    assert sent == [["busy-1", 2, "busy-3"], ["busy-1", "busy-3"]]
    assert code == 0 and "accepted 3, rejected 0" in captured.out
    assert "2 tasks throttled; sending again in 0s" in captured.err


def test_submit_file_json_summary(api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given two good tasks
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"target": ECHO}) + "\n" + json.dumps({"target": ECHO}) + "\n")
    # When they are submitted with --json
    code = main(api.cli("submit", "--file", str(path), "--json"))
    # Then stdout is a JSON summary with one result per line
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (summary["accepted"], summary["rejected"]) == (2, 0)
    assert [(r["index"], r["line"]) for r in summary["results"]] == [(0, 1), (1, 2)]


def test_submit_file_with_bad_json_sends_nothing(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file whose third line is not JSON
    path = tmp_path / "tasks.jsonl"
    path.write_text(f"{json.dumps({'target': ECHO})}\n[1]\n{{oops\n")
    # When it is submitted
    code = main(api.cli("submit", "--file", str(path)))
    # Then it is a usage error naming the first bad line, and nothing was sent
    err = capsys.readouterr().err
    assert code == 2
    assert "line 2: expected a task body (JSON object), got list" in err
    assert api.seen == []


def test_get_shows_state_result_and_history(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a finished task with a result and three history entries
    history = [
        {"state": "PENDING", "at": "2030-01-01T00:00:00.000Z", "detail": "submitted"},
        {"state": "RUNNING", "at": "2030-01-01T00:00:00.100Z", "detail": "attempt 1"},
        {"state": "SUCCEEDED", "at": "2030-01-01T00:00:00.250Z", "detail": "[done]"},
    ]
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    task = api.add_task(
        state="SUCCEEDED", attempts=1, result={"echo": "hello"}, history=history, trace_id=trace
    )
    # When it is shown
    code = main(api.cli("get", task["task_id"]))
    # Then the panel has its id, state, result and every history entry (markup-like text kept as is)
    out = capsys.readouterr().out
    assert code == 0
    for fragment in (task["task_id"], "SUCCEEDED", '"echo": "hello"', "builtin:echo", "attempt 1", "[done]"):
        assert fragment in out
    assert "trace" in out and trace in out  # the trace to look it up by (OTLP export on)
    assert out.count("2030-01-01T00:00:00.") >= 3


def test_get_unknown_task_is_an_api_error(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no such task, When it is asked for, Then the 404 is printed and the exit code is 1
    assert main(api.cli("get", "missing")) == 1
    assert "error: not_found: no such task" in capsys.readouterr().err


def test_list_shows_a_table_and_the_next_page_hint(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given three tasks
    ids = [api.add_task(target={"type": "lambda", "function": "resize"})["task_id"] for _ in range(3)]
    # When two are listed
    code = main(api.cli("list", "--limit", "2"))
    # Then the newest two are in the table, with their target, and the next cursor is offered
    out = capsys.readouterr().out
    assert code == 0
    assert ids[2] in out and ids[1] in out and ids[0] not in out
    assert "lambda:resize" in out
    assert "--cursor 2" in out


def test_list_all_follows_every_page(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given five tasks
    ids = [api.add_task()["task_id"] for _ in range(5)]
    # When all are listed as JSON, two per page, with global options before the command
    code = main(["--url", api.url, "--api-key", API_KEY, "--json", "list", "--all", "--limit", "2"])
    # Then every task came back newest first over three requests
    page = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [t["task_id"] for t in page["items"]] == ids[::-1]
    assert len([s for s in api.seen if s.path == "/v1/tasks"]) == 3


def test_list_state_is_case_insensitive(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given one failed task among others
    api.add_task()
    failed = api.add_task(state="FAILED")
    # When failed tasks are listed in lower case
    assert main(api.cli("list", "--state", "failed")) == 0
    # Then the API was asked for FAILED and only that task is shown
    out = capsys.readouterr().out
    assert api.seen[-1].query["state"] == ["FAILED"]
    assert failed["task_id"] in out and "T0001" not in out


def test_list_empty(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no tasks, When they are listed, Then it says so
    assert main(api.cli("list")) == 0
    assert "no tasks" in capsys.readouterr().out


def test_cancel_and_cancel_again(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a pending task
    task_id = api.add_task()["task_id"]
    # When it is cancelled twice
    first = main(api.cli("cancel", task_id))
    first_out = capsys.readouterr().out
    second = main(api.cli("cancel", task_id))
    # Then the first cancels it and the second is the API's conflict
    assert (first, second) == (0, 1)
    assert "cancelled" in first_out and "CANCELLED" in first_out
    assert "error: conflict: task is CANCELLED" in capsys.readouterr().err


def test_wrong_key_is_reported(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the wrong key in the environment
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKPLANE_API_KEY", "wrong")
        mp.setenv("TASKPLANE_URL", api.url)
        # When a command runs without flags, Then the environment was used and the 401 is reported
        assert main(["list"]) == 1
    assert "error: unauthorized" in capsys.readouterr().err


def test_connection_error_hints_at_taskplane_dev(capsys: pytest.CaptureFixture[str]) -> None:
    # Given nothing listening on a port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # When a command runs against it
    code = main(["list", "--url", f"http://127.0.0.1:{port}"])
    # Then the error says which URL and what to check
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: connection_error: ")
    assert f"127.0.0.1:{port}" in err
    assert "taskplane dev" in err and "TASKPLANE_URL" in err


def test_narrow_task_list_keeps_ids_and_drops_created_at_before_cutting_the_target_short(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a task with a long http target
    url = "https://example.com/" + "x" * 80
    api.add_task(target={"type": "http", "url": url, "method": "POST"})
    for columns, created_shown in (("160", True), ("70", True), ("50", False)):
        # When the tasks are listed on a terminal of that width
        monkeypatch.setenv("COLUMNS", columns)
        assert main(api.cli("list")) == 0
        out = capsys.readouterr().out
        # Then no line is wider, the id and state are whole, and created_at goes before the target
        # would be cut below 12 characters
        assert max(len(line) for line in out.splitlines()) <= int(columns), columns
        assert "T0001" in out and "PENDING" in out
        assert ("2030-01-01T00:00:01.000Z" in out) is created_shown, columns
        assert "http:POST h" in out
