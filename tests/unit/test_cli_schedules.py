"""``taskplane schedule ...``: request bodies, paths and methods, renderings and errors, against a loopback fake."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from fake_api import API_KEY, ECHO, FakeApi

from taskplane.cli import build_parser, main

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("clean_env")]


def _posted(api: FakeApi) -> Any:
    [seen] = [s for s in api.seen if (s.method, s.path) == ("POST", "/v1/schedules")]
    return seen.body


# -- create ----------------------------------------------------------------------------------------


def test_create_sends_the_schedule_and_its_task_template(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given every schedule option and every task template option
    argv = api.cli(
        "schedule",
        "create",
        "--cron",
        "0  9 * * 1-5",
        "--timezone",
        "Europe/Paris",
        "--name",
        "weekday-report",
        "--misfire",
        "fire_all",
        "--overlap",
        "skip",
        "--start-at",
        "2030-01-01T00:00:00Z",
        "--end-at",
        "2030-06-01T00:00:00+02:00",
        "--target",
        "lambda:build-report",
        "--payload",
        '{"report": "daily"}',
        "--timeout-s",
        "60",
        "--max-attempts",
        "3",
        "--priority",
        "high",
        "--label",
        "team=finance",
    )
    # When the schedule is created
    code = main(argv)
    # Then the API got one body with the schedule fields at the top and the template under "task"
    out = capsys.readouterr().out
    assert code == 0
    assert _posted(api) == {
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "name": "weekday-report",
        "misfire": "fire_all",
        "overlap": "skip",
        "start_at": "2030-01-01T00:00:00Z",
        "end_at": "2030-06-01T00:00:00+02:00",
        "task": {
            "target": {"type": "lambda", "function": "build-report"},
            "payload": {"report": "daily"},
            "timeout_s": 60,
            "retry": {"max_attempts": 3},
            "priority": "high",
            "labels": {"team": "finance"},
        },
    }
    # And the new schedule is shown with its next fire
    for fragment in (
        "01SCHED0000000000000000001",
        "created",
        "ACTIVE",
        "2030-01-01T00:05:00.000Z",
        "weekday-report",
    ):
        assert fragment in out


def test_create_sends_only_what_was_given(api: FakeApi) -> None:
    # Given only a cron and a target, When the schedule is created
    assert main(api.cli("schedule", "create", "--cron", "*/5 * * * *", "--target", "builtin:echo")) == 0
    # Then the API's defaults (UTC, fire_once, allow) are left to the API
    assert _posted(api) == {"cron": "*/5 * * * *", "task": {"target": ECHO}}


def test_create_merges_options_into_a_body_template(api: FakeApi, tmp_path: Path) -> None:
    # Given a whole task template in a file, with retry and labels
    path = tmp_path / "task.json"
    template = {"target": ECHO, "payload": [1], "retry": {"base_delay_ms": 100}, "labels": {"a": "1"}}
    path.write_text(json.dumps(template))
    # When options are given on top of it
    argv = ["--cron", "0 * * * *", "--body", f"@{path}", "--max-attempts", "5", "--label", "b=2"]
    assert main(api.cli("schedule", "create", *argv)) == 0
    # Then they merge into it like they do for submit
    assert _posted(api)["task"] == {
        "target": ECHO,
        "payload": [1],
        "retry": {"base_delay_ms": 100, "max_attempts": 5},
        "labels": {"a": "1", "b": "2"},
    }


def test_create_json_prints_the_raw_schedule(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given --json before the command, When a schedule is created
    argv = ["--json", "--url", api.url, "--api-key", API_KEY, "schedule", "create", "--cron", "* * * * *"]
    assert main([*argv, "--target-json", json.dumps(ECHO)]) == 0
    # Then stdout is exactly the schedule resource
    assert json.loads(capsys.readouterr().out) == api.schedules["01SCHED0000000000000000001"]


def test_create_api_validation_error_exits_1_with_the_detail(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a zone only the API can judge, When the schedule is created
    argv = ["--cron", "* * * * *", "--timezone", "Mars/Olympus", "--target", "builtin:echo"]
    code = main(api.cli("schedule", "create", *argv))
    # Then the API's error and its field are printed like for the task commands
    err = capsys.readouterr().err
    assert code == 1
    assert "error: invalid_request: the request body is not valid" in err
    assert "timezone: unknown IANA time zone 'Mars/Olympus'" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--delay-ms", "500"], ["argument --delay-ms", "not for schedules", "the cron decides"]),
        (["--run-at", "2030-01-01T00:00:00Z"], ["argument --run-at", "not for schedules"]),
        (["--idempotency-key", "k1"], ["argument --idempotency-key", "not for schedules"]),
        (["--file", "tasks.jsonl"], ["argument --file", "one task template"]),
        (["--wait"], ["argument --wait", "not for schedules"]),
        (["--body", '{"target": {"type": "builtin", "name": "echo"}, "run_at": "x"}'], ["--body", "run_at"]),
        (
            ["--body", '{"target": {"type": "builtin", "name": "echo"}, "delay_ms": 5}'],
            ["--body", "delay_ms"],
        ),
        (["--body", '{"cron": "* * * * *", "task": {}}'], ["--body", "not a whole schedule"]),
    ],
)
def test_create_refuses_task_start_options(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an option that would give the template its own start time or identity (nothing listens)
    # When a schedule is created with it
    code = main(
        [
            "schedule",
            "create",
            "--cron",
            "* * * * *",
            "--target",
            "builtin:echo",
            *argv,
            "--url",
            "http://127.0.0.1:9",
        ]
    )
    # Then it is a usage error naming the option and why
    err = capsys.readouterr().err
    assert code == 2
    assert "usage: taskplane schedule create" in err
    for fragment in expected:
        assert fragment in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "builtin:echo"], ["the following arguments are required: --cron"]),
        (
            ["--cron", "0 9 * * * *", "--target", "builtin:echo"],
            ["argument --cron", "expected 5 fields", "got 6"],
        ),
        (["--cron", "@daily", "--target", "builtin:echo"], ["argument --cron", "got 1"]),
        (
            ["--cron", "0 0 30 2 *", "--target", "builtin:echo"],
            ["argument --cron", "'0 0 30 2 *' can never fire"],
        ),
        (
            ["--cron", "0 0 L * *", "--target", "builtin:echo"],
            ["argument --cron", "L (last day) is not supported"],
        ),
        (["--cron", "* * * * *"], ["a target is required"]),
        (["--cron", "* * * * *", "--target", "ftp:x"], ["argument --target", "unknown target type"]),
        (
            ["--cron", "* * * * *", "--target", "builtin:echo", "--misfire", "later"],
            ["argument --misfire", "invalid choice"],
        ),
        (
            ["--cron", "* * * * *", "--target", "builtin:echo", "--overlap", "queue"],
            ["argument --overlap", "invalid choice"],
        ),
        (
            ["--cron", "* * * * *", "--target", "builtin:echo", "--start-at", "tomorrow"],
            ["argument --start-at", "RFC 3339"],
        ),
        (
            ["--cron", "* * * * *", "--target", "builtin:echo", "--end-at", "2030-01-01T09:00:00"],
            ["argument --end-at", "no offset"],
        ),
        (
            [
                "--cron",
                "* * * * *",
                "--target",
                "builtin:echo",
                "--start-at",
                "2030-01-02T00:00:00Z",
                "--end-at",
                "2030-01-01T00:00:00Z",
            ],
            ["argument --end-at", "is not after --start-at"],
        ),
        (
            ["--cron", "* * * * *", "--target", "builtin:echo", "--payload", "{bad"],
            ["argument --payload", "invalid JSON"],
        ),
    ],
)
def test_bad_create_options_exit_2_naming_the_option(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given options that cannot make a schedule (and no server: nothing may be sent)
    # When create runs
    code = main(["schedule", "create", *argv, "--url", "http://127.0.0.1:9"])
    # Then it is a usage error that says which option and what is wrong
    err = capsys.readouterr().err
    assert code == 2
    for fragment in expected:
        assert fragment in err


# -- list ------------------------------------------------------------------------------------------


def test_list_shows_a_table_and_the_next_page_hint(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given three schedules, one paused with a fire behind it and a skip
    api.add_schedule(name="nightly", cron="30 2 * * *", timezone="Europe/Paris", fires=7, skipped=2)
    api.add_schedule(name="hourly", cron="0 * * * *")
    paused = api.add_schedule(state="PAUSED", paused=True, next_fire_at=None, name="old")
    # When two are listed
    code = main(api.cli("schedule", "list", "--limit", "2"))
    # Then the newest two are rows with the asked columns, and the next cursor is offered
    out = capsys.readouterr().out
    assert code == 0
    assert api.seen[-1].query == {"limit": ["2"]}
    header = out.splitlines()[0].split()
    assert header == ["schedule_id", "name", "cron", "timezone", "state", "next_fire_at", "fires", "skipped"]
    assert paused["schedule_id"] in out and "(paused)" in out
    assert "01SCHED0000000000000000002" in out and "01SCHED0000000000000000001" not in out
    assert "hourly" in out and "0 * * * *" in out
    assert "taskplane schedule list --cursor 2" in out


def test_list_row_has_every_column_value(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given one schedule with every listed field set
    api.add_schedule(name="nightly", cron="30 2 * * *", timezone="Europe/Paris", fires=7, skipped=2)
    # When it is listed, Then its row holds each value in the column order
    assert main(api.cli("schedule", "list")) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.split() == [
        "01SCHED0000000000000000001",
        "nightly",
        "30",
        "2",
        "*",
        "*",
        "*",
        "Europe/Paris",
        "ACTIVE",
        "2030-01-01T00:05:00.000Z",
        "7",
        "2",
    ]


def test_list_all_follows_every_page(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given five schedules
    ids = [api.add_schedule()["schedule_id"] for _ in range(5)]
    # When all are listed as JSON, two per page
    code = main(api.cli("schedule", "list", "--all", "--limit", "2", "--json"))
    # Then every schedule came back newest first over three requests, with no cursor left
    page = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [s["schedule_id"] for s in page["items"]] == ids[::-1]
    assert page["next_cursor"] is None
    assert [s.query.get("cursor") for s in api.seen] == [None, ["2"], ["4"]]


def test_list_all_as_a_table_has_no_next_page_hint(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given three schedules, When all are listed one per page
    ids = [api.add_schedule()["schedule_id"] for _ in range(3)]
    assert main(api.cli("schedule", "list", "--all", "--limit", "1")) == 0
    # Then every one is in the one table and no further page is offered
    out = capsys.readouterr().out
    assert all(i in out for i in ids)
    assert "--cursor" not in out
    assert len(api.seen) == 3


def test_list_empty(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given no schedules, When they are listed, Then it says so
    assert main(api.cli("schedule", "list")) == 0
    assert "no schedules" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("limit", "expected"), [("0", "must be 1-500"), ("501", "must be 1-500"), ("x", "expected an integer")]
)
def test_list_bad_limit_exits_2(limit: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a page size the API would refuse, When list runs, Then it is a usage error naming --limit
    assert main(["schedule", "list", "--limit", limit, "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "argument --limit" in err and expected in err


# -- get, pause, resume, delete ----------------------------------------------------------------------


def test_get_shows_a_panel(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a schedule that has fired, with a template
    schedule = api.add_schedule(
        name="nightly",
        cron="30 2 * * *",
        timezone="Europe/Paris",
        task={"target": {"type": "lambda", "function": "resize"}, "payload": {"size": 3}},
        last_fire_at="2029-12-31T01:30:00.000Z",
        last_task_id="01TASK00000000000000000009",
        fires=4,
        skipped=1,
    )
    # When it is shown
    code = main(api.cli("schedule", "get", schedule["schedule_id"]))
    # Then the panel holds its fields, counters and template
    out = capsys.readouterr().out
    assert code == 0
    assert api.seen[-1].method == "GET" and api.seen[-1].path == f"/v1/schedules/{schedule['schedule_id']}"
    for fragment in (
        f"schedule {schedule['schedule_id']}",
        "nightly",
        "30 2 * * *  (Europe/Paris)",
        "2030-01-01T00:05:00.000Z",
        "01TASK00000000000000000009",
        "4 (skipped 1)",
        "lambda:resize",
        '"size": 3',
    ):
        assert fragment in out, fragment


@pytest.mark.parametrize(
    ("command", "method", "suffix", "printed", "state"),
    [
        ("pause", "POST", "/pause", "paused", "PAUSED"),
        ("resume", "POST", "/resume", "resumed", "ACTIVE"),
    ],
)
def test_pause_and_resume_call_their_paths(
    api: FakeApi,
    capsys: pytest.CaptureFixture[str],
    command: str,
    method: str,
    suffix: str,
    printed: str,
    state: str,
) -> None:
    # Given a schedule
    sid = api.add_schedule()["schedule_id"]
    # When it is paused or resumed
    code = main(api.cli("schedule", command, sid))
    # Then exactly that call went out and the new state is printed
    out = capsys.readouterr().out
    assert code == 0
    assert [(s.method, s.path, s.body) for s in api.seen] == [(method, f"/v1/schedules/{sid}{suffix}", None)]
    assert f"{printed} {sid}" in out and state in out


def test_resume_prints_the_next_fire(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a paused schedule, When it is resumed, Then the next fire is shown
    sid = api.add_schedule(state="PAUSED", paused=True, next_fire_at=None)["schedule_id"]
    assert main(api.cli("schedule", "resume", sid)) == 0
    assert "next fire 2030-01-02T00:00:00.000Z" in capsys.readouterr().out


def test_delete_prints_deleted(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a schedule
    sid = api.add_schedule()["schedule_id"]
    # When it is deleted
    code = main(api.cli("schedule", "delete", sid))
    # Then a DELETE went to its path, the 204 is reported, and it is gone
    assert code == 0
    assert [(s.method, s.path) for s in api.seen] == [("DELETE", f"/v1/schedules/{sid}")]
    assert capsys.readouterr().out.strip() == f"deleted {sid}"
    assert sid not in api.schedules


def test_delete_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a schedule, When it is deleted with --json, Then a JSON object says so
    sid = api.add_schedule()["schedule_id"]
    assert main(api.cli("schedule", "delete", sid, "--json")) == 0
    assert json.loads(capsys.readouterr().out) == {"schedule_id": sid, "deleted": True}


@pytest.mark.parametrize("command", ["get", "pause", "resume", "delete"])
def test_unknown_schedule_is_an_api_error(
    api: FakeApi, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # Given no such schedule, When a command names it
    code = main(api.cli("schedule", command, "nope"))
    # Then the 404 is printed like for tasks and the exit code is 1
    captured = capsys.readouterr()
    assert code == 1
    assert "error: not_found: schedule 'nope' not found" in captured.err
    assert captured.out == ""


def test_ids_are_quoted_into_one_path_segment(api: FakeApi) -> None:
    # Given an id with characters that mean something in a URL
    # When it is asked for, Then it reached the server as one segment of the schedule's path
    assert main(api.cli("schedule", "get", "a/b?c#d")) == 1
    assert api.seen[-1].path == "/v1/schedules/a%2Fb%3Fc%23d"


# -- help --------------------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_schedule_command_has_a_description_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the schedule group and its commands
    commands = _subcommands(_subcommands(build_parser())["schedule"])
    assert set(commands) == {"create", "list", "get", "pause", "resume", "delete"}
    for name, parser in commands.items():
        # When its help is asked
        assert main(["schedule", name, "--help"]) == 0
        out = capsys.readouterr().out
        # Then it has a description, an example of that very command, and the global options
        assert parser.description and parser.description.split("\n")[0] in out, name
        assert "Examples:" in out and f"  taskplane schedule {name} " in out, name
        assert all(opt in out for opt in ("--url", "--api-key", "--json")), name
    # And the refused submit options stay out of create's help
    main(["schedule", "create", "--help"])
    out = capsys.readouterr().out
    assert not any(opt in out for opt in ("--delay-ms", "--run-at", "--idempotency-key", "--file", "--wait"))


def test_schedule_alone_prints_the_group_help(capsys: pytest.CaptureFixture[str]) -> None:
    # Given no subcommand, When the group runs, Then its commands are listed on stderr and it exits 2
    assert main(["schedule"]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("create", "list", "get", "pause", "resume", "delete"))


def test_narrow_list_keeps_ids_and_fire_times_whole(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a schedule with a long name and zone, and an 80-column terminal
    api.add_schedule(
        name="a rather long schedule name for reports", timezone="America/Argentina/Buenos_Aires"
    )
    monkeypatch.setenv("COLUMNS", "80")
    # When the schedules are listed
    assert main(api.cli("schedule", "list")) == 0
    # Then no line is wider than the terminal, and the id, cron and next fire are there uncut
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for fragment in ("01SCHED0000000000000000001", "*/5 * * * *", "ACTIVE", "2030-01-01T00:05:00.000Z"):
        assert fragment in out
