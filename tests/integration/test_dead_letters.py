"""Dead letters over the API: per-tenant listing, redrive as a fresh task, crash-safe claims."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskplane.domain.states import TaskState

pytestmark = pytest.mark.integration

FAILING = {
    "target": {"type": "builtin", "name": "fail"},
    "payload": {"times": 1},
    "retry": {"max_attempts": 1, "base_delay_ms": 1, "max_delay_ms": 1},
}


def fail_one(api: Any, drain: Any, tenant: str = "acme") -> str:
    """Submit a task that fails its only attempt and run it to FAILED."""
    reply = api("POST", "/v1/tasks", FAILING, tenant=tenant)
    assert reply.status == 201, reply.body
    task_id = reply.body["task_id"]
    for _ in range(50):
        drain()
        if api("GET", f"/v1/tasks/{task_id}", tenant=tenant).body["state"] == "FAILED":
            return task_id
        time.sleep(0.02)
    raise AssertionError("task never failed")


def test_dead_letters_are_listed_for_their_tenant_only(aws, api, drain):
    # Given one failed task for acme and one for globex
    mine = fail_one(api, drain, "acme")
    theirs = fail_one(api, drain, "globex")
    # When each tenant lists its dead letters
    acme = api("GET", "/v1/dead-letters", tenant="acme")
    globex = api("GET", "/v1/dead-letters", tenant="globex")
    # Then each sees only its own, with the reason and the error
    assert acme.status == 200 and [d["task_id"] for d in acme.body["items"]] == [mine]
    assert [d["task_id"] for d in globex.body["items"]] == [theirs]
    item = acme.body["items"][0]
    assert item["status"] == "dead" and item["attempts"] == 1 and item["reason"]
    assert item["error"]["type"] == "BuiltinFailure"
    # And another tenant cannot redrive it: it is not found, and nothing changed
    other = api("POST", "/v1/dead-letters/redrive", {"ids": [mine]}, tenant="globex")
    assert other.status == 200
    assert other.body["results"][0]["error"]["code"] == "not_found"
    assert api("GET", "/v1/dead-letters", tenant="acme").body["items"][0]["status"] == "dead"


def test_redrive_queues_a_fresh_task_and_notes_the_failed_one(aws, api, drain):
    # Given a dead letter, and its target fixed since (every target now answers like echo)
    task_id = fail_one(api, drain)

    class Fixed:
        def run(
            self,
            target: dict,
            envelope: dict,
            timeout_s: float,
            cancel: Any = None,
            *,
            tenant: str | None = None,
        ) -> Any:
            return envelope["payload"]

    aws.platform.executor.runners = Fixed()
    # When it is redriven by id
    reply = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    # Then a new task is queued and runs to SUCCEEDED
    assert reply.status == 200, reply.body
    new_id = reply.body["results"][0]["redriven_as"]
    assert new_id and new_id != task_id
    for _ in range(50):
        drain()
        fresh = api("GET", f"/v1/tasks/{new_id}").body
        if fresh["state"] == "SUCCEEDED":
            break
    assert fresh["state"] == "SUCCEEDED"
    assert fresh["history"][0]["detail"] == f"redrive of {task_id}"
    # And the failed task stays FAILED (terminal) with a note in its history
    old = api("GET", f"/v1/tasks/{task_id}").body
    assert old["state"] == "FAILED" and old["history"][-1]["detail"] == f"redriven as {new_id}"
    # And the dead letter is marked redriven; a second redrive is a conflict, not a second task
    listed = api("GET", "/v1/dead-letters").body["items"][0]
    assert listed["status"] == "redriven" and listed["redriven_as"] == new_id
    again = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    assert again.body["results"][0]["error"]["code"] == "conflict"


def test_redrive_all_takes_every_dead_letter(aws, api, drain):
    # Given two dead letters
    ids = {fail_one(api, drain), fail_one(api, drain)}
    # When all are redriven (no body)
    reply = api("POST", "/v1/dead-letters/redrive")
    # Then both were redriven
    assert reply.status == 200
    assert {r["task_id"] for r in reply.body["results"]} == ids
    assert all("redriven_as" in r for r in reply.body["results"])


def test_interrupted_redrive_is_finished_with_the_same_task(aws, api, drain):
    # Given a redrive that claimed a new id and then failed to queue (SQS down)
    task_id = fail_one(api, drain)
    service = aws.platform.dead_letters
    real_queue = service.queue

    def down(task: Any) -> None:
        from taskplane.domain.errors import Unavailable

        raise Unavailable("queueing the task failed")

    service.queue = down
    first = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    assert first.body["results"][0]["error"]["code"] == "unavailable"
    # Then no PENDING task was left behind and the dead letter is dead again
    assert [t["task_id"] for t in api("GET", "/v1/tasks").body["items"]] == [task_id]
    assert api("GET", "/v1/dead-letters").body["items"][0]["status"] == "dead"
    # When SQS is back and the redrive runs again
    service.queue = real_queue
    second = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    # Then exactly one new task exists
    new_id = second.body["results"][0]["redriven_as"]
    tasks = api("GET", "/v1/tasks").body["items"]
    assert sorted(t["task_id"] for t in tasks) == sorted([task_id, new_id])
    assert aws.platform.tasks.get("acme", new_id).state is TaskState.PENDING


@pytest.mark.parametrize("body", [{"ids": []}, {"ids": "x"}, {"ids": [1]}, {"other": 1}, {"ids": ["a" * 65]}])
def test_redrive_rejects_bad_bodies(aws, api, body):
    # Given a malformed redrive body / When it is posted / Then it is a 400, never a 5xx
    reply = api("POST", "/v1/dead-letters/redrive", body)
    assert reply.status == 400, reply.body


def test_a_redrive_is_held_to_the_tenants_quota_like_a_submission(aws, api, drain):
    # Given two dead letters, and then a quota of 2 in-flight tasks of which one is taken
    first, second = fail_one(api, drain), fail_one(api, drain)
    admission = aws.platform.tasks.admission
    assert aws.platform.dead_letters.admission is admission  # one quota for every door
    admission.tenant_quota = 2
    busy = api("POST", "/v1/tasks", {**FAILING, "delay_ms": 600_000})
    assert busy.status == 201
    # When both are redriven
    reply = api("POST", "/v1/dead-letters/redrive", {"ids": [first, second]})
    # Then the first is accepted and counted, the second is refused as over the quota (with Retry-After),
    # stays dead and can be redriven once there is room
    assert reply.status == 200, reply.body
    done, refused = reply.body["results"]
    assert "redriven_as" in done, done
    assert refused["error"]["code"] == "throttled" and refused["retry_after_s"] >= 1, refused
    assert int(reply.headers["Retry-After"]) >= 1
    assert admission.counters.current("acme") == 2
    statuses = {d["task_id"]: d["status"] for d in api("GET", "/v1/dead-letters").body["items"]}
    assert statuses == {first: "redriven", second: "dead"}
    # When the redriven task runs to its end (it fails again) and the delayed one is cancelled
    for _ in range(5):
        drain()
    assert api("GET", f"/v1/tasks/{done['redriven_as']}").body["state"] == "FAILED"
    assert api("POST", f"/v1/tasks/{busy.body['task_id']}/cancel").status == 200
    # Then the quota was given back and the second redrive goes through
    assert admission.counters.current("acme") == 0
    again = api("POST", "/v1/dead-letters/redrive", {"ids": [second]}).body["results"]
    assert "redriven_as" in again[0], again


def test_a_redrive_onto_a_full_lane_is_refused_and_the_letter_stays_dead(aws, api, drain):
    # Given a dead letter and a default lane at its depth limit
    task_id = fail_one(api, drain)
    admission = aws.platform.tasks.admission
    admission.max_lane_depth = 1
    assert api("POST", "/v1/tasks", FAILING).status == 201  # one message on the lane, not yet run
    admission.depths._cache.clear()
    # When it is redriven
    reply = api("POST", "/v1/dead-letters/redrive", {"ids": [task_id]})
    # Then it is refused as throttled with Retry-After and nothing was queued or claimed
    (result,) = reply.body["results"]
    assert result["error"]["code"] == "throttled" and "default lane" in result["error"]["message"], result
    assert "Retry-After" in reply.headers
    (letter,) = api("GET", "/v1/dead-letters").body["items"]
    assert letter["status"] == "dead"
