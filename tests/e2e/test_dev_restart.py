"""`taskplane dev --db FILE`: Ctrl-C and start again loses nothing and runs nothing twice.

Every call of the local function ``count`` appends its ``id`` to a file, so the test counts runs
from outside the process: tasks that finished before the stop are not run again, delayed tasks due
around the restart run once, a workflow published before the stop runs after it, and a run that was
waiting between two attempts of a node is relaunched without running its finished node again. A
batch trigger's windows open across a restart (the local function ``window`` logs each window's
events) keep the events received before it, take more after it, and close once, on time.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from taskplane.client import Client

from .conftest import free_port, start_dev, wait_healthy

pytestmark = pytest.mark.e2e

#: Nothing here depends on speed: each wait below is for a state, this long at most.
WAIT_S = 60


def _functions(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    functions = tmp_path / "functions.py"
    functions.write_text(
        f"LOG = {str(log)!r}\n\n"
        "def count(event, context):\n"
        "    with open(LOG, 'a') as f:\n"
        "        f.write(str(event['payload']['id']) + '\\n')\n"
        "    return {'counted': event['payload']['id']}\n\n"
        f"MARK = {str(tmp_path / 'flaky.mark')!r}\n\n"
        "def flaky(event, context):\n"
        "    import os\n"
        "    if not os.path.exists(MARK):\n"
        "        open(MARK, 'w').close()\n"
        "        raise RuntimeError('the first call fails')\n"
        "    return {'ok': True}\n\n"
        "def window(event, context):\n"
        "    p = event['payload']\n"
        # (sorted: a window's events come in arrival order, which publishing one at a time does not fix)
        "    ns = '.'.join(str(n) for n in sorted(e['detail']['n'] for e in p['events']))\n"
        "    with open(LOG, 'a') as f:\n"
        "        f.write(f\"window-{p['key']}:{ns}\\n\")\n"
        "    return {'events': len(p['events'])}\n"
    )
    return functions, log


def _calls(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _stop(process) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Ctrl-C, and as long as a loaded machine needs to stop cleanly (conftest's stop kills at 20 s)."""
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=WAIT_S)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out


def _start(port: int, db: Path, functions: Path):  # type: ignore[no-untyped-def]
    process = start_dev(port, "--db", str(db), "--functions", str(functions))
    wait_healthy(f"http://127.0.0.1:{port}", process)
    return process


def test_a_restart_on_the_same_file_loses_nothing_and_runs_nothing_twice(tmp_path):
    functions, log = _functions(tmp_path)
    db = tmp_path / "dev.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = Client(url, "dev-key")
    count = {"type": "lambda", "function": "count"}
    first = _start(port, db, functions)
    try:
        # Given tasks that finished, delayed tasks due well after the restart, and a workflow
        now_ids = [
            client.submit({"target": count, "payload": {"id": f"now-{i}"}})["task_id"] for i in range(10)
        ]
        for task_id in now_ids:
            assert client.wait(task_id, timeout_s=WAIT_S)["state"] == "SUCCEEDED"
        status, _ = client.request(
            "PUT",
            "/v1/workflows/twostep",
            {
                "nodes": [
                    {"id": "a", "target": count, "payload": {"id": "node-a"}},
                    # b fails its first call ever, then would wait 60 s (Step Functions' Retry)
                    {
                        "id": "b",
                        "needs": ["a"],
                        "target": {"type": "lambda", "function": "flaky"},
                        "retry": {
                            "max_attempts": 3,
                            "base_delay_ms": 60000,
                            "max_delay_ms": 60000,
                            "jitter": "none",
                        },
                    },
                ]
            },
        )
        assert status == 201
        status, run = client.request("POST", "/v1/workflows/twostep/runs", {"input": {}})
        assert status == 201, run
        run_id = run["run_id"]  # type: ignore[index]

        def b_failed_once() -> bool:
            nodes = {n["id"]: n for n in client.request("GET", f"/v1/runs/{run_id}")[1]["nodes"]}  # type: ignore[index]
            return nodes["a"]["state"] == "SUCCEEDED" and nodes["b"]["attempts"] >= 1 and nodes["b"]["error"]

        _until(b_failed_once, "node b's first failure")
        # (due 5 s on: on a loaded machine the old process may still send some before Ctrl-C stops
        # it; either way each runs once, below)
        later = [
            client.submit({"target": count, "payload": {"id": f"later-{i}"}, "delay_ms": 5000})["task_id"]
            for i in range(5)
        ]
    finally:
        # When dev is stopped with Ctrl-C while the run waits to retry b and the delayed tasks wait
        code, out = _stop(first)
    assert code == 0, out

    second = _start(port, db, functions)
    try:
        # Then the restarted dev says what it brought back
        # And the delayed tasks run once each, none early
        for task_id in later:
            done = client.wait(task_id, timeout_s=WAIT_S)
            assert done["state"] == "SUCCEEDED" and done["attempts"] == 1
            assert done["started_at"] >= done["run_at"]
        # And the tasks that had finished are still there, as they were
        assert all(client.get(task_id)["state"] == "SUCCEEDED" for task_id in now_ids)
        # And the run was relaunched: it succeeds, its finished node a skipped
        _until(
            lambda: client.request("GET", f"/v1/runs/{run_id}")[1]["state"] == "SUCCEEDED",  # type: ignore[index]
            "the relaunched run",
        )
        resumed = client.request("GET", f"/v1/runs/{run_id}")[1]
        assert resumed["executions"] == 2 and resumed["error"] is None, resumed  # type: ignore[index]
        # And the workflow published before the stop starts new runs
        status, again = client.request("POST", "/v1/workflows/twostep/runs", {"input": {}})
        assert status == 201, again
        # And another dev on the same file is refused at once, saying why
        other = start_dev(free_port(), "--db", str(db))
        refused, _ = other.communicate(timeout=WAIT_S)
        assert other.returncode == 1 and "is in use by another taskplane dev" in refused, refused
    finally:
        code, out = _stop(second)
    assert code == 0, out
    assert "reopened: 1 workflows (1 versions) published again, 1 runs resumed" in out
    # And nothing that finished ran twice: every call was made exactly once (node a: once per run)
    calls = _calls(log)
    assert {k: v for k, v in calls.items() if k != "node-a"} == {
        **{f"now-{i}": 1 for i in range(10)},
        **{f"later-{i}": 1 for i in range(5)},
    }
    assert calls["node-a"] == 2  # the first run's, never again on relaunch, and the new run's


def _ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _publish(client: Client, user: str, n: int) -> None:
    status, reply = client.request(
        "POST",
        "/v1/events",
        {"events": [{"source": "e2e.restart", "detail_type": "view", "detail": {"user": user, "n": n}}]},
    )
    assert status == 200 and "event_id" in reply["results"][0], reply  # type: ignore[index]


def _window_tasks(client: Client, trigger_id: str, count: int) -> list[dict]:  # type: ignore[type-arg]
    found: list[dict] = []  # type: ignore[type-arg]

    def started() -> bool:
        found[:] = [t for t in client.iter_tasks() if t.get("trigger_id") == trigger_id]
        return len(found) >= count

    _until(started, f"{count} window tasks")
    return [client.wait(t["task_id"], timeout_s=WAIT_S) for t in found]


def test_a_window_open_across_a_restart_keeps_its_events_and_closes_once_on_time(tmp_path):
    functions, log = _functions(tmp_path)
    db = tmp_path / "dev.db"
    port = free_port()
    client = Client(f"http://127.0.0.1:{port}", "dev-key")
    began = time.monotonic()
    first = _start(port, db, functions)
    # The window must outlast a stop and a start: long against what a start takes on this machine
    # now (a loaded machine gets a longer window, so nothing here races the machine's speed).
    window_ms = int(4_000 + 3_000 * (time.monotonic() - began))
    try:
        # Given a batch trigger with a window per user, and windows opened for u1 and u2
        status, trigger = client.request(
            "POST",
            "/v1/triggers",
            {
                "event_pattern": {"source": ["e2e.restart"], "detail-type": ["view"]},
                "batch": {"key": "$.detail.user", "window_ms": window_ms, "max_events": 100},
                "task": {"target": {"type": "lambda", "function": "window"}},
            },
        )
        assert status == 201, trigger
        for n in (1, 2, 3):
            _publish(client, "u1", n)
        _publish(client, "u2", 7)
    finally:
        # When dev is stopped with Ctrl-C while both windows are open
        code, out = _stop(first)
    assert code == 0, out

    second = _start(port, db, functions)
    try:
        # And u1 sends one more event after the restart
        _publish(client, "u1", 4)
        # Then each window closes once, with every event it received before and after the restart
        tasks = _window_tasks(client, trigger["trigger_id"], 2)  # type: ignore[index]
        assert all(t["state"] == "SUCCEEDED" and t["attempts"] == 1 for t in tasks), tasks
        by_key = {t["payload"]["key"]: t for t in tasks}
        assert sorted(by_key) == ["u1", "u2"]
        # (in arrival order, which one-at-a-time publishing does not fix: the worker takes a batch's
        # records at the same time, so compare them as a set)
        assert sorted(e["detail"]["n"] for e in by_key["u1"]["payload"]["events"]) == [1, 2, 3, 4]
        assert [e["detail"]["n"] for e in by_key["u2"]["payload"]["events"]] == [7]
        # And on time: not before its end, and by the restarted tick's wheel, not a minute later at
        # the tick's rule (a close the restart lost would wait for that)
        for task in tasks:
            window = task["payload"]["window"]
            assert window["reason"] == "time" and window["closes_at"] - window["opened_at"] == window_ms
            late = _ms(task["created_at"]) - window["closes_at"]
            assert 0 <= late < 10_000, (late, window)
    finally:
        code, out = _stop(second)
    assert code == 0, out
    # And nothing ran twice: one call per window, with its events once each
    # (each call's events in arrival order, which is not fixed: see above)
    calls = Counter(
        f"{k.split(':')[0]}:{'.'.join(sorted(k.split(':')[1].split('.')))}" for k in _calls(log).elements()
    )
    assert calls == {"window-u1:1.2.3.4": 1, "window-u2:7": 1}
