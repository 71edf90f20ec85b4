# ruff: noqa: F811 - the sim fixture is imported from test_wheel
"""Windowed triggers under moto, through the API, the worker and the tick on a simulated clock.

Events are published with ``POST /v1/events`` and reach the worker through the trigger's rule and
lane, as in AWS; a window's end is a wheel entry the tick sends to its lane ahead of time, and the
worker closes the window when it is due (no loop of its own); the task a window starts runs through
the worker like any trigger task (domain/windows.py).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from taskplane import wiring
from taskplane.adapters.queues import WindowMessage, parse_body
from taskplane.domain.errors import Unavailable
from taskplane.domain.states import TaskState
from taskplane.domain.wheel import DISPATCH_LEAD_MS
from taskplane.domain.windows import MAX_WINDOW_BYTES
from taskplane.services.windows import CLOSE_AGAIN_MS
from taskplane.settings import MAX_RECEIVE_COUNT
from tests.integration.test_wheel import (  # noqa: F401 - the fixtures
    START,
    RecordingLanes,
    SimClock,
    counting,
    on_sim_clock,
    sim,
)

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def publish(api: Any, user: str, kind: str = "click", tenant: str = "acme", **detail: Any) -> str:
    reply = api(
        "POST",
        "/v1/events",
        {"events": [{"source": "shop.web", "detail_type": kind, "detail": {"user": user, **detail}}]},
        tenant=tenant,
    )
    assert reply.status == 200, reply.body
    return str(reply.body["results"][0]["event_id"])


def make_trigger(api: Any, tenant: str = "acme", **body: Any) -> str:
    body.setdefault("task", ECHO)
    if "correlate" not in body:
        body.setdefault("event_pattern", {"source": ["shop.web"]})
    reply = api("POST", "/v1/triggers", body, tenant=tenant)
    assert reply.status == 201, reply.body
    return str(reply.body["trigger_id"])


def tasks_of(aws: Any, trigger_id: str, tenant: str = "acme") -> list[Any]:
    items, _ = wiring.platform().tasks.list(tenant, limit=100)
    found = [t for t in items if t.trigger_id == trigger_id]
    return sorted(found, key=lambda t: t.created_at)


def full(aws: Any, task: Any) -> Any:
    """The task as stored, with its payload (read back from the bucket when it is there)."""
    platform = wiring.platform()
    stored = platform.tasks.get(task.tenant, task.task_id)
    if stored.payload_ref is not None:
        data = platform.blobs.get(stored.payload_ref.key)
        stored = stored.model_copy(update={"payload": json.loads(data)})
    return stored


def run_tick(aws: Any, sim: SimClock, until_ms: int, **changes: Any) -> Any:
    """The platform's tick on the simulated clock until ``until_ms`` (time goes on to there when it ends
    early, idle), with the worker taking what is sent to the lanes as soon as it is sent (see
    :func:`feed_worker`): a window's end from the tick, or one due soon that skipped the wheel."""
    platform = wiring.platform()
    ticker = dataclasses.replace(platform.ticker, clock=sim, wait=sim.wait, senders=sim.senders, **changes)
    hook = lambda: feed_worker(aws, sim, until_empty=True)  # noqa: E731
    sim.on_step.append(hook)
    try:
        report = ticker.run(0, until_ms=until_ms, owner=f"tick-{sim.now_ms()}")
        sim.wait(max(0, until_ms - sim.now_ms()) / 1000)
        return report
    finally:
        sim.on_step.remove(hook)


def feed_worker(
    aws: Any,
    sim: SimClock | None,
    rounds: int = 1,
    lanes: tuple[str, ...] = ("high", "default", "low"),
    until_empty: bool = False,
) -> list[dict[str, Any]]:
    """What the event source mapping does: each lane's messages, ten at a time, to the worker handler;
    a record that fails comes back on the next receive, as SQS redelivers it. On simulated time a
    window's end that comes in ahead reaches the worker at its due time: the worker holds it until then
    while events keep coming in, which a clock that jumps cannot show, so the hold is an action at the
    due instant (the hold itself is tested with the worker's own wait, below). The worker's responses."""
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import to_record

    sqs = aws.client("sqs")
    worker = load_handler("worker").lambda_handler
    responses: list[dict[str, Any]] = []

    def handle(url: str, arn: str, messages: list[dict[str, Any]], later: list[str] | None = None) -> None:
        event = {"Records": [to_record(m, arn) for m in messages]}
        response = worker(event, LocalContext(function_name="taskplane-worker"))
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            elif later is not None:
                later.append(m["ReceiptHandle"])  # back once this receive loop is over
            else:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )

    for _ in range(rounds):
        for lane in lanes:
            url = aws.settings.queue_urls[lane]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            arn = attributes["Attributes"]["QueueArn"]
            failed: list[str] = []
            while messages := sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
            ).get("Messages", []):
                now = []
                for m in messages:
                    body = parse_body(m["Body"])
                    if sim is not None and isinstance(body, WindowMessage) and body.due_ms > sim.now_ms():
                        sim.at(body.due_ms, lambda m=m, url=url, arn=arn: handle(url, arn, [m]))
                    else:
                        now.append(m)
                if now:
                    handle(url, arn, now, failed)
                if not until_empty:
                    break
            for receipt in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return responses


@pytest.fixture
def drain(aws: Any) -> Any:
    """``drain(rounds=..., lanes=...)`` as in tests/conftest.py, with window ends on simulated time
    reaching the worker when due (:func:`feed_worker`)."""
    clock = aws.platform.tasks.clock
    sim = clock if isinstance(clock, SimClock) else None
    return lambda rounds=1, lanes=("high", "default", "low"): feed_worker(aws, sim, rounds, lanes)


def at(sim: SimClock, offset_ms: int, action: Any) -> None:
    sim.at(START + offset_ms, action)


# -- batch ----------------------------------------------------------------------------------------
@on_sim_clock()
def test_a_batch_collects_events_per_key_and_closes_on_time(aws, sim, api, drain):
    # Given a batch trigger on $.detail.user, up to 10 events or two seconds (an end the tick sends)
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 2000, "key": "$.detail.user"})
    # When u1 publishes at 0, 100 and 200 ms and u2 at 50 ms (each handled by the worker at once),
    # one of u1's deliveries arriving twice
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]

    def send(user: str, n: int, twice: bool = False) -> Any:
        def go() -> None:
            publish(api, user, n=n)
            if twice:
                body = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"]
                sqs.send_message(QueueUrl=url, MessageBody=body)
            drain(rounds=2)

        return go

    send("u1", 1)()
    at(sim, 50, send("u2", 1))
    at(sim, 100, send("u1", 2, twice=True))
    at(sim, 200, send("u1", 3))
    assert tasks_of(aws, tid) == []
    # And the tick runs for three simulated seconds
    report = run_tick(aws, sim, START + 3_000)
    drain(rounds=2)
    # Then one task per key started when its window closed (2 s after its first event), with the
    # key's events in arrival order, each once, and ran
    assert report.windows == 2
    tasks = tasks_of(aws, tid)
    assert [t.state for t in tasks] == [TaskState.SUCCEEDED, TaskState.SUCCEEDED]
    u1, u2 = sorted(tasks, key=lambda t: full(aws, t).payload["key"])
    p1, p2 = full(aws, u1).payload, full(aws, u2).payload
    assert p1["key"] == "u1" and [e["detail"]["n"] for e in p1["events"]] == [1, 2, 3]
    assert p2["key"] == "u2" and [e["detail"]["n"] for e in p2["events"]] == [1]
    assert p1["window"]["reason"] == "time" and p1["mode"] == "batch"
    assert u1.created_at == START + 2_000 and u2.created_at == START + 50 + 2_000
    assert p1["window"]["closes_at"] == START + 2_000
    head = wiring.platform().triggers.windows.records.head("acme", tid, p1["window"]["id"])
    assert head.count == 3 and head.state == "CLOSED" and head.task_id == u1.task_id


@on_sim_clock()
def test_an_event_delivered_again_after_its_window_closed_is_not_counted_again(aws, sim, api, drain):
    # Given a batch window that took one event and closed
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    publish(api, "u1", n=1)
    body = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"]
    drain(rounds=2)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    assert len(tasks_of(aws, tid)) == 1
    # When SQS delivers the same event again (at-least-once), after the window closed
    sqs.send_message(QueueUrl=url, MessageBody=body)
    (response,) = drain()
    run_tick(aws, sim, START + 5_000)
    drain(rounds=2)
    # Then it opened no new window and started nothing
    assert response == {"batchItemFailures": []}
    assert len(tasks_of(aws, tid)) == 1


@on_sim_clock()
def test_a_full_batch_starts_its_task_at_once_and_the_rest_open_the_next(aws, sim, api, drain):
    # Given batches of 3 within 10 s
    tid = make_trigger(api, batch={"max_events": 3, "window_ms": 10_000, "key": "$.detail.user"})
    # When 7 events of one key arrive together
    for n in range(7):
        publish(api, "u1", n=n)
    drain(rounds=3)
    # Then two full batches started their tasks at once, without waiting for the window's end
    started = tasks_of(aws, tid)
    assert len(started) == 2
    assert all(full(aws, t).payload["window"]["reason"] == "full" for t in started)
    assert all(t.created_at == START for t in started)
    # And the 7th waits in its window until the tick closes it 10 s later
    run_tick(aws, sim, START + 12_000)
    drain(rounds=2)
    tasks = tasks_of(aws, tid)
    assert len(tasks) == 3 and tasks[2].created_at == START + 10_000
    seen = [e["detail"]["n"] for t in tasks for e in full(aws, t).payload["events"]]
    assert sorted(seen) == list(range(7))  # every event once, in exactly one batch
    assert [len(full(aws, t).payload["events"]) for t in tasks] == [3, 3, 1]
    assert all(t.state is TaskState.SUCCEEDED for t in tasks)


@on_sim_clock()
def test_a_batch_over_the_inline_limit_goes_to_the_bucket(aws, sim, api, drain):
    # Given batches of up to 20 events (the platform has a bucket)
    tid = make_trigger(api, batch={"max_events": 20, "window_ms": 1000, "key": "$.detail.user"})
    # When 12 events of ~8 KB each arrive (~96 KB together, over the 64 KiB inline limit)
    for n in range(12):
        publish(api, "u1", n=n, blob="x" * 8_000)
    drain(rounds=3)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # Then one task got them all, its payload kept in the bucket, and the echo ran with all of it
    (task,) = tasks_of(aws, tid)
    assert task.payload_ref is not None and task.payload is None
    assert task.state is TaskState.SUCCEEDED
    shown = api("GET", f"/v1/tasks/{task.task_id}").body
    assert shown["payload_size"] > 64 * 1024


@on_sim_clock()
def test_an_event_of_256_kb_in_any_script_fits_its_window(aws, sim, api, drain):
    # Given a batch trigger, and an event as large as EventBridge takes, in a script whose characters
    # take 3 bytes in UTF-8 (and 6 as ASCII escapes: over DynamoDB's 400 KB item)
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    big = {
        "id": "big-1",
        "source": "shop.web",
        "detail-type": "click",
        "detail": {"user": "u1", "text": "日" * 85_000, "taskplane_tenant": "acme"},
    }
    # When the worker takes it into its window, and the window closes
    assert wiring.platform().triggers.start("acme", tid, big) == "taken"
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # Then its task got it whole (through the bucket) and ran
    (task,) = tasks_of(aws, tid)
    assert task.state is TaskState.SUCCEEDED and task.payload_ref is not None
    assert full(aws, task).payload["events"][0]["detail"]["text"] == "日" * 85_000


# -- debounce -------------------------------------------------------------------------------------
@on_sim_clock()
def test_debounce_starts_one_task_with_the_last_event_of_a_burst(aws, sim, api, drain):
    # Given a debounce of 500 ms per user
    tid = make_trigger(api, debounce={"window_ms": 500, "key": "$.detail.user"})

    def send(n: int) -> Any:
        return lambda: (publish(api, "u1", n=n), drain(rounds=2))

    # When u1 publishes at 0, 300 and 600 ms (a burst), then again at 3 s
    send(1)()
    at(sim, 300, send(2))
    at(sim, 600, send(3))
    at(sim, 3_000, send(4))
    run_tick(aws, sim, START + 5_000)
    drain(rounds=2)
    # Then the burst started one task 500 ms after its last event, with that event as its payload;
    # the later event started its own
    tasks = tasks_of(aws, tid)
    assert [full(aws, t).payload["detail"]["n"] for t in tasks] == [3, 4]
    assert [t.created_at for t in tasks] == [START + 1_100, START + 3_500]
    assert all(t.state is TaskState.SUCCEEDED for t in tasks)


@on_sim_clock()
@pytest.mark.parametrize("moved_ms", [5, 60, 99])
def test_a_debounce_s_end_moved_a_little_still_closes_when_due(aws, sim, api, drain, moved_ms):
    # Given a debounce of 500 ms, and a second event ``moved_ms`` after the first: when the first end
    # comes the end has moved, to a time before the tick's next read (its reads are 30 ms off the
    # events' instants)
    tid = make_trigger(api, debounce={"window_ms": 500, "key": "$.detail.user"})
    publish(api, "u1", n=1)
    drain(rounds=2)
    sim.advance(moved_ms)
    publish(api, "u1", n=2)
    drain(rounds=2)
    sim.advance(30)
    run_tick(aws, sim, START + 3_000)
    drain(rounds=2)
    # Then its window closed at its new end: due that soon, the new end skipped the wheel for its lane
    # (a wheel entry the tick's reads from now had passed would wait for its next read behind now)
    (task,) = tasks_of(aws, tid)
    assert task.created_at == START + moved_ms + 500
    assert full(aws, task).payload["detail"]["n"] == 2


@on_sim_clock()
def test_debounce_max_wait_bounds_an_endless_burst(aws, sim, api, drain):
    tid = make_trigger(api, debounce={"window_ms": 500, "max_wait_ms": 1_000, "key": "$.detail.user"})
    publish(api, "u1", n=0)
    drain(rounds=2)
    for i in range(1, 8):  # an event every 300 ms: never quiet for 500 ms
        at(sim, 300 * i, lambda i=i: (publish(api, "u1", n=i), drain(rounds=2)))
    run_tick(aws, sim, START + 4_000)
    drain(rounds=2)
    tasks = tasks_of(aws, tid)
    # the first window ends 1 s after its first event with the last event it took (900 ms)
    assert tasks[0].created_at == START + 1_000
    assert full(aws, tasks[0]).payload["detail"]["n"] == 3


# -- correlate ------------------------------------------------------------------------------------
EXPOSURE = {"source": ["shop.web"], "detail-type": ["exposure"]}
CLICK = {"source": ["shop.web"], "detail-type": ["click"]}


@on_sim_clock()
def test_correlate_starts_a_task_when_every_pattern_matched_within_the_window(aws, sim, api, drain):
    # Given exposure -> click within 5 s per user
    tid = make_trigger(
        api, correlate={"within_ms": 5_000, "key": "$.detail.user", "events": [EXPOSURE, CLICK]}
    )
    # When u1 is exposed and clicks 1 s later, u2 is only exposed, u3 only clicks
    publish(api, "u1", kind="exposure")
    publish(api, "u2", kind="exposure")
    publish(api, "u3", kind="click")
    drain(rounds=2)
    at(sim, 1_000, lambda: (publish(api, "u1", kind="click"), drain(rounds=2)))
    run_tick(aws, sim, START + 7_000)
    drain(rounds=2)
    # Then only u1's correlation started a task, at the click, with both events and what matched
    (task,) = tasks_of(aws, tid)
    payload = full(aws, task).payload
    assert task.created_at == START + 1_000 and task.state is TaskState.SUCCEEDED
    assert payload["key"] == "u1" and payload["window"]["reason"] == "complete"
    assert [e["detail-type"] for e in payload["events"]] == ["exposure", "click"]
    ids = [e["id"] for e in payload["events"]]
    assert payload["matched"] == [[ids[0]], [ids[1]]]
    # And the trigger has one rule per pattern, each scoped to acme like a trigger's pattern
    shown = api("GET", f"/v1/triggers/{tid}").body
    assert [p["detail"]["taskplane_tenant"] for p in shown["rule_patterns"]] == [["acme"], ["acme"]]
    events = aws.client("events")
    names = {r["Name"] for r in events.list_rules(EventBusName=aws.settings.event_bus)["Rules"]}
    assert {shown["rule_name"], shown["rule_name"] + "-1"} <= names
    # And deleting it removes both rules
    assert api("DELETE", f"/v1/triggers/{tid}").status == 204
    names = {r["Name"] for r in events.list_rules(EventBusName=aws.settings.event_bus)["Rules"]}
    assert not {shown["rule_name"], shown["rule_name"] + "-1"} & names


@on_sim_clock()
def test_keys_with_any_text_share_windows_by_value(aws, sim, api, drain):
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    for user in ["zoë", "zoë", "日本", 7, "7"]:
        publish(api, user)
    drain(rounds=3)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    keys = sorted(json.dumps(full(aws, t).payload["key"]) for t in tasks_of(aws, tid))
    assert keys == sorted(json.dumps(k) for k in ["zoë", "日本", 7, "7"])


@on_sim_clock()
def test_one_event_matching_every_pattern_completes_a_correlation_alone(aws, sim, api, drain):
    # Given a correlation of "any event from the web" and "a click"
    tid = make_trigger(
        api,
        correlate={"within_ms": 5_000, "key": "$.detail.user", "events": [{"source": ["shop.web"]}, CLICK]},
    )
    # When one click arrives (each rule delivers it: once per pattern)
    publish(api, "u1", kind="click")
    drain(rounds=3)
    # Then the correlation completed with that one event, matched by both patterns
    (task,) = tasks_of(aws, tid)
    payload = full(aws, task).payload
    (only,) = payload["events"]
    assert payload["window"]["reason"] == "complete"
    assert payload["matched"] == [[only["id"]], [only["id"]]]


@on_sim_clock()
def test_an_incomplete_correlation_starts_its_on_timeout_task_when_the_window_ends(aws, sim, api, drain):
    timeout_task = {"target": {"type": "builtin", "name": "echo"}, "labels": {"why": "no-click"}}
    tid = make_trigger(
        api,
        correlate={
            "within_ms": 5_000,
            "key": "$.detail.user",
            "events": [EXPOSURE, CLICK],
            "on_timeout": timeout_task,
        },
    )
    publish(api, "u2", kind="exposure")
    drain(rounds=2)
    run_tick(aws, sim, START + 7_000)
    drain(rounds=2)
    (task,) = tasks_of(aws, tid)
    payload = full(aws, task).payload
    assert task.labels == {"why": "no-click"} and task.created_at == START + 5_000
    assert payload["window"]["reason"] == "time" and payload["matched"] == [[payload["events"][0]["id"]], []]


# -- restarts, duplicates, tenants ----------------------------------------------------------------
@on_sim_clock()
def test_windows_survive_a_restart_and_a_close_that_fails_half_way(aws, sim, api, drain):
    # Given a batch window holding two events
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    publish(api, "u1", n=1)
    drain(rounds=2)
    sim.advance(10)
    publish(api, "u1", n=2)
    drain(rounds=2)
    # When the process restarts (a new platform from the same tables) and its first close fails
    # after sealing the window (the task store refuses once)
    platform = wiring.build(aws.settings, session=aws.session, clock=sim)
    wiring.use(platform)
    windows = platform.triggers.windows
    real_create = windows.tasks.create
    failures = []

    def create_once_failing(task: Any) -> Any:
        if not failures:
            failures.append(task.task_id)
            raise RuntimeError("the store went away")
        return real_create(task)

    windows.tasks.create = create_once_failing
    run_tick(aws, sim, START + 3_000)
    drain(rounds=2)
    # Then the close was tried again and one task got both events
    (task,) = tasks_of(aws, tid)
    assert failures == [task.task_id]
    assert [e["detail"]["n"] for e in full(aws, task).payload["events"]] == [1, 2]
    assert task.state is TaskState.SUCCEEDED


@on_sim_clock()
def test_windows_stay_inside_their_tenant(aws, sim, api, drain):
    # Given the same batch trigger for acme and globex
    acme = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    globex = make_trigger(
        api, tenant="globex", batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"}
    )
    # When both publish events with the same key
    publish(api, "u1", n=1)
    publish(api, "u1", n=2, tenant="globex")
    drain(rounds=2)
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    # Then each tenant's window got only its own event
    (a,) = tasks_of(aws, acme)
    (g,) = tasks_of(aws, globex, tenant="globex")
    assert [e["detail"]["n"] for e in full(aws, a).payload["events"]] == [1]
    assert [e["detail"]["n"] for e in g.payload["events"]] == [2]
    assert all(e["detail"]["taskplane_tenant"] == "globex" for e in g.payload["events"])
    assert api("GET", f"/v1/triggers/{acme}", tenant="globex").status == 404


@on_sim_clock()
def test_a_deleted_trigger_s_open_window_starts_nothing(aws, sim, api, drain):
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 1000, "key": "$.detail.user"})
    publish(api, "u1")
    drain(rounds=2)
    assert api("DELETE", f"/v1/triggers/{tid}").status == 204
    run_tick(aws, sim, START + 2_000)
    drain(rounds=2)
    assert tasks_of(aws, tid) == []


# -- window ends through the lanes: the tick sends, the worker holds and closes --------------------------
def tick_only(aws: Any, sim: SimClock, until_ms: int) -> Any:
    """The tick alone on the simulated clock (nothing takes what it sends)."""
    ticker = dataclasses.replace(wiring.platform().ticker, clock=sim, wait=sim.wait, senders=sim.senders)
    return ticker.run(0, until_ms=until_ms, owner=f"tick-{sim.now_ms()}")


def lane_bodies(aws: Any, lane: str) -> list[Any]:
    """The messages on a lane, parsed, left there (visible again)."""
    sqs, url = aws.client("sqs"), aws.settings.queue_urls[lane]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [parse_body(m["Body"]) for m in messages.get("Messages", [])]


def one_window(api: Any, **task: Any) -> tuple[str, int]:
    """A batch trigger (2 s windows: an end due later than NEAR_MS goes through the wheel) with one
    event in at START: its id and its window's end."""
    tid = make_trigger(api, batch={"max_events": 10, "window_ms": 2_000, "key": "$.detail.user"}, task=task)
    publish(api, "u1", n=1)
    return tid, START + 2_000


class CountingSends:
    """The window service's lanes, counting the deliveries of the tasks it starts."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sent = inner, []

    def send_one(self, message: Any) -> None:
        self.inner.send_one(message)
        self.sent.append(message)


@on_sim_clock()
def test_the_tick_sends_a_window_s_end_to_its_lane_ahead_and_closes_nothing_itself(aws, sim, api, drain):
    # Given a window of a trigger whose tasks go to the high lane
    tid, end = one_window(api, **ECHO, priority="high")
    drain(rounds=2)  # the event taken into its window
    # When the tick runs past the window's end, with no worker taking its lanes
    report = tick_only(aws, sim, START + 3_000)
    # Then it closed nothing: the window's end is on the high lane, sent a lead ahead of it
    assert tasks_of(aws, tid) == []
    (message,) = lane_bodies(aws, "high")
    assert isinstance(message, WindowMessage) and message.due_ms == end and message.tenant == "acme"
    assert message.dispatched_at == end - DISPATCH_LEAD_MS
    assert (report.windows, report.dispatched) == (1, 1)
    trigger_id, window_id = message.window.split(".")
    head = wiring.platform().triggers.windows.records.head("acme", trigger_id, window_id)
    assert trigger_id == tid and head.state == "OPEN"


@on_sim_clock()
def test_a_window_s_end_the_queue_refuses_is_sent_again_and_still_closes_when_due(aws, sim, api, drain):
    # Given SQS refusing the tick's first send of a window's end (throttled)
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    refused: list[Any] = []

    class RefusingOnce(RecordingLanes):
        def send(self, messages: list[Any]) -> list[Exception | None]:
            if not refused:
                refused.extend(messages)
                return [Unavailable("throttled")] * len(messages)
            return super().send(messages)

    lanes = RefusingOnce(wiring.platform().ticker.lanes, sim)
    # When the tick sends it, and the worker takes what reaches the lane
    report = run_tick(aws, sim, end + 1_000, lanes=lanes)
    # Then it was sent again a moment later, once, still ahead of the end, and the window closed on time
    assert [type(m) for m in refused] == [WindowMessage] and report.send_failures == 1
    assert refused[0].dispatched_at == end - DISPATCH_LEAD_MS
    ((at, message),) = lanes.sent
    assert message.window == refused[0].window and end - DISPATCH_LEAD_MS < at < end
    assert (report.dispatched, report.windows) == (1, 1)
    (task,) = tasks_of(aws, tid)
    assert task.created_at == end


@on_sim_clock()
def test_a_window_s_end_delivered_ahead_is_held_and_closes_at_its_due_ms(aws, sim, api, drain):
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    tick_only(aws, sim, end - 300)  # sent at end - 350
    assert sim.now_ms() < end
    # When the worker takes it at once (the clock ~300 ms before the end), noting when it seals
    windows = wiring.platform().triggers.windows
    real_seal, sealed_at = windows.records.seal, []

    def seal(*args: Any) -> Any:
        sealed_at.append(sim.now_ms())
        return real_seal(*args)

    windows.records.seal = seal
    (response,) = feed_worker(aws, None, lanes=("default",))  # (the worker's own wait on the sim clock)
    # Then it waited until the end (the simulated clock moved there while it held), and only then
    # sealed the window and started its task
    assert response == {"batchItemFailures": []}
    assert sealed_at == [end]
    (task,) = tasks_of(aws, tid)
    assert task.created_at == end


@on_sim_clock()
def test_a_window_s_end_delivered_twice_at_once_starts_one_task(aws, sim, api, drain, counting):
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    tick_only(aws, sim, end + 100)
    # When SQS delivers the window's end twice, both copies in one batch (handled side by side)
    sqs, url = aws.client("sqs"), aws.settings.queue_urls["default"]
    (body,) = [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]]
    sqs.send_message(QueueUrl=url, MessageBody=body)
    (response,) = drain(lanes=("default",))
    # Then one task was created, and it ran once (were both closes to queue it, the worker starts
    # an attempt once)
    assert response == {"batchItemFailures": []}
    (task,) = tasks_of(aws, tid)
    drain(rounds=2)
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.SUCCEEDED
    assert counting.calls == {task.task_id: 1}


@on_sim_clock()
def test_a_close_that_fails_is_retried_by_redelivery_and_starts_its_task_once(aws, sim, api, drain):
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    tick_only(aws, sim, end + 100)
    # When the first two closes fail after the window's task was stored, before it was queued
    platform = wiring.platform()
    windows = platform.triggers.windows
    counting = CountingSends(windows.lanes)
    failures: list[str] = []

    def send_one(message: Any) -> None:
        if len(failures) < 2:
            failures.append(message.task_id)
            raise RuntimeError("the lane went away")
        counting.send_one(message)

    windows.lanes = type("Failing", (), {"send_one": staticmethod(send_one)})()
    real_hold, holds = platform.executor.lanes.hold_many, []
    platform.executor.lanes.hold_many = lambda asks: (holds.extend(asks), real_hold(asks))[1]
    (first,) = drain(lanes=("default",))
    # Then the record failed, nothing was queued yet, and the worker asked SQS to bring it back within
    # a second (not at the lanes' visibility timeout)
    assert len(first["batchItemFailures"]) == 1 and counting.sent == []
    assert [seconds for _, _, seconds in holds] == [1]
    # And a second failure waits out the visibility timeout (no hold: deliveries are not used up fast)
    (second,) = drain(lanes=("default",))
    assert len(second["batchItemFailures"]) == 1 and len(holds) == 1
    # And the next redelivery finished the close: the task stored by the first try, queued once
    (again,) = drain(lanes=("default",))
    assert again == {"batchItemFailures": []}
    (task,) = tasks_of(aws, tid)
    assert failures == [task.task_id] * 2 and [m.task_id for m in counting.sent] == [task.task_id]
    trigger_id, window_id = task.trigger_id, full(aws, task).payload["window"]["id"]
    assert windows.records.head("acme", trigger_id, window_id).state == "CLOSED"
    drain(rounds=2)
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.SUCCEEDED


@on_sim_clock()
def test_a_close_that_fails_on_every_delivery_goes_back_into_the_wheel_not_to_the_dlq(
    aws, sim, api, drain, counting
):
    # Given a window whose end the tick sent, and a close that fails on every one of the lane's
    # deliveries (the window's task is stored, its queueing refused)
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    tick_only(aws, sim, end + 100)
    windows = wiring.platform().triggers.windows
    real_lanes = windows.lanes

    def send_one(message: Any) -> None:
        raise RuntimeError("the lane went away")

    windows.lanes = type("Failing", (), {"send_one": staticmethod(send_one)})()
    # When SQS delivers it as often as it does before the DLQ
    responses = [drain(lanes=("default",))[0] for _ in range(MAX_RECEIVE_COUNT)]
    last_failure = sim.now_ms()
    # Then every delivery but the last failed, and the last was acknowledged: the end is in the wheel
    # again, not in the DLQ, where nothing would ever close the window
    assert [len(r["batchItemFailures"]) for r in responses] == [1] * (MAX_RECEIVE_COUNT - 1) + [0]
    sqs = aws.client("sqs")
    dlq = sqs.get_queue_attributes(
        QueueUrl=aws.settings.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0" and lane_bodies(aws, "default") == []
    # And once the lane is back, the tick sends the end again a minute later and the window closes,
    # starting its task (stored by the first try) once, which runs once
    windows.lanes = real_lanes
    run_tick(aws, sim, last_failure + CLOSE_AGAIN_MS + 1_000)
    drain(rounds=2)
    (task,) = tasks_of(aws, tid)
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.SUCCEEDED
    assert counting.calls == {task.task_id: 1}
    window_id = full(aws, task).payload["window"]["id"]
    assert windows.records.head("acme", tid, window_id).state == "CLOSED"


CLOSE_STEPS = [
    ("records", "seal"),  # sealing the window
    ("records", "events"),  # reading its events
    ("tasks", "create"),  # storing its task
    ("lanes", "send_one"),  # queueing its task
    ("records", "finish"),  # marking it closed
]


@on_sim_clock()
@pytest.mark.parametrize(("part", "call"), CLOSE_STEPS, ids=[c for _, c in CLOSE_STEPS])
def test_a_close_that_dies_after_any_step_starts_its_window_s_task_once(
    aws, sim, api, drain, counting, part, call
):
    # Given a window whose end the tick sent
    tid, end = one_window(api, **ECHO)
    drain(rounds=2)
    tick_only(aws, sim, end + 100)
    # When the worker dies right after one of the close's calls (the record is never acknowledged)
    windows = wiring.platform().triggers.windows
    target = getattr(windows, part)
    real = getattr(target, call)
    died: list[str] = []

    def dies_after(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not died:
            died.append(call)
            raise RuntimeError(f"the worker died after {call}")
        return result

    setattr(target, call, dies_after)
    try:
        (first,) = drain(lanes=("default",))
        assert died == [call] and len(first["batchItemFailures"]) == 1
        # And SQS delivers the window's end again, and the tasks run
        drain(rounds=3)
    finally:
        setattr(target, call, real)
    # Then the window is closed and started one task, which ran once
    (task,) = tasks_of(aws, tid)
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.SUCCEEDED
    assert counting.calls == {task.task_id: 1}
    window_id = full(aws, task).payload["window"]["id"]
    assert windows.records.head("acme", tid, window_id).state == "CLOSED"


def test_the_window_task_obeys_the_target_policy_and_the_worker_checks_again(aws, api, drain):
    from tests.integration.test_entry_policy import ALLOWED, enforce

    # Given acme may call lambda:acme-* and a batch trigger calling acme-orders
    enforce(aws, {"acme": ["lambda:acme-*"]})
    refused = api(
        "POST",
        "/v1/triggers",
        {
            "correlate": {
                "within_ms": 1000,
                "key": "$.detail.user",
                "events": [EXPOSURE, CLICK],
                "on_timeout": {"target": {"type": "lambda", "function": "billing-refund"}},
            },
            "task": {"target": ALLOWED},
        },
    )
    assert (
        refused.status == 400
        and refused.body["error"]["details"][0]["field"] == "correlate.on_timeout.target"
    )
    tid = make_trigger(
        api, batch={"max_events": 2, "window_ms": 60_000, "key": "$.detail.user"}, task={"target": ALLOWED}
    )
    # When the list shrinks after the trigger was accepted and a full batch starts its task
    enforce(aws, {"acme": []})
    publish(api, "u1", n=1)
    publish(api, "u1", n=2)
    drain(rounds=3)
    # Then the worker refused the call and recorded why: no call was made
    (task,) = tasks_of(aws, tid)
    assert task.state is TaskState.FAILED
    assert task.error is not None and "allow-list" in task.error.message, task.error


# -- bad input ------------------------------------------------------------------------------------
BAD = [
    ({"batch": {"max_events": 10, "window_ms": 1000, "key": "$..user"}}, "batch.key"),
    ({"batch": {"max_events": 10, "window_ms": 1000, "key": "detail.user"}}, "batch.key"),
    ({"batch": {"max_events": 10, "window_ms": 1000, "key": "$.detail[*]"}}, "batch.key"),
    ({"batch": {"max_events": 10, "window_ms": 99, "key": "$.a"}}, "batch.window_ms"),
    ({"batch": {"max_events": 10, "window_ms": 86_400_001, "key": "$.a"}}, "batch.window_ms"),
    ({"batch": {"max_events": 0, "window_ms": 1000, "key": "$.a"}}, "batch.max_events"),
    ({"batch": {"max_events": 1001, "window_ms": 1000, "key": "$.a"}}, "batch.max_events"),
    (
        {"batch": {"max_events": 5, "window_ms": 1000, "key": "$.a", "max_bytes": MAX_WINDOW_BYTES + 1}},
        "batch.max_bytes",
    ),
    ({"batch": {"max_events": 5, "window_ms": 1000, "key": "$.a", "extra": 1}}, "batch.extra"),
    (
        {
            "batch": {"max_events": 5, "window_ms": 1000, "key": "$.a"},
            "debounce": {"window_ms": 500, "key": "$.a"},
        },
        "debounce",
    ),
    ({"debounce": {"window_ms": 500, "key": "$.a", "max_wait_ms": 50}}, "debounce.max_wait_ms"),
    ({"correlate": {"within_ms": 1000, "key": "$.a", "events": [EXPOSURE]}}, "correlate.events"),
    (
        {
            "correlate": {
                "within_ms": 1000,
                "key": "$.a",
                "events": [EXPOSURE, {"detail": {"taskplane_tenant": ["x"]}}],
            }
        },
        "correlate",
    ),
    (
        {
            "correlate": {
                "within_ms": 1000,
                "key": "$.a",
                "events": [EXPOSURE, CLICK],
                "on_timeout": {**ECHO, "payload": {"x": 1}},
            }
        },
        "correlate",
    ),
]


@pytest.mark.parametrize(("extra", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_window_settings_are_a_400_naming_the_field(api, extra, field):
    body = {"task": ECHO, **extra}
    if "correlate" not in extra:
        body["event_pattern"] = {"source": ["shop.web"]}
    reply = api("POST", "/v1/triggers", body)
    assert reply.status == 400, reply.body
    fields = [d.get("field") for d in reply.body["error"]["details"]]
    assert field in fields, reply.body
    assert api("GET", "/v1/triggers").body["items"] == []


def test_correlate_takes_its_patterns_and_not_an_event_pattern(api):
    body = {
        "task": ECHO,
        "event_pattern": {"source": ["x"]},
        "correlate": {"within_ms": 1000, "key": "$.a", "events": [EXPOSURE, CLICK]},
    }
    reply = api("POST", "/v1/triggers", body)
    assert reply.status == 400 and reply.body["error"]["details"][0]["field"] == "event_pattern"
    reply = api("POST", "/v1/triggers", {"task": ECHO})
    assert reply.status == 400 and reply.body["error"]["details"][0]["field"] == "event_pattern"
