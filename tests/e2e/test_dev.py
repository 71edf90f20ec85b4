"""`taskplane dev` over HTTP with the Python client: the README quick start, retries, tenants."""

from __future__ import annotations

import pytest

from taskplane.client import Client, TaskplaneError

from .conftest import free_port, start_dev, stop, wait_healthy

pytestmark = pytest.mark.e2e


def test_echo_task_goes_pending_running_succeeded(dev):
    # Given the quick-start echo task
    client = Client(dev.url, dev.api_key)
    task = client.submit({"target": {"type": "builtin", "name": "echo"}, "payload": {"hello": "world"}})
    assert task["state"] == "PENDING"
    # When it has run
    done = client.wait(task["task_id"], timeout_s=30)
    # Then it SUCCEEDED with its payload, and the history shows every move
    assert done["state"] == "SUCCEEDED"
    assert done["result"] == {"hello": "world"}
    assert [h["state"] for h in done["history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert done["dispatched_at"] and done["started_at"] and done["finished_at"]


def test_fail_twice_succeeds_on_attempt_three(dev):
    # Given a task that fails twice with four attempts allowed
    client = Client(dev.url, dev.api_key)
    task = client.submit(
        {
            "target": {"type": "builtin", "name": "fail"},
            "payload": {"times": 2},
            "retry": {"max_attempts": 4, "base_delay_ms": 10, "max_delay_ms": 50},
        }
    )
    # When it settles
    done = client.wait(task["task_id"], timeout_s=30)
    # Then attempt 3 succeeded
    assert done["state"] == "SUCCEEDED"
    assert done["attempts"] == 3
    assert [h["state"] for h in done["history"]].count("RETRYING") == 2


def test_local_lambda_functions_run_in_process(dev):
    # Given functions from --functions FILE
    client = Client(dev.url, dev.api_key)
    ok = client.submit({"target": {"type": "lambda", "function": "greet"}, "payload": {"name": "ada"}})
    bad = client.submit({"target": {"type": "lambda", "function": "explode"}, "retry": {"max_attempts": 1}})
    # When they run
    ok_done = client.wait(ok["task_id"], timeout_s=30)
    bad_done = client.wait(bad["task_id"], timeout_s=30)
    # Then a return value is the result and an exception is the error
    assert ok_done["state"] == "SUCCEEDED" and ok_done["result"] == {"greeting": "hello ada"}
    assert bad_done["state"] == "FAILED"
    assert bad_done["error"]["type"] == "RuntimeError" and "boom" in bad_done["error"]["message"]


def test_second_tenant_is_isolated(dev):
    # Given a task of the default tenant
    mine = Client(dev.url, dev.api_key)
    theirs = Client(dev.url, dev.other_key)
    task = mine.submit({"target": {"type": "builtin", "name": "echo"}})
    # When the other tenant looks for it
    with pytest.raises(TaskplaneError) as seen:
        theirs.get(task["task_id"])
    # Then it is not found, not listed, and cannot be cancelled
    assert seen.value.status == 404
    assert task["task_id"] not in [t["task_id"] for t in theirs.iter_tasks()]
    with pytest.raises(TaskplaneError) as cancel:
        theirs.cancel(task["task_id"])
    assert cancel.value.status == 404
    # And their own tasks work
    own = theirs.submit({"target": {"type": "builtin", "name": "echo"}, "payload": 7})
    assert theirs.wait(own["task_id"], timeout_s=30)["result"] == 7


def test_unknown_key_is_401_and_bad_body_is_400(dev):
    # Given a client with a wrong key, and one sending a bad body
    with pytest.raises(TaskplaneError) as unauthorized:
        Client(dev.url, "wrong").submit({"target": {"type": "builtin", "name": "echo"}})
    with pytest.raises(TaskplaneError) as invalid:
        Client(dev.url, dev.api_key).submit({"target": {"type": "builtin", "name": "echo"}, "timeout_s": 0})
    # Then the answers are 401 and 400 naming the field
    assert unauthorized.value.status == 401
    assert invalid.value.status == 400 and "timeout_s" in invalid.value.message


def test_batch_and_list(dev):
    # Given a batch of five tasks, one invalid
    client = Client(dev.url, dev.api_key)
    bodies = [{"target": {"type": "builtin", "name": "echo"}, "payload": i} for i in range(4)]
    bodies.insert(2, {"target": {"type": "builtin", "name": "nope"}})
    results = client.submit_batch(bodies)["results"]
    # Then four were accepted, the bad one named, in order
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert "error" in results[2] and all("task_id" in r for i, r in enumerate(results) if i != 2)
    for r in results:
        if "task_id" in r:
            assert client.wait(r["task_id"], timeout_s=30)["state"] == "SUCCEEDED"
    listed = [t["task_id"] for t in client.iter_tasks(page_size=2)]
    assert all(r["task_id"] in listed for r in results if "task_id" in r)
    assert listed == sorted(listed, reverse=True)


def test_ctrl_c_stops_cleanly():
    # Given a second dev server on its own port
    port = free_port()
    process = start_dev(port)
    wait_healthy(f"http://127.0.0.1:{port}", process)
    # When it gets Ctrl-C (SIGINT)
    code, out = stop(process)
    # Then it printed its URL and key, stopped, and exited 0
    assert code == 0, out
    assert f"http://127.0.0.1:{port}" in out and "dev-key" in out
    assert "stopped" in out


def test_a_payload_too_large_for_a_request_is_uploaded_and_its_result_read_back(dev):
    # Given a 5.5 MB payload (over what one request may carry)
    client = Client(dev.url, dev.api_key)
    payload = {"rows": ["x" * 1000] * 5500}
    # When it is submitted and its echo task runs
    task = client.submit({"target": {"type": "builtin", "name": "echo"}, "payload": payload})
    done = client.wait(task["task_id"], timeout_s=60)
    # Then the client uploaded it to the presigned URL, the task ran with it, and its result (as large)
    # is read back through the result URL
    assert done["state"] == "SUCCEEDED", done
    assert done["payload"] is None and done["payload_size"] > 5 * 1024 * 1024
    assert done["result"] is None and "result_url" in done
    assert client.result(done) == payload


def test_the_default_backend_is_sqlite_in_memory(dev):
    # The banner says where state lives, and how to keep it
    assert "backend: SQLite in memory (--db FILE keeps it)" in dev.banner, dev.banner
