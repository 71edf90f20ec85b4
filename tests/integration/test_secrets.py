"""Secrets stay where the caller put them: user info in a target URL is refused at every door, and no
secret given in a header, a URL's query or a payload field named like one reaches a task's error or
history, a dead letter, a run's record or a log line, even when the target echoes it all back."""

# ruff: noqa: F811 - the workflow fixtures are imported from workflow_fixtures
from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

from taskplane.domain.states import TaskState

pytestmark = pytest.mark.integration

SECRETS = {
    "header": "hdr-SECRET-1111",
    "api_key_header": "hdr-SECRET-2222",
    "query": "qs-SECRET-3333",
    "password": "pl-SECRET-4444",
    "client_secret": "pl-SECRET-5555",
    "api_key": "pl-SECRET-6666",
    "token": "pl-SECRET-7777",
}
PAYLOAD = {
    "password": SECRETS["password"],
    "profile": {"client_secret": SECRETS["client_secret"], "api_key": SECRETS["api_key"]},
    "session": [{"token": SECRETS["token"]}],
    "note": "ordinary text",
}
HEADERS = {"Authorization": f"Bearer {SECRETS['header']}", "X-Api-Key": SECRETS["api_key_header"]}


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


# -- user info is refused at every door --------------------------------------------------------

USER_INFO_URL = "https://ada:hunter2-pw@hooks.example.com/charge"
HTTP = {"type": "http", "url": USER_INFO_URL}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        pytest.param("/v1/tasks", {"target": HTTP}, "target.url", id="task"),
        pytest.param(
            "/v1/tasks",
            {"target": {"type": "sqs", "queue_url": "https://u:pw@sqs.us-east-1.amazonaws.com/1/q"}},
            "target.queue_url",
            id="sqs-task",
        ),
        pytest.param(
            "/v1/schedules", {"cron": "* * * * *", "task": {"target": HTTP}}, "task.target.url", id="schedule"
        ),
        pytest.param(
            "/v1/triggers",
            {"event_pattern": {"source": ["acme.orders"]}, "task": {"target": HTTP}},
            "task.target.url",
            id="trigger",
        ),
    ],
)
def test_user_info_in_a_target_url_is_a_400_that_says_to_use_a_header(api, path, body, field):
    # Given a target URL carrying user:password@
    # When it is submitted through this door
    reply = api("POST", path, body)
    # Then it is a 400 naming the URL field, telling to send credentials in a header, without the password
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert any(d["field"].endswith(field) for d in error["details"]), error
    assert "header" in error["message"] and "hunter2-pw" not in json.dumps(reply.body)


def test_a_batch_item_with_user_info_fails_alone(api):
    # Given a batch whose second item carries user info
    reply = api(
        "POST",
        "/v1/tasks/batch",
        {"tasks": [{"target": {"type": "builtin", "name": "echo"}}, {"target": HTTP}]},
    )
    # Then the first is accepted and the second refused, naming its URL
    assert reply.status == 200, reply.body
    first, second = reply.body["results"]
    assert "task_id" in first
    assert second["error"]["code"] == "invalid_request" and "target.url" in second["error"]["message"]


@pytest.mark.parametrize(
    ("yaml_target", "field"),
    [
        pytest.param(f"target: {{type: http, url: '{USER_INFO_URL}'}}", "nodes.0.target.url", id="node"),
        pytest.param(
            f"target: {{type: builtin, name: echo}}\n    compensate: {{type: http, url: '{USER_INFO_URL}'}}",
            "nodes.0.compensate.url",
            id="compensation",
        ),
    ],
)
def test_a_workflow_node_or_compensation_with_user_info_is_refused(api, yaml_target, field):
    # Given a workflow whose node (or its compensation) calls a URL with user info
    text = f"nodes:\n  - id: a\n    {yaml_target}\n"
    # When it is published
    reply = api("PUT", "/v1/workflows/flow", raw_body=text, headers={"Content-Type": "application/yaml"})
    # Then it is a 400 naming the field
    assert reply.status == 400, reply.body
    assert any(d["field"] == field for d in reply.body["error"]["details"]), reply.body
    assert "hunter2-pw" not in json.dumps(reply.body)


# -- nothing built from an attempt quotes a secret -----------------------------------------------


class Echoing(BaseHTTPRequestHandler):
    """The worst target: it fails with 500 and quotes the whole request (body, URL, headers) back."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        quoted = {"body": body, "path": self.path, "headers": dict(self.headers)}
        text = f"cannot process {quoted}".encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_POST = do_GET = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def echoing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echoing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token={SECRETS['query']}&x=1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def every_log_line(capsys: pytest.CaptureFixture[str]) -> Iterator[io.StringIO]:
    """The platform logger at DEBUG into a buffer, and any other logger's records too."""
    from taskplane.observability import logger

    captured = io.StringIO()
    stream = logger.registered_handler.setStream(captured)
    level = logger.log_level
    logger.setLevel("DEBUG")
    other = logging.StreamHandler(captured)
    logging.getLogger().addHandler(other)
    try:
        yield captured
    finally:
        logging.getLogger().removeHandler(other)
        logger.registered_handler.setStream(stream)
        logger.setLevel(level)
        out = capsys.readouterr()
        captured.write(out.out + out.err)


def test_no_secret_reaches_a_task_error_history_dead_letter_or_log(
    aws, api, drain, echoing_url, every_log_line
):
    # Given a task calling a target that fails and quotes the request back, with secrets in a
    # header, the URL's query and payload fields named like secrets
    body = {
        "target": {"type": "http", "url": echoing_url, "headers": HEADERS},
        "payload": PAYLOAD,
        "retry": {"max_attempts": 2, "base_delay_ms": 10, "max_delay_ms": 20},
    }
    task_id = api("POST", "/v1/tasks", body).body["task_id"]
    # When it fails for good (two attempts) and is dead-lettered
    deadline = time.monotonic() + 20
    while aws.platform.tasks.get("acme", task_id).state is not TaskState.FAILED:
        assert time.monotonic() < deadline, "the task did not fail in time"
        drain()
        time.sleep(0.05)
    task = api("GET", f"/v1/tasks/{task_id}").body
    dead = api("GET", "/v1/dead-letters").body["items"]
    sqs = aws.client("sqs")
    dlq = sqs.receive_message(QueueUrl=aws.settings.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    # Then the target did see the secrets (the failure quotes them), yet none of them is in the task's
    # error or history, the dead letter (its record and its DLQ message) or any log line
    assert task["error"]["type"] == "HttpError" and "HTTP 500" in task["error"]["message"]
    assert task["error"]["message"].count("***") >= 3  # the payload's secrets, quoted first, blanked
    assert task["attempts"] == 2 and len(dead) == 1 and len(dlq) == 1
    built = {
        "error": json.dumps(task["error"]),
        "history": json.dumps(task["history"]),
        "dead letter": json.dumps(dead),
        "dlq message": json.dumps([m["Body"] for m in dlq]),
        "log": every_log_line.getvalue(),
    }
    assert {where: leaks(text) for where, text in built.items() if leaks(text)} == {}
    assert "delivery handled" in built["log"]  # the log was captured, and it held the failure


SAGA = """
on_failure: compensate
defaults: {{retry: {{max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20}}}}
nodes:
  - id: reserve
    target: {{type: builtin, name: echo}}
    compensate: {target}
  - id: charge
    needs: [reserve]
    target: {target}
    payload: {payload}
"""


def test_no_secret_reaches_a_run_record_or_log(wf, wf_api, echoing_url, every_log_line):
    # Given a saga whose node and whose compensation call the echoing target with the same secrets
    target = json.dumps({"type": "http", "url": echoing_url, "headers": HEADERS})
    reply = put_yaml(wf_api, "pay", SAGA.format(target=target, payload=json.dumps(PAYLOAD)))
    assert reply.status in (200, 201), reply.body
    # When a run fails, its completed node is compensated, and that compensation fails too
    started = wf_api("POST", "/v1/workflows/pay/runs", {"input": {"order": "A-1"}})
    run = wait_run(wf_api, started.body["run_id"])
    # Then the run names the failures with the secrets blanked out, in its record and in the logs
    assert run["state"] == "FAILED", run
    charge = {n["id"]: n for n in run["nodes"]}["charge"]
    assert "HTTP 500" in json.dumps(charge["error"])
    built = {
        "run error": json.dumps(run.get("error")),
        "nodes": json.dumps(run["nodes"]),
        "compensations": json.dumps(run["compensations"]),
        "log": every_log_line.getvalue(),
    }
    assert {where: leaks(text) for where, text in built.items() if leaks(text)} == {}
