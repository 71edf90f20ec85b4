"""Backpressure: 429 + Retry-After on a deep lane or a tenant over its quota; priority lanes."""

from __future__ import annotations

import pytest

from taskplane.domain.states import TERMINAL

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def test_deep_lane_answers_429_with_retry_after_and_keeps_what_it_accepted(aws, api):
    # Given a low lane limited to 5 messages, its depth cached on a clock the test moves
    from taskplane.adapters.admission import DEPTH_TTL_MS
    from taskplane.domain.clock import FixedClock

    admission = aws.platform.tasks.admission
    admission.max_lane_depth = 5
    clock = FixedClock()
    admission.depths._now_ms = clock.now_ms
    # When 6 tasks are submitted within one cache period, then 6 more after it
    replies = [api("POST", "/v1/tasks", {**ECHO, "priority": "low"}) for _ in range(6)]
    clock.advance(DEPTH_TTL_MS)
    replies += [api("POST", "/v1/tasks", {**ECHO, "priority": "low"}) for _ in range(6)]
    # Then the first 6 are accepted (the cached reading said empty) and the next 6 get 429
    assert [r.status for r in replies] == [201] * 6 + [429] * 6
    refused = replies[-1]
    assert refused.body["error"]["code"] == "throttled" and "low lane" in refused.body["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    # And every accepted task is stored and queued (none dropped); refused ones left no trace
    accepted = [r.body["task_id"] for r in replies if r.status == 201]
    assert aws.queue_depth("low") == len(accepted)
    listed = {t["task_id"] for t in api("GET", "/v1/tasks", query={"limit": "100"}).body["items"]}
    assert listed == set(accepted)
    # And SQS was asked once per cache period, not once per request
    assert admission.depths.reads == 2
    # And the other lanes are not held back
    assert api("POST", "/v1/tasks", {**ECHO, "priority": "high"}).status == 201


def test_tenant_over_its_in_flight_quota_gets_429_until_tasks_end(aws, api, drain):
    # Given a quota of 3 in-flight tasks per tenant
    aws.platform.tasks.admission.tenant_quota = 3
    # When acme submits 3 tasks, then a 4th, and a batch
    first = [api("POST", "/v1/tasks", ECHO).status for _ in range(3)]
    fourth = api("POST", "/v1/tasks", ECHO)
    batch = api("POST", "/v1/tasks/batch", {"tasks": [ECHO, ECHO]})
    # Then the 4th and the batch are refused with Retry-After, while another tenant is not affected
    assert first == [201, 201, 201]
    assert fourth.status == 429 and "quota" in fourth.body["error"]["message"]
    assert batch.status == 429 and "Retry-After" in batch.headers
    assert api("POST", "/v1/tasks", ECHO, tenant="globex").status == 201
    # When acme's tasks run to the end
    for _ in range(5):
        drain()
    assert all(t["state"] in {s.value for s in TERMINAL} for t in api("GET", "/v1/tasks").body["items"])
    # Then acme has room again (the quota was given back as each task ended)
    assert aws.platform.tasks.admission.counters.current("acme") == 0
    assert api("POST", "/v1/tasks", ECHO).status == 201


def test_cancelled_task_gives_its_quota_back(aws, api):
    # Given a quota of 1 and one scheduled task
    aws.platform.tasks.admission.tenant_quota = 1
    reply = api("POST", "/v1/tasks", {**ECHO, "delay_ms": 600_000})
    assert api("POST", "/v1/tasks", ECHO).status == 429
    # When it is cancelled / Then the tenant may submit again
    assert api("POST", f"/v1/tasks/{reply.body['task_id']}/cancel").status == 200
    assert api("POST", "/v1/tasks", ECHO).status == 201


def test_high_lane_is_served_ahead_of_low_under_load(aws):
    # Given 16 slow tasks on each of the high and low lanes, queued before any worker runs
    from taskplane.domain.models import TaskSubmit
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import LanePoller, wait_until
    from taskplane.local.runtime import LANE_CONCURRENCY

    ids: dict[str, list[str]] = {"high": [], "low": []}
    for lane in ("low", "high"):
        for _ in range(16):
            body = {"target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 150}, "priority": lane}
            ids[lane].append(aws.platform.tasks.submit("acme", TaskSubmit.model_validate(body))[0].task_id)
    # When the lanes are polled with the runtime's per-lane concurrency (batches of one)
    worker = load_handler("worker").lambda_handler
    sqs = aws.client("sqs")
    pollers = [
        LanePoller(
            sqs, aws.settings.queue_urls[lane], worker, batch_size=1, concurrency=LANE_CONCURRENCY[lane]
        )
        for lane in ("low", "high")
    ]
    for p in pollers:
        p.start()
    try:

        def finished(lane: str) -> list[int]:
            tasks = [aws.platform.tasks.get("acme", t) for t in ids[lane]]
            return sorted(t.finished_at for t in tasks if t.finished_at)

        assert wait_until(lambda: len(finished("high")) == 16, 30)
        high_done = finished("high")[-1]
        low_done_by_then = sum(1 for f in finished("low") if f <= high_done)
    finally:
        for p in pollers:
            p.stop()
    # Then every high task was done while most low tasks still waited
    assert low_done_by_then <= 8, (low_done_by_then, LANE_CONCURRENCY)


def test_a_batch_over_the_lane_limit_answers_each_throttled_item_with_its_retry_hint(aws, api):
    # Given a low lane limited to one message and holding one, its depth read on a clock the test moves
    from taskplane.adapters.admission import DEPTH_TTL_MS
    from taskplane.domain.clock import FixedClock

    admission = aws.platform.tasks.admission
    admission.max_lane_depth = 1
    clock = FixedClock()
    admission.depths._now_ms = clock.now_ms
    assert api("POST", "/v1/tasks", {**ECHO, "priority": "low"}).status == 201
    clock.advance(DEPTH_TTL_MS)
    # When a batch mixes low and high tasks
    batch = [{**ECHO, "priority": "low"}, {**ECHO, "priority": "high"}, {**ECHO, "priority": "low"}]
    reply = api("POST", "/v1/tasks/batch", {"tasks": batch})
    # Then it is a 200 whose low items are throttled with a retry hint, and the high one accepted
    assert reply.status == 200, reply.body
    low_a, high, low_b = reply.body["results"]
    assert "task_id" in high and high["index"] == 1
    for item, index in ((low_a, 0), (low_b, 2)):
        assert item["index"] == index and set(item) == {"index", "error", "retry_after_s"}
        assert item["error"]["code"] == "throttled" and set(item["error"]) == {"code", "message", "details"}
        assert item["retry_after_s"] >= 1
    # And the answer's Retry-After is the largest hint
    assert int(reply.headers["Retry-After"]) == max(low_a["retry_after_s"], low_b["retry_after_s"])
