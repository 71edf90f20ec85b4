"""Schedules under moto with a simulated clock: fires, misfires, overlap, idempotent fires, the API."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from support import Inline

from taskplane.domain.clock import FixedClock
from taskplane.domain.ring import shard_for
from taskplane.domain.schedules import fire_task_id
from taskplane.domain.states import TaskState
from taskplane.domain.wheel import DISPATCH_LEAD_MS, WheelEntry

pytestmark = pytest.mark.integration

START = 1_798_761_600_000  # 2027-01-01T00:00:00Z, a whole minute
ECHO = {"target": {"type": "builtin", "name": "echo"}, "payload": {"hi": 1}}


def simulated_ticker(aws: Any, clock: FixedClock) -> Any:
    """The platform's ticker on a clock that moves when the tick waits (minutes in milliseconds)."""

    def wait(seconds: float) -> bool:
        clock.advance(max(1, int(seconds * 1000)))
        return False

    # (fires and sends in the tick's thread: no simulated time passes while one is on its way)
    return dataclasses.replace(aws.platform.ticker, clock=clock, wait=wait, senders=Inline(), firers=None)


def tick_for(aws: Any, clock: FixedClock, ms: int) -> None:
    """``ms`` of simulated time with the shard's rule invoking the tick once a minute: a tick with
    nothing due soon ends at once, and time moves on to the rule's next invocation."""
    end = clock.now_ms() + ms
    ticker = simulated_ticker(aws, clock)
    while clock.now_ms() < end:
        ticker.run(0, until_ms=end)
        clock.advance(min(60_000, end - clock.now_ms()))


def schedule_tasks(aws: Any, schedule_id: str, tenant: str = "acme") -> list[Any]:
    items = []
    cursor = None
    while True:
        page, cursor = aws.platform.tasks.list(tenant, limit=500, cursor=cursor)
        items += [t for t in page if t.schedule_id == schedule_id]
        if cursor is None:
            return sorted(items, key=lambda t: t.fire_at)


def create(api: Any, **fields: Any) -> dict:
    reply = api("POST", "/v1/schedules", {"cron": "* * * * *", "task": ECHO, **fields})
    assert reply.status == 201, reply.body
    return reply.body


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_every_minute_fires_one_task_per_minute(aws, api):
    clock = aws.platform.tasks.clock
    # Given a schedule created at 00:00:10 that fires every minute
    schedule = create(api)
    assert schedule["next_fire_at"] == "2027-01-01T00:01:00.000Z"
    # When the tick runs for three simulated minutes
    tick_for(aws, clock, 3 * 60_000)
    # Then three tasks were started, at 00:01, 00:02 and 00:03, each linked to the schedule
    tasks = schedule_tasks(aws, schedule["schedule_id"])
    assert [t.fire_at for t in tasks] == [START + 60_000, START + 120_000, START + 180_000]
    # each fired a lead ahead of its time, its task waiting SCHEDULED for that time (the worker holds it)
    assert all(t.state is TaskState.SCHEDULED and t.run_at == t.fire_at for t in tasks)
    assert all(0 < t.fire_at - t.dispatched_at <= DISPATCH_LEAD_MS for t in tasks)
    got = api("GET", f"/v1/schedules/{schedule['schedule_id']}").body
    assert got["fires"] == 3 and got["next_fire_at"] == "2027-01-01T00:04:00.000Z"
    assert got["last_task_id"] == tasks[-1].task_id
    assert aws.queue_depth() == 3


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
@pytest.mark.parametrize(("policy", "expected_fires"), [("fire_once", 1), ("fire_all", 10), ("skip", 0)])
def test_misfire_policies_after_ticks_were_down(aws, api, policy, expected_fires):
    clock = aws.platform.tasks.clock
    # Given a minutely schedule and no tick for ten and a half minutes
    schedule = create(api, misfire=policy)
    clock.advance(10 * 60_000 + 30_000)  # now 00:10:40; fires 00:01 .. 00:10 were missed
    # When a tick finally runs
    tick_for(aws, clock, 5_000)
    # Then the policy decides how many tasks start, and the next fire is in the future
    tasks = schedule_tasks(aws, schedule["schedule_id"])
    got = api("GET", f"/v1/schedules/{schedule['schedule_id']}").body
    assert len(tasks) == expected_fires
    assert got["fires"] == expected_fires
    assert got["skipped"] == 10 - expected_fires
    assert got["next_fire_at"] == "2027-01-01T00:11:00.000Z"
    if policy == "fire_all":
        assert [t.fire_at for t in tasks] == [START + m * 60_000 for m in range(1, 11)]


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_overlap_skip_waits_for_the_previous_task(aws, api, drain):
    clock = aws.platform.tasks.clock
    # Given overlap=skip and a first fire whose task is still PENDING (no worker ran)
    schedule = create(api, overlap="skip")
    tick_for(aws, clock, 65_000)  # fires 00:01
    tick_for(aws, clock, 60_000)  # 00:02 would overlap
    tasks = schedule_tasks(aws, schedule["schedule_id"])
    assert len(tasks) == 1
    assert api("GET", f"/v1/schedules/{schedule['schedule_id']}").body["skipped"] == 1
    # When that task finishes, the next fire runs again
    drain()
    assert schedule_tasks(aws, schedule["schedule_id"])[0].state is TaskState.SUCCEEDED
    tick_for(aws, clock, 60_000)
    assert len(schedule_tasks(aws, schedule["schedule_id"])) == 2


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_a_fire_retried_after_a_crash_creates_no_second_task(aws, api, monkeypatch):
    clock = aws.platform.tasks.clock
    service = aws.platform.schedules
    schedule = create(api)
    sid = schedule["schedule_id"]
    entry = WheelEntry(
        shard=shard_for(sid, 1), due_ms=START + 60_000, item_id=sid, tenant="acme", kind="schedule"
    )
    clock.advance(50_000)
    # Given a fire that crashes after starting its task, before the schedule moves on
    real_update = service.store.update

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("crash before the schedule was advanced")

    monkeypatch.setattr(service.store, "update", crash)
    with pytest.raises(RuntimeError):
        service.fire(entry, clock.now_ms())
    # When the same fire is handled again, twice
    monkeypatch.setattr(service.store, "update", real_update)
    service.fire(entry, clock.now_ms())
    service.fire(entry, clock.now_ms())
    # Then there is one task for that fire time, with the derived id, and the schedule moved on once
    tasks = schedule_tasks(aws, sid)
    assert [t.task_id for t in tasks] == [fire_task_id(sid, START + 60_000)]
    got = api("GET", f"/v1/schedules/{sid}").body
    assert got["fires"] == 1 and got["next_fire_at"] == "2027-01-01T00:02:00.000Z"


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_pause_resume_delete_and_end_at(aws, api):
    clock = aws.platform.tasks.clock
    schedule = create(api, end_at="2027-01-01T00:03:30Z")
    sid = schedule["schedule_id"]
    # Paused: no fires, no next_fire_at shown
    paused = api("POST", f"/v1/schedules/{sid}/pause").body
    assert paused["state"] == "PAUSED" and paused["next_fire_at"] is None
    tick_for(aws, clock, 2 * 60_000)
    assert schedule_tasks(aws, sid) == []
    # Resumed from now (00:02:10): the missed fires are not caught up
    resumed = api("POST", f"/v1/schedules/{sid}/resume").body
    assert resumed["state"] == "ACTIVE" and resumed["next_fire_at"] == "2027-01-01T00:03:00.000Z"
    tick_for(aws, clock, 3 * 60_000)
    # end_at 00:03:30: exactly one more fire, then the schedule has ended
    assert [t.fire_at for t in schedule_tasks(aws, sid)] == [START + 180_000]
    ended = api("GET", f"/v1/schedules/{sid}").body
    assert ended["state"] == "ENDED" and ended["next_fire_at"] is None
    assert api("DELETE", f"/v1/schedules/{sid}").status == 204
    assert api("GET", f"/v1/schedules/{sid}").status == 404
    assert api("DELETE", f"/v1/schedules/{sid}").status == 404


def test_tenants_cannot_see_each_others_schedules(api):
    schedule = create(api)
    sid = schedule["schedule_id"]
    assert api("GET", f"/v1/schedules/{sid}", tenant="other").status == 404
    assert api("POST", f"/v1/schedules/{sid}/pause", tenant="other").status == 404
    assert api("DELETE", f"/v1/schedules/{sid}", tenant="other").status == 404
    assert api("GET", "/v1/schedules", tenant="other").body["items"] == []
    assert [s["schedule_id"] for s in api("GET", "/v1/schedules").body["items"]] == [sid]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * *", "task": ECHO}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Base", "task": ECHO}, "timezone"),
        ({"cron": "* * * * *", "task": {**ECHO, "run_at": "2030-01-01T00:00:00Z"}}, "task"),
        ({"cron": "* * * * *", "task": {**ECHO, "delay_ms": 5}}, "task"),
        ({"cron": "* * * * *", "task": {"target": {"type": "nope"}}}, "task.target"),
        ({"cron": "* * * * *", "task": ECHO, "misfire": "later"}, "misfire"),
        ({"cron": "* * * * *", "task": ECHO, "overlap": "queue"}, "overlap"),
        (
            {
                "cron": "* * * * *",
                "task": ECHO,
                "start_at": "2030-01-02T00:00:00Z",
                "end_at": "2030-01-01T00:00:00Z",
            },
            "body",
        ),
        ({"cron": "0 0 1 1 *", "task": ECHO, "end_at": "2026-01-01T00:00:00Z"}, "end_at"),
        ({"task": ECHO}, "cron"),
    ],
)
def test_bad_schedules_are_400_naming_the_field(api, body, field):
    reply = api("POST", "/v1/schedules", body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "invalid_request"
    assert any(d.get("field", "").startswith(field) for d in reply.body["error"]["details"]), reply.body


@pytest.mark.parametrize(
    ("window", "field"),
    [
        # an offset that takes the instant past what a date can hold in UTC (tasks refuse it too)
        ({"end_at": "9999-12-31T23:59:59-14:00"}, "end_at"),
        ({"start_at": "9999-12-31T23:59:59-14:00"}, "start_at"),
        ({"start_at": "0001-01-01T00:00:00+14:00"}, "start_at"),
        # representable, but the first fire after it is not: a schedule that would never fire
        ({"start_at": "9999-12-31T23:59:59Z"}, "start_at"),
    ],
)
def test_a_window_at_the_edge_of_time_is_400_and_the_list_still_renders(api, window, field):
    # Given a schedule whose start_at or end_at sits at the edge of what a date can hold
    # When it is created
    reply = api("POST", "/v1/schedules", {"cron": "* * * * *", "task": ECHO, **window})
    # Then it is a 400 naming the field (not a 5xx), and nothing stored breaks the list
    assert reply.status == 400, reply.body
    assert [d.get("field") for d in reply.body["error"]["details"]] == [field], reply.body
    listed = api("GET", "/v1/schedules")
    assert listed.status == 200 and listed.body["items"] == [], listed.body


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("0 0 L * *", "L (last day) is not supported"),
        ("0 0 * * 1#1", "# (nth weekday of the month) is not supported"),
    ],
)
def test_a_cron_that_cannot_fire_or_is_not_vixie_is_400_naming_the_expression(api, cron, words):
    # Given a well-formed cron that no date matches, or one with another cron's extension
    # When a schedule is created with it
    reply = api("POST", "/v1/schedules", {"cron": cron, "task": ECHO})
    # Then it is a 400 on the cron field whose message names the expression and the problem (not a 502)
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert [d["field"] for d in error["details"]] == ["cron"]
    assert repr(cron) in error["message"] and words in error["message"], error


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_a_stored_schedule_whose_cron_matches_no_date_any_more_ends_after_its_fire(aws, api):
    clock = aws.platform.tasks.clock
    service = aws.platform.schedules
    # Given a schedule stored with an expression no date matches under Vixie's rule (one made when
    # croniter's OR read "31 2 */2" as February's even weekdays)
    sid = create(api)["schedule_id"]
    stored = service.store.get("acme", sid)
    assert stored is not None
    service.store.update(
        stored.model_copy(update={"cron": "0 0 31 2 */2"}), expected_next=stored.next_fire_at
    )
    entry = WheelEntry(
        shard=shard_for(sid, 1), due_ms=START + 60_000, item_id=sid, tenant="acme", kind="schedule"
    )
    clock.advance(50_000)
    # When its due fire is handled by the tick
    service.fire(entry, clock.now_ms())
    # Then that fire's task started and the schedule ended instead of failing every tick
    assert [t.task_id for t in schedule_tasks(aws, sid)] == [fire_task_id(sid, START + 60_000)]
    got = api("GET", f"/v1/schedules/{sid}").body
    assert (got["state"], got["next_fire_at"], got["fires"]) == ("ENDED", None, 1)


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 59_500)}], indirect=True)
def test_a_schedule_due_before_the_next_check_wakes_an_idle_tick(aws, api):
    # Given no tick holding the shard, and a record of wakes
    woken: list[int] = []
    aws.platform.wakes.wake = woken.append
    # When, at 00:00:59.5, a schedule is created whose first fire is an hour away (the rule's checks
    # find it in time), then one whose first fire is 00:01:00 (before the next check could see it)
    create(api, cron="0 * * * *")
    assert woken == []
    create(api)
    # Then only the second woke the tick
    assert woken == [0]


def test_a_retried_create_with_its_idempotency_key_makes_one_schedule(aws, api):
    # Given a client that creates a schedule, times out and sends the same request again
    body = {"cron": "*/5 * * * *", "task": ECHO}
    first = api("POST", "/v1/schedules", body, headers={"Idempotency-Key": "sched-1"})
    again = api("POST", "/v1/schedules", body, headers={"Idempotency-Key": "sched-1"})
    # Then one schedule exists (not two firing every time), the retry answered 200 with it
    assert first.status == 201 and again.status == 200, (first.body, again.body)
    assert again.body["schedule_id"] == first.body["schedule_id"]
    assert [s["schedule_id"] for s in api("GET", "/v1/schedules").body["items"]] == [
        first.body["schedule_id"]
    ]
    # And the same key with another body is a 409; another tenant's same key is its own
    other = {"cron": "0 * * * *", "task": ECHO}
    assert api("POST", "/v1/schedules", other, headers={"Idempotency-Key": "sched-1"}).status == 409
    assert (
        api("POST", "/v1/schedules", other, headers={"Idempotency-Key": "sched-1"}, tenant="globex").status
        == 201
    )


def fire_entry(sid: str, due_ms: int) -> WheelEntry:
    return WheelEntry(shard=shard_for(sid, 1), due_ms=due_ms, item_id=sid, tenant="acme", kind="schedule")


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_a_fire_leaves_ahead_and_its_task_starts_at_the_fire_time_never_before(aws, api, drain):
    clock = aws.platform.tasks.clock
    sid = create(api)["schedule_id"]
    fire_at = START + 60_000
    # Given the tick firing the 00:01 fire its lead ahead of time
    clock.advance(fire_at - DISPATCH_LEAD_MS - clock.now_ms())
    aws.platform.schedules.fire(fire_entry(sid, fire_at), clock.now_ms())
    [task] = schedule_tasks(aws, sid)
    assert task.state is TaskState.SCHEDULED and task.run_at == fire_at
    # When the worker takes its delivery at once (its hold moves this test's clock)
    drain()
    # Then it held the delivery for the lead and started the task at the fire time, not before
    done = aws.platform.tasks.get("acme", task.task_id)
    assert done.state is TaskState.SUCCEEDED, done.history
    assert done.started_at == fire_at


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
@pytest.mark.parametrize("action", ["pause", "delete"])
def test_a_pause_or_delete_after_a_fire_left_ahead_cancels_its_task(aws, api, drain, action):
    clock = aws.platform.tasks.clock
    sid = create(api)["schedule_id"]
    fire_at = START + 60_000
    # Given a fire that left ahead of its time: its task waits for 00:01
    clock.advance(fire_at - DISPATCH_LEAD_MS - clock.now_ms())
    aws.platform.schedules.fire(fire_entry(sid, fire_at), clock.now_ms())
    # When the schedule is paused (or deleted) before 00:01
    clock.advance(100)
    if action == "pause":
        assert api("POST", f"/v1/schedules/{sid}/pause").status == 200
    else:
        assert api("DELETE", f"/v1/schedules/{sid}").status == 204
    # Then that fire's task is cancelled, saying why, and the worker drops its delivery
    [task] = schedule_tasks(aws, sid)
    assert task.state is TaskState.CANCELLED
    word = "paused" if action == "pause" else "deleted"
    assert task.history[-1].detail == f"schedule {sid} was {word} before this fire's time"
    clock.advance(fire_at + 10 - clock.now_ms())
    drain()
    assert aws.platform.tasks.get("acme", task.task_id).state is TaskState.CANCELLED


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 10_000)}], indirect=True)
def test_a_fire_that_races_a_pause_keeps_the_pause_and_cancels_its_task(aws, api, monkeypatch):
    clock = aws.platform.tasks.clock
    service = aws.platform.schedules
    sid = create(api)["schedule_id"]
    fire_at = START + 60_000
    clock.advance(fire_at - DISPATCH_LEAD_MS - clock.now_ms())
    # Given a pause that lands while a fire is on its way (after it read the schedule and queued its
    # task, before it moved the schedule on)
    send = service.lanes.send_one

    def send_then_pause(message: Any) -> Any:
        sent = send(message)
        assert api("POST", f"/v1/schedules/{sid}/pause").status == 200
        return sent

    monkeypatch.setattr(service.lanes, "send_one", send_then_pause)
    # When the fire finishes
    service.fire(fire_entry(sid, fire_at), clock.now_ms())
    # Then the schedule stays paused (the fire's write did not undo the pause) and the task is cancelled
    got = api("GET", f"/v1/schedules/{sid}").body
    assert got["state"] == "PAUSED" and got["fires"] == 0
    [task] = schedule_tasks(aws, sid)
    assert task.state is TaskState.CANCELLED


@pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock(START + 59_000)}], indirect=True)
def test_a_schedule_created_just_before_its_first_fire_fires_at_once_not_a_read_late(aws, api):
    # Given a minutely schedule created a second before 00:01, less than NEAR_MS before its first fire
    sid = create(api)["schedule_id"]
    # Then it fired on creation, ahead of its time (no tick had to read it), and moved on to 00:02
    [task] = schedule_tasks(aws, sid)
    assert task.state is TaskState.SCHEDULED and task.run_at == START + 60_000
    got = api("GET", f"/v1/schedules/{sid}").body
    assert got["fires"] == 1 and got["next_fire_at"] == "2027-01-01T00:02:00.000Z"
    # And the tick finding the entry later does not fire it twice
    tick_for(aws, aws.platform.tasks.clock, 5_000)
    assert len(schedule_tasks(aws, sid)) == 1
