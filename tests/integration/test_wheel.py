"""The timing wheel under moto: on-time dispatch, resume, leases, crash injection and clock skew.

Most tests run the tick on a simulated clock: its injected ``wait(seconds)`` moves the clock forward
by that much at once, so minutes of tick time pass in milliseconds and every dispatch time is exact.
The same clock drives the API and the worker (the ``aws`` fixture's ``clock``), unless a test gives
one of them its own skewed clock.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any

import pytest

from taskplane.adapters.queues import LaneMessage, Lanes, parse_body
from taskplane.adapters.task_store import TaskStore
from taskplane.adapters.wheel_store import WheelStore
from taskplane.domain.clock import FixedClock
from taskplane.domain.errors import Unavailable
from taskplane.domain.models import TaskSubmit, new_task
from taskplane.domain.states import TaskState
from taskplane.domain.wheel import (
    DISPATCH_LEAD_MS,
    GROUP_MS,
    LOOKAHEAD_MS,
    LOOKBACK_EVERY_MS,
    LOOKBACK_MS,
    NEAR_MS,
    POLL_MS,
    SLOT_MS,
    WheelEntry,
    due_of,
    slot_of,
    sort_key,
)
from taskplane.local.resources import create_resources
from taskplane.services.execute import INLINE_RETRY_MS, Outcome
from taskplane.services.tasks import wheel_entry_for
from taskplane.services.tick import (
    HANDOVER_MS,
    HANDOVER_SEND_AHEAD_MS,
    MAX_SEND_BEFORE_READ_MS,
    RECHECK_MS,
    Ticker,
    TickReport,
)

pytestmark = pytest.mark.integration

S = TaskState
#: 1.5 s before a slot boundary, so the first seconds of every test cross one.
START = 1_767_225_600_000 + SLOT_MS - 1_500
ECHO = {"type": "builtin", "name": "echo"}
#: How far after its send time (its due time less the lead) a dispatch may leave in simulated time
#: (waits are exact there).
ON_TIME_MS = 10
#: A task's entry leaves DISPATCH_LEAD_MS before it is due (the worker waits out the rest), or up to
#: GROUP_MS earlier still, in the batch of an entry due before it.
LEAD = DISPATCH_LEAD_MS


def sent_on_time(due: int, at: int) -> bool:
    """Whether an entry due at ``due`` left on time: a lead ahead, or with an earlier entry's batch."""
    return due - LEAD - GROUP_MS <= at <= due - LEAD + ON_TIME_MS


# -- simulated time ---------------------------------------------------------------------------------
class Crash(BaseException):
    """The tick's process died (a BaseException, so no ``except Exception`` in the code swallows it)."""


class SimSenders(ThreadPoolExecutor):
    """The tick's sender pool on simulated time: batches still go out concurrently, but take no
    simulated time (the clock waits for them before it moves on)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="sim-sender")
        self._pending: list[Future[Any]] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._pending.append(future)
        return future

    def settle(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        wait_all(pending)
        for future in pending:
            if isinstance(future.exception(), Crash):
                raise future.exception()  # the process died while this batch was being sent

    def abandon(self) -> None:
        """Forget the batches of a process that died (they ended with it)."""
        with self._lock:
            pending, self._pending = self._pending, []
        wait_all(pending)


class SimClock(FixedClock):
    """A clock that moves only when someone waits on it; things can be scheduled at given instants.

    ``wait(seconds)`` is the tick's injected wait: it runs what is scheduled in that span at its
    instant (the clock set to it, as if it happened concurrently), then leaves the clock at the end
    of the span and returns False (never asks the tick to stop). ``on_step`` hooks run once the tick's
    batches in flight are sent, before anything scheduled, and after each scheduled action (what an
    action sends is taken at its instant); ``after_wait`` hooks at the end.
    """

    def __init__(self, now_ms: int = START) -> None:
        super().__init__(now_ms)
        self._lock = threading.Lock()
        self.senders = SimSenders()
        self.reset(now_ms)

    def reset(self, now_ms: int) -> None:
        self._now = now_ms
        self._actions: list[tuple[int, int, Callable[[], Any]]] = []
        self._seq = itertools.count()
        self.on_step: list[Callable[[], Any]] = []
        self.after_wait: list[Callable[[], Any]] = []
        self.waits = 0

    def set(self, now_ms: int) -> None:
        self._now = now_ms

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms

    def at(self, when_ms: int, action: Callable[[], Any]) -> None:
        heapq.heappush(self._actions, (when_ms, next(self._seq), action))

    def wait(self, seconds: float) -> bool:
        self.waits += 1
        assert self.waits < 1_000_000, "the tick is spinning"
        self.senders.settle()
        for hook in self.on_step:
            hook()
        end = self._now + round(seconds * 1000)
        while self._actions and self._actions[0][0] <= end:
            when, _, action = heapq.heappop(self._actions)
            self._now = max(self._now, when)
            action()
            end = max(end, self._now)  # an action may move the clock (a stalled process)
            for hook in self.on_step:
                hook()
        self._now = max(self._now, end)
        for hook in self.after_wait:
            hook()
        return False


class OffsetClock:
    """Another machine's clock: ``base`` shifted by ``offset_ms``."""

    def __init__(self, base: FixedClock, offset_ms: int) -> None:
        self.base, self.offset_ms = base, offset_ms

    def now_ms(self) -> int:
        return self.base.now_ms() + self.offset_ms


def on_sim_clock() -> Any:
    """Parametrize ``aws`` with a fresh simulated clock for the API and the worker."""
    return pytest.mark.parametrize("aws", [{"clock": SimClock()}], indirect=True, ids=["sim"])


@pytest.fixture
def sim(aws: Any) -> SimClock:
    clock = aws.platform.tasks.clock
    assert isinstance(clock, SimClock), "parametrize the test with @on_sim_clock()"
    clock.reset(START)
    return clock


# -- recording and counting ---------------------------------------------------------------------------
class RecordingLanes:
    """Lanes that note every message that was accepted, with the sender's clock reading."""

    def __init__(self, inner: Lanes, clock: Any) -> None:
        self.inner, self.clock = inner, clock
        self.sent: list[tuple[int, LaneMessage]] = []
        self._lock = threading.Lock()

    def send(self, messages: list[LaneMessage]) -> list[Exception | None]:
        outcomes = self.inner.send(messages)
        now = self.clock.now_ms()
        with self._lock:
            self.sent.extend((now, m) for m, err in zip(messages, outcomes, strict=True) if err is None)
        return outcomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def per_task(self) -> Counter[str]:
        return Counter(m.task_id for _, m in self.sent)


class CountingRunners:
    """Wraps the real runners and counts how many times each task's target actually ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        with self.lock:
            self.calls[envelope["task_id"]] += 1
        return self.inner.run(target, envelope, timeout_s, cancel)


@pytest.fixture
def counting(aws: Any) -> CountingRunners:
    runners = CountingRunners(aws.platform.executor.runners)
    aws.platform.executor.runners = runners
    return runners


# -- helpers ------------------------------------------------------------------------------------------
def ticker_on(aws: Any, clock: SimClock, **changes: Any) -> Any:
    """The platform's ticker on the simulated clock (its wheel and lanes unless replaced)."""
    return dataclasses.replace(
        aws.platform.ticker, clock=clock, wait=clock.wait, senders=clock.senders, **changes
    )


def submit(tasks: Any, delay_ms: int, priority: str = "default", **body: Any) -> Any:
    task, _ = tasks.submit(
        "acme",
        TaskSubmit.model_validate({"target": ECHO, "delay_ms": delay_ms, "priority": priority, **body}),
    )
    return task


def lane_depth(sqs: Any, urls: dict[str, str]) -> int:
    """Messages on the lanes, delayed ones included."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    total = 0
    for url in urls.values():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        total += sum(int(attrs.get(n, 0)) for n in names)
    return total


def work(
    sqs: Any, urls: dict[str, str], executor: Any, rounds: int = 50, until_empty: bool = True
) -> list[Outcome]:
    """Feed what is visible on the lanes to ``executor`` (one worker) until they are empty
    (or for ``rounds`` receives per lane at most, when ``until_empty`` is False)."""
    outcomes: list[Outcome] = []
    for _ in range(rounds):
        got = 0
        for url in urls.values():
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            for m in messages:
                outcomes.append(executor.handle(parse_body(m["Body"])))
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                    ],
                )
            got += len(messages)
        if not got:
            return outcomes
    assert not until_empty, "the lanes never emptied"
    return outcomes


def states(task: Any) -> list[TaskState]:
    return [h.state for h in task.history]


def assert_ran_once(tasks: Any, ids: list[str], counting: CountingRunners, context: str = "") -> list[Any]:
    done = [tasks.get("acme", i) for i in ids]
    stuck = {t.task_id: t.state.value for t in done if t.state is not S.SUCCEEDED}
    assert not stuck, f"{context}: not SUCCEEDED: {stuck}"
    assert dict(counting.calls) == dict.fromkeys(ids, 1), f"{context}: target runs {dict(counting.calls)}"
    assert all(t.attempts == 1 for t in done), context
    for t in done:
        assert t.dispatched_at is not None, context
        # (a lead ahead, a batch's group, and at a hand-over up to a second more)
        ahead = LEAD + GROUP_MS + HANDOVER_SEND_AHEAD_MS
        assert t.dispatched_at >= t.run_at - ahead, f"{context}: dispatched too early"
        assert t.started_at >= t.run_at, f"{context}: started early"
    return done


# -- delayed tasks ------------------------------------------------------------------------------------
@on_sim_clock()
def test_delayed_tasks_are_dispatched_on_time_in_due_order(aws, sim, api, drain, counting):
    # Given tasks submitted over the API due from just past NEAR_MS to 3 minutes ahead, across slot
    # boundaries
    offsets = [180_000, NEAR_MS + 1, 1_499, 1_500, 1_501, NEAR_MS + 50, 5_000, 59_999, 61_500, 61_501]
    offsets += [120_000, NEAR_MS + 99]
    ids = {}
    for delay in offsets:
        reply = api("POST", "/v1/tasks", {"target": ECHO, "delay_ms": delay})
        assert reply.status == 201 and reply.body["state"] == "SCHEDULED", reply.body
        ids[reply.body["task_id"]] = START + delay
    assert lane_depth(aws.client("sqs"), aws.settings.queue_urls) == 0  # they wait in the wheel
    # When a tick runs for a little over 3 simulated minutes
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 181_000, owner="tick-1")
    # Then each was sent once, in due order, its lead ahead of its run_at (or with the batch of one
    # due up to GROUP_MS before it), carrying its due time for the worker to wait for
    assert report.acquired and not report.lost_lease and report.dispatched == len(offsets)
    assert lanes.per_task() == dict.fromkeys(ids, 1)
    sent_order = [m.task_id for _, m in lanes.sent]
    assert sent_order == sorted(ids, key=ids.get)
    for at, message in lanes.sent:
        due = ids[message.task_id]
        assert sent_on_time(due, at), (message.task_id, at - due)
        assert message.state == "SCHEDULED" and message.dispatched_at == at and message.late_ms == 0
        assert message.due_ms == due
    # (1,499, 1,500 and 1,501 ms left in one batch, with the first entry of their group: each group
    # starts at the earliest entry not in the one before and takes what is due within GROUP_MS of it)
    starts: list[int] = []
    for offset in sorted(offsets):
        if not starts or offset > starts[-1] + GROUP_MS:
            starts.append(offset)
    first = max(s for s in starts if s <= 1_499)
    grouped = {at for at, m in lanes.sent if ids[m.task_id] - START in (1_499, 1_500, 1_501)}
    assert grouped == {START + first - LEAD}
    # And after the worker ran them they SUCCEEDED, dispatched and started no earlier than run_at
    drain(rounds=3)
    done = assert_ran_once(aws.platform.tasks, list(ids), counting)
    sent_at = {m.task_id: at for at, m in lanes.sent}
    for task in done:
        assert task.run_at == ids[task.task_id]
        assert task.dispatched_at == sent_at[task.task_id]  # carried by the lane message
        assert states(task) == [S.SCHEDULED, S.PENDING, S.RUNNING, S.SUCCEEDED]
    shown = api("GET", f"/v1/tasks/{done[0].task_id}").body
    assert shown["dispatched_at"] is not None and shown["started_at"] >= shown["run_at"]


@on_sim_clock()
def test_a_read_goes_back_for_late_writes_only_every_lookback_every_ms(aws, sim):
    # Given a running tick (work due later) whose window reads are recorded: (when, from due, upto due)
    submit(aws.platform.tasks, 30_000)
    wheel = aws.platform.ticker.wheel
    reads: list[tuple[int, int, int]] = []

    class WatchedWheel:
        def __getattr__(self, name: str) -> Any:
            return getattr(wheel, name)

        def load(self, shard: int, slot: int, from_sk: str, upto: str | None, skip: Any = ()) -> Any:
            first = due_of(from_sk) if from_sk else slot
            reads.append((sim.now_ms(), first, due_of(upto) if upto else slot + SLOT_MS))
            return wheel.load(shard, slot, from_sk, upto, skip)

    # When it runs for 6 s
    ticker_on(aws, sim, wheel=WatchedWheel()).run(0, until_ms=START + 6_000)
    # Then it read every POLL_MS, each read up to LOOKAHEAD_MS ahead (further in its last second)
    polls = sorted({at for at, _, _ in reads})
    assert len(polls) >= 6_000 // POLL_MS - 2
    for at in polls:
        reach = max(upto for t, _, upto in reads if t == at) - at
        assert reach == LOOKAHEAD_MS + (
            HANDOVER_SEND_AHEAD_MS if START + 6_000 - at <= HANDOVER_SEND_AHEAD_MS + LOOKAHEAD_MS else 0
        )
    # And only a read every LOOKBACK_EVERY_MS started LOOKBACK_MS behind now; the others at now
    behind = [at for at in polls if min(f for t, f, _ in reads if t == at) < at]
    assert all(min(f for t, f, _ in reads if t == at) == at for at in polls if at not in behind)
    assert all(min(f for t, f, _ in reads if t == at) <= at - LOOKBACK_MS for at in behind)
    assert len(behind) <= 6_000 // LOOKBACK_EVERY_MS + 1 and len(behind) <= len(polls) // 2 + 1
    assert all(b - a >= LOOKBACK_EVERY_MS for a, b in itertools.pairwise(behind))


@on_sim_clock()
def test_task_submitted_into_the_loaded_window_fires_on_time(aws, sim, drain, counting):
    # Given a running tick (it has work due later), which reads the wheel every 100 ms, LOOKAHEAD_MS ahead
    submit(aws.platform.tasks, 30_000)
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    loads: list[int] = []
    wheel = aws.platform.ticker.wheel

    class WatchedWheel:
        def __getattr__(self, name: str) -> Any:
            return getattr(wheel, name)

        def load(self, *args: Any) -> Any:
            loads.append(sim.now_ms())
            return wheel.load(*args)

    submitted: dict[str, int] = {}

    def submit_now(delay: int) -> Callable[[], None]:
        def action() -> None:
            # the tick has already read the range this task falls in
            assert loads and loads[-1] + LOOKAHEAD_MS >= sim.now_ms() + delay
            submitted[submit(aws.platform.tasks, delay).task_id] = sim.now_ms() + delay

        return action

    # When tasks are submitted while it runs, into the window it already loaded
    sim.at(START + 5_430, submit_now(NEAR_MS + 1))  # between two reads, must leave 201 ms later
    sim.at(START + 5_401, submit_now(NEAR_MS + 99))  # must leave 1 ms after the read after next
    sim.at(START + 7_777, submit_now(LOOKAHEAD_MS - POLL_MS))
    report = ticker_on(aws, sim, lanes=lanes, wheel=WatchedWheel()).run(0, until_ms=START + 10_000)
    # Then each still left on time (its lead ahead of its due time)
    assert report.dispatched == 3 and len(submitted) == 3
    for at, message in lanes.sent:
        if message.task_id not in submitted:
            continue
        assert sent_on_time(submitted[message.task_id], at), (at - submitted[message.task_id], message)
    drain(rounds=2)
    assert_ran_once(aws.platform.tasks, list(submitted), counting)


@on_sim_clock()
def test_a_busy_window_read_keys_first_sends_each_task_once_on_time(aws, sim, drain, counting):
    # Given 150 tasks in their own wheel items due over 3 s, and 40 more submitted while the tick runs,
    # each into the window it has already read (so many items taken that the store reads sort keys
    # first, then only the spans of new items, see WheelStore.load)
    soonest = NEAR_MS + 1
    due = {submit(aws.platform.tasks, soonest + 20 * i).task_id: START + soonest + 20 * i for i in range(150)}
    late: dict[str, int] = {}

    def submit_late(delay: int) -> Callable[[], None]:
        def action() -> None:
            late[submit(aws.platform.tasks, delay).task_id] = sim.now_ms() + delay

        return action

    for i in range(40):
        sim.at(START + 1_200 + 37 * i, submit_late(NEAR_MS + 1 + 23 * i))
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    wheel = aws.platform.ticker.wheel
    query = wheel.client.query
    projections: Counter[str | None] = Counter()

    def recording(**kwargs: Any) -> Any:
        projections[kwargs.get("ProjectionExpression")] += 1
        return query(**kwargs)

    wheel.client.query = recording
    try:
        report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 8_000, owner="tick-1")
    finally:
        wheel.client.query = query
    # Then the store read keys first, and every task left once, on time
    assert projections["#sk"] > 10, projections
    expected = {**due, **late}
    assert len(late) == 40 and report.dispatched == len(expected)
    assert lanes.per_task() == dict.fromkeys(expected, 1)
    for at, message in lanes.sent:
        assert sent_on_time(expected[message.task_id], at), (at - expected[message.task_id], message)
    drain(rounds=30)
    assert_ran_once(aws.platform.tasks, list(expected), counting)


# -- resume ---------------------------------------------------------------------------------------
@on_sim_clock()
def test_next_tick_resumes_where_the_last_one_stopped(aws, sim, drain, counting):
    # Given 30 tasks due every 600 ms over 18 s
    soonest = NEAR_MS + 1
    due = {
        submit(aws.platform.tasks, soonest + 600 * i).task_id: START + soonest + 600 * i for i in range(30)
    }
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    # When one tick runs the first 8 s and a new owner takes the next 12 s
    first = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 8_000, owner="a")
    handover = sim.now_ms()
    sent_by_first = len(lanes.sent)
    second = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 20_000, owner="b")
    # Then both held the lease in turn and every task was sent
    assert first.acquired and second.acquired and not first.lost_lease and not second.lost_lease
    assert handover == START + 8_000
    counts = lanes.per_task()
    assert set(counts) == set(due), "missed tasks"
    # And only tasks the first had sent that are due in the look-back behind the handover, or due
    # soon after it (sent a lead ahead, and in its last second what leaves during the hand-over),
    # were sent twice, none more often
    twice = {t for t, n in counts.items() if n > 1}
    assert max(counts.values()) <= 2
    soon = handover + HANDOVER_SEND_AHEAD_MS + LEAD + GROUP_MS
    assert all(handover - LOOKBACK_MS <= due[t] < soon for t in twice), sorted(
        due[t] - handover for t in twice
    )
    # And the second tick sent the ones the first had not sent on time
    by_first = {m.task_id for _, m in lanes.sent[:sent_by_first]}
    for at, message in lanes.sent[sent_by_first:]:
        if message.task_id not in by_first:
            assert sent_on_time(due[message.task_id], at)
    assert all(due[t] - LEAD < handover + HANDOVER_SEND_AHEAD_MS + GROUP_MS for t in by_first)
    # And each attempt ran once however many copies arrived
    drain(rounds=30)
    assert_ran_once(aws.platform.tasks, list(due), counting)
    assert lane_depth(aws.client("sqs"), aws.settings.queue_urls) == 0


@on_sim_clock()
def test_late_tick_dispatches_overdue_work_at_once_flagged_late(aws, sim, drain, counting):
    # Given tasks due over the next 5 minutes, and a tick that ran only the first 1.5 s
    offsets = [NEAR_MS + 1, 3_000, 30_000, 90_000, 200_000, 299_000, 305_000]
    due = {submit(aws.platform.tasks, d).task_id: START + d for d in offsets}
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 1_500, owner="a")
    assert len(lanes.sent) == 1
    # When ticks are down for 5 simulated minutes and then one runs again
    sim.set(START + 301_000)
    report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 310_000, owner="b")
    # Then all overdue work left at once, flagged late by how late it was (the first task, sent
    # again from the look-back behind where the first tick stopped, too)
    restart = START + 301_000
    assert report.acquired and report.dispatched == len(offsets)
    late = [(at, m) for at, m in lanes.sent[1:] if due[m.task_id] < restart]
    assert len(late) == report.late == 6
    for at, message in late:
        assert at == restart
        assert message.late_ms == at - (due[message.task_id] - LEAD) > 1_000
        assert message.dispatched_at == at
    again = [m.task_id for _, m in late if lanes.per_task()[m.task_id] > 1]
    assert [due[t] for t in again] == [START + NEAR_MS + 1]  # within LOOKBACK_MS of the first tick's stop
    # And the one due after the restart left on time, not flagged
    ((at, on_time),) = [(at, m) for at, m in lanes.sent if due[m.task_id] > restart]
    assert at == START + 305_000 - LEAD and on_time.late_ms == 0
    # And the late ones ran once, their history saying how late they left
    drain(rounds=3)
    done = assert_ran_once(aws.platform.tasks, list(due), counting)
    flagged = {t.task_id for t in done if any("ms late" in (h.detail or "") for h in t.history)}
    # (The task sent twice, on time and then late, is flagged by whichever copy started it: a batch's
    # records run at the same time, so that is a race; the five sent only late are always flagged.)
    sent_late_only = {m.task_id for _, m in late} - set(again)
    assert len(sent_late_only) == 5 and flagged - set(again) == sent_late_only


@on_sim_clock()
def test_a_batch_the_queue_refuses_is_sent_again(aws, sim, drain, counting):
    # Given SQS refusing the tick's first batch (throttled)
    refused: list[LaneMessage] = []

    class RefusingOnce(RecordingLanes):
        def send(self, messages: list[LaneMessage]) -> list[Exception | None]:
            if not refused:
                refused.extend(messages)
                return [Unavailable("throttled")] * len(messages)
            return super().send(messages)

    task = submit(aws.platform.tasks, 2_000)
    lanes = RefusingOnce(aws.platform.ticker.lanes, sim)
    # When the tick dispatches it
    report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 4_000)
    # Then it is sent again shortly after, once
    assert [m.task_id for m in refused] == [task.task_id]
    assert report.send_failures == 1 and report.dispatched == 1
    ((at, message),) = lanes.sent
    sends = task.run_at - LEAD
    assert sends <= at <= sends + RECHECK_MS + ON_TIME_MS and message.task_id == task.task_id
    drain()
    assert_ran_once(aws.platform.tasks, [task.task_id], counting)


@on_sim_clock()
def test_entry_dispatched_before_its_slow_task_write_still_runs(aws, sim, drain, counting):
    # Given a submission whose wheel entry is written at once but whose task write lands 200 ms later
    tasks = aws.platform.tasks
    body = TaskSubmit.model_validate({"target": ECHO, "delay_ms": 150})
    task = new_task(body, task_id=tasks.make_id(START), tenant="acme", now_ms=START)
    tasks.wheel.put(wheel_entry_for(task, tasks.shards))

    def worker_then_slow_write() -> None:
        drain()  # the worker handles the delivery before the task exists
        tasks.store.create(task)

    # When the tick dispatches it on time, the worker sees it, and then the write lands
    sim.at(START + 200, worker_then_slow_write)
    ticker_on(aws, sim).run(0, until_ms=START + 5_000)
    ticker_on(aws, sim).run(0, until_ms=START + 8_000)
    # Then the worker looked again a second later (a real second: SQS's delay), and the task ran
    # (waited for as long as a loaded machine needs: the loop ends as soon as it has run)
    deadline = time.monotonic() + 60
    while tasks.get("acme", task.task_id).state is not S.SUCCEEDED and time.monotonic() < deadline:
        drain()
        time.sleep(0.2)
    assert tasks.get("acme", task.task_id).state is S.SUCCEEDED


# -- lease ----------------------------------------------------------------------------------------
@on_sim_clock()
def test_lease_is_exclusive_until_it_expires(aws, sim):
    wheel: WheelStore = aws.platform.ticker.wheel
    # Given owner a holds shard 0's lease for 15 s
    now = sim.now_ms()
    lease = wheel.acquire(0, "a", now, 15_000)
    assert lease is not None and lease.owner == "a" and lease.until_ms == now + 15_000
    # Then b cannot take it while it lasts, even at its last millisecond, and a can renew it
    assert wheel.acquire(0, "b", now + 1, 15_000) is None
    assert wheel.acquire(0, "b", now + 15_000, 15_000) is None
    assert wheel.save(0, "a", now + 1_000, 15_000, (slot_of(now), "")) is True
    assert wheel.acquire(0, "b", now + 15_001, 15_000) is None  # renewed to now + 16 s
    # And once it has expired b takes it, and a's save then fails
    taken = wheel.acquire(0, "b", now + 16_001, 15_000)
    assert taken is not None and taken.owner == "b"
    assert taken.resume_slot == slot_of(now)  # the cursor survives the change of owner
    assert wheel.save(0, "a", now + 16_002, 15_000, (slot_of(now), "")) is False
    # And a's release does not free b's lease
    wheel.release(0, "a")
    assert wheel.peek(0).owner == "b" and wheel.peek(0).until_ms == now + 31_001
    # And other shards are independent
    assert wheel.acquire(1, "a", now + 16_002, 15_000) is not None


@on_sim_clock()
def test_a_tick_that_loses_its_lease_stops(aws, sim):
    wheel: WheelStore = aws.platform.ticker.wheel
    submit(aws.platform.tasks, 30_000)
    stolen = {}

    def stall_then_steal() -> None:
        # the tick's process freezes past its lease, and another tick takes the shard over
        sim.advance(15_000 + 1_000)
        stolen["lease"] = wheel.acquire(0, "thief", sim.now_ms(), 15_000)

    # Given a tick that stalls for longer than its lease 3 s into its run
    sim.at(START + 3_050, stall_then_steal)
    # When it wakes up
    report = ticker_on(aws, sim).run(0, until_ms=START + 60_000, owner="victim")
    # Then the thief had the lease, and the victim noticed at its next save and stopped at once
    assert stolen["lease"] is not None
    assert report.acquired and report.lost_lease and report.lease_regained == 0
    assert sim.now_ms() < START + 3_050 + 16_000 + 1_100
    holder = wheel.peek(0)
    assert holder.owner == "thief" and holder.until_ms > sim.now_ms()


@on_sim_clock()
def test_a_tick_that_stalled_past_its_lease_sends_nothing_before_it_knows_the_shard_is_its_own(aws, sim):
    wheel: WheelStore = aws.platform.ticker.wheel
    # Given tasks due during and after a stall of 16 s (longer than the lease) 3 s into the run
    ids = [submit(aws.platform.tasks, delay).task_id for delay in (5_000, 12_000, 20_000, 25_000)]

    def stall_then_steal() -> None:
        sim.advance(15_000 + 1_000)
        assert wheel.acquire(0, "thief", sim.now_ms(), 15_000) is not None

    sim.at(START + 3_050, stall_then_steal)
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    # When the victim wakes with three of them overdue
    report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 60_000, owner="victim")
    # Then it sent none of them: the thief, which resumes from the victim's last save, sends them
    assert report.lost_lease and lanes.sent == []
    assert wheel.peek(0).owner == "thief"
    assert wheel.peek(0).resume_slot is not None and len(ids) == 4


@on_sim_clock()
def test_a_tick_whose_lease_ran_out_with_no_other_tick_takes_it_back_and_sends_nothing_twice(
    aws, sim, drain, counting
):
    wheel: WheelStore = aws.platform.ticker.wheel
    # Given tasks due before, during and after a 16 s stall (the lease lasts 15 s) of the tick
    ids = [
        submit(aws.platform.tasks, delay).task_id for delay in (1_500, 2_500, 8_000, 12_000, 22_000, 30_000)
    ]
    sim.at(START + 3_050, lambda: sim.advance(15_000 + 1_000))
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    # When no other tick takes the shard meanwhile
    report = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 40_000, owner="slow")
    # Then the tick took its lease back, went on, and saved past what it sent: each task left once
    assert report.acquired and not report.lost_lease and report.lease_regained == 1
    sent = [m.task_id for _, m in lanes.sent]
    assert sorted(sent) == sorted(ids)
    held = wheel.peek(0)
    assert held.owner == "slow" and held.resume_slot >= slot_of(START + 30_000 - LEAD)
    # And a successor resuming there sends nothing again; every task ran once
    again = RecordingLanes(aws.platform.ticker.lanes, sim)
    ticker_on(aws, sim, lanes=again).run(0, until_ms=sim.now_ms() + 5_000, owner="next")
    assert again.sent == []
    drain()
    assert_ran_once(aws.platform.tasks, ids, counting)


@on_sim_clock()
def test_what_must_leave_while_a_slow_read_runs_leaves_before_it(aws, sim):
    # Given tasks due every 37 ms from 3 s on, in different lanes' batches, and window reads that
    # each take 60 ms (a busy shard's read at a small share of a vCPU)
    ids = [
        submit(aws.platform.tasks, 3_000 + 37 * i, priority=("high", "low")[i % 2]).task_id for i in range(80)
    ]
    wheel = aws.platform.ticker.wheel

    class SlowWheel:
        def __getattr__(self, name: str) -> Any:
            return getattr(wheel, name)

        def load(self, *args: Any, **kwargs: Any) -> Any:
            if sim.now_ms() > START + 100:  # (the first read goes an hour back, slot by slot)
                sim.senders.settle()  # (batches handed to the senders go out while the loop reads)
                sim.advance(60)
            return wheel.load(*args, **kwargs)

    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    report = ticker_on(aws, sim, wheel=SlowWheel(), group_ms=0, lanes=lanes).run(0, until_ms=START + 8_000)
    # Then no task was held up for a read's length (60 ms; 120 where a read spans two slots, of which
    # MAX_SEND_BEFORE_READ_MS is sent ahead), and none left more than that before its send time
    due = {t: aws.platform.tasks.get("acme", t).run_at for t in ids}
    assert report.dispatched == len(ids) and set(lanes.per_task()) == set(ids)
    late = [at - (due[m.task_id] - LEAD) for at, m in lanes.sent]
    assert max(late) < 60 and min(late) >= -MAX_SEND_BEFORE_READ_MS


def test_a_watch_never_leaves_before_its_time_and_a_fire_leaves_ahead_like_a_task() -> None:
    from taskplane.services.tick import _Run

    # Given a heap with a task, a retry, a schedule's fire and a timeout watch, each to leave in 50 ms
    # (the fire carries its time to the worker, which holds its task: services/schedules.py)
    ticker = Ticker(wheel=None, lanes=None, clock=FixedClock(START), wait=lambda s: True)  # type: ignore[arg-type]
    run = _Run(TickReport(shard=0, owner="t"), LEAD, START + 60_000)
    kinds = ("task", "retry", "schedule", "watch")
    for n, kind in enumerate(kinds):
        run.push(
            WheelEntry(
                shard=0,
                due_ms=START + 50 + (LEAD if kind != "watch" else 0),
                item_id=f"i{n}",
                tenant="acme",
                kind=kind,
                lane="default",
            )
        )
    # When the tick may send early what the worker holds (before a read, or in a hand-over)
    early = ticker._due(run, START, early=START + 100)
    # Then the task, the retry and the fire leave; the watch waits for its time
    assert sorted(e.kind for e in early) == ["retry", "schedule", "task"]
    assert sorted(e.kind for e in ticker._due(run, START + 50)) == ["watch"]


def test_fires_go_to_their_own_threads_so_a_burst_of_them_holds_back_nothing_due_beside_it() -> None:
    from taskplane.services.tick import _Run

    class Held:
        """A sender pool that runs nothing until told (so the loop is seen not to wait on it)."""

        def __init__(self) -> None:
            self.jobs: list[Callable[[], Any]] = []

        def submit(self, fn: Any, /, *args: Any) -> Future[Any]:
            self.jobs.append(lambda: fn(*args))
            return Future()

    fired: list[str] = []
    failing = {"s2"}

    def fire(entry: WheelEntry, now_ms: int) -> None:
        if entry.item_id in failing:
            raise Unavailable("the schedules table is throttling")
        fired.append(entry.item_id)

    pool, firers = Held(), Held()
    ticker = Ticker(
        wheel=None,  # type: ignore[arg-type]
        lanes=None,  # type: ignore[arg-type]
        clock=FixedClock(START),
        wait=lambda s: True,
        fire_schedule=fire,
        senders=pool,  # type: ignore[arg-type]
        firers=firers,  # type: ignore[arg-type]
    )
    run = _Run(TickReport(shard=0, owner="t"), LEAD, START + 60_000)
    fires = [WheelEntry(0, START + LEAD, f"s{n}", "acme", kind="schedule") for n in range(3)]
    task = WheelEntry(0, START + LEAD, "t1", "acme", kind="task")
    # When the loop dispatches three due fires and a task due with them
    ticker._dispatch([*fires, task], run)
    # Then it has fired nothing itself: each fire waits in the firers' queue, the task's batch in the
    # senders' (so it never queues behind a fire)
    assert fired == [] and len(firers.jobs) == 3 and len(pool.jobs) == 1
    for job in firers.jobs:
        job()
    # And a fire that fails is given back to the loop (tried on its next pass), the others counted
    assert fired == ["s0", "s1"] and run.report.fired == 2
    assert [e.item_id for e in run.unsent] == ["s2"]


@on_sim_clock()
def test_a_tick_that_dies_between_renewals_is_taken_over_within_the_lease_and_loses_nothing(
    aws, sim, counting
):
    from taskplane.wiring import TICK_RENEW_EVERY_MS

    wheel: WheelStore = aws.platform.ticker.wheel
    ticker = ticker_on(aws, sim)
    # (the platform's tick renews its lease every 3 s, well inside the 15 s it lasts)
    assert ticker.save_every_ms == TICK_RENEW_EVERY_MS == 3_000 and ticker.lease_ms == 15_000
    ids = [
        submit(aws.platform.tasks, delay).task_id for delay in (1_500, 4_000, 7_000, 8_500, 11_000, 26_000)
    ]
    renewals: list[int] = []

    class Noted:
        """The wheel store, noting when the tick renews its lease."""

        def __getattr__(self, name: str) -> Any:
            return getattr(wheel, name)

        def save(self, shard: int, owner: str, now_ms: int, *args: Any, **kwargs: Any) -> bool:
            renewals.append(now_ms)
            return wheel.save(shard, owner, now_ms, *args, **kwargs)

    def die() -> None:
        raise Crash("the tick's process died")

    # Given a tick that dies 7.5 s into its run, between two renewals
    death = START + 7_500
    sim.at(death, die)
    doomed = dataclasses.replace(ticker, wheel=Noted())
    try:
        doomed.run(0, until_ms=START + 60_000, owner="doomed")
    except Crash:
        sim.senders.abandon()
    # Then its lease ends 15 s after its last renewal: at most 15 s after its death
    last = max(r for r in renewals if r <= death)
    assert death - last <= TICK_RENEW_EVERY_MS
    held = wheel.peek(0)
    assert held.owner == "doomed" and held.until_ms == last + 15_000 <= death + 15_000
    # And no successor gets the shard before then, one gets it right after
    assert wheel.acquire(0, "early", held.until_ms, 15_000) is None
    sim.set(held.until_ms + 1)
    successor = ticker_on(aws, sim).run(0, until_ms=sim.now_ms() + 30_000, owner="successor")
    assert successor.acquired and not successor.lost_lease
    # And after the worker drained the lanes every task ran once, none early: what the dead tick
    # sent and what it had not, the successor's resends started once
    work(aws.client("sqs"), aws.settings.queue_urls, aws.platform.executor)
    assert_ran_once(aws.platform.tasks, ids, counting, "takeover")


# -- crash injection --------------------------------------------------------------------------------
class CrashPlan:
    """Counts the tick's external calls and dies right after call number ``after`` completes."""

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.calls: list[str] = []
        self.crashed = False
        self._lock = threading.Lock()

    def call(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self.crashed:
                raise Crash("already dead")
        result = fn(**kwargs)
        with self._lock:
            self.calls.append(name)
            if self.after is not None and len(self.calls) >= self.after:
                self.crashed = True
            if self.crashed:
                raise Crash(f"crash after call {len(self.calls)} ({name})")
        return result


class CrashingClient:
    """A boto3 client whose billable calls go through a :class:`CrashPlan`."""

    OPERATIONS = frozenset(
        {
            "query",
            "get_item",
            "put_item",
            "update_item",
            "batch_write_item",
            "send_message_batch",
            "send_message",
        }
    )

    def __init__(self, inner: Any, plan: CrashPlan) -> None:
        self._inner, self._plan = inner, plan

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self.OPERATIONS:
            return attr
        return lambda **kwargs: self._plan.call(name, attr, kwargs)


#: The crashing tick reads the wheel once a second (its look-ahead) instead of every 100 ms: the same
#: kinds of calls in the same order (reads across a slot boundary, saves, concurrent batches), with
#: fewer reads between them, so fewer crash points.
CRASH_POLL_MS = 1_000
#: 12 tasks over 5 s; two due at once on two lanes (two concurrent batches), two at once on one lane.
CRASH_DELAYS = [(150, "default"), (600, "default"), (1_000, "default"), (1_000, "high"), (1_700, "default")]
CRASH_DELAYS += [(2_200, "low"), (2_900, "default"), (2_900, "default"), (3_500, "default")]
CRASH_DELAYS += [(4_000, "high"), (4_600, "default"), (5_000, "default")]


def test_crash_after_every_external_call_loses_nothing_and_runs_nothing_twice(aws):
    sim = SimClock()  # for services built here; the platform keeps its own clock
    ddb, sqs = aws.client("dynamodb"), aws.client("sqs")

    def scenario(world: int, crash_after: int | None) -> tuple[CrashPlan, str]:
        context = f"crash after call {crash_after}"
        sim.reset(START)
        # Given a fresh world (its own tables and queues) with 12 delayed tasks
        settings = create_resources(aws.session, prefix=f"crash{world}")
        store = TaskStore(settings.tasks_table, ddb)
        lanes = Lanes(settings.queue_urls, settings.dlq_url, sqs)
        wheel = WheelStore(settings.wheel_table, settings.control_table, ddb)
        tasks = dataclasses.replace(
            aws.platform.tasks, store=store, lanes=lanes, wheel=wheel, idempotency=None, clock=sim
        )
        counting = CountingRunners(aws.platform.executor.runners)
        executor = dataclasses.replace(
            aws.platform.executor, store=store, lanes=lanes, wheel=wheel, runners=counting, clock=sim
        )
        batch = [
            TaskSubmit(target=ECHO, delay_ms=delay, priority=priority) for delay, priority in CRASH_DELAYS
        ]
        ids = [task.task_id for task in tasks.submit_batch("acme", batch)]
        assert [t.state for t in (tasks.get("acme", i) for i in ids)] == [S.SCHEDULED] * len(ids)
        # (the shard has ticked before: an earlier tick left its cursor 2 s back and let go)
        assert wheel.acquire(0, "earlier", START - 1_000, 15_000) is not None
        assert wheel.save(
            0, "earlier", START - 1_000, 15_000, (slot_of(START - 2_000), sort_key(START - 2_000, ""))
        )
        wheel.release(0, "earlier")
        # When a tick dies right after its crash_after-th external call
        plan = CrashPlan(crash_after)
        doomed = ticker_on(
            aws,
            sim,
            wheel=WheelStore(settings.wheel_table, settings.control_table, CrashingClient(ddb, plan)),
            lanes=Lanes(settings.queue_urls, settings.dlq_url, CrashingClient(sqs, plan)),
            poll_ms=CRASH_POLL_MS,
        )
        try:
            # (long enough to reach its idle hand-back too: release, and the consistent look after it)
            doomed.run(0, until_ms=START + 12_000, owner="doomed")
        except Crash:
            sim.senders.abandon()
        assert plan.crashed is (crash_after is not None), context
        # And a new tick takes over once the dead one's lease has expired
        sim.advance(doomed.lease_ms + 1)
        successor = ticker_on(aws, sim, wheel=wheel, lanes=lanes)
        report = successor.run(0, until_ms=sim.now_ms() + 500, owner="successor")
        assert (report.acquired or report.idle) and not report.lost_lease, context
        # Then after the worker drained the lanes every task SUCCEEDED, each target ran exactly once
        work(sqs, settings.queue_urls, executor)
        assert_ran_once(tasks, ids, counting, context)
        return plan, context

    dry, _ = scenario(0, None)
    points = len(dry.calls)
    assert points >= 20, dry.calls
    for n in range(1, points + 1):
        scenario(n, n)
    kinds = Counter(dry.calls)
    print(f"\ncrash points injected: {points} {dict(kinds)}")
    assert {"update_item", "query", "send_message_batch"} <= set(kinds)
    # (the tick went idle at the end: a consistent look after releasing the shard is among the calls)
    last_write = max(i for i, name in enumerate(dry.calls) if name == "update_item")
    assert dry.calls[last_write - 1] == "update_item", dry.calls[-5:]  # saved, then released
    assert dry.calls[last_write + 1 :] and set(dry.calls[last_write + 1 :]) == {"query"}, dry.calls[-5:]


# -- two ticks at once ------------------------------------------------------------------------------
class LeaseLog:
    """A wheel store proxy that notes when each owner got and gave up the lease (real time)."""

    def __init__(self, inner: WheelStore, log: list[tuple[str, str, float]], lock: threading.Lock) -> None:
        self.inner, self.log, self.lock = inner, log, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def acquire(self, shard: int, owner: str, now_ms: int, ttl_ms: int, runs_until: int | None = None) -> Any:
        lease = self.inner.acquire(shard, owner, now_ms, ttl_ms, runs_until)
        with self.lock:
            self.log.append(("got" if lease else "refused", owner, time.monotonic()))
        return lease

    def release(self, shard: int, owner: str) -> None:
        with self.lock:
            self.log.append(("release", owner, time.monotonic()))
        self.inner.release(shard, owner)


def test_two_ticks_on_one_shard_dispatch_everything_once(aws, drain, counting):
    # Given 20 tasks due over the next 2 s (real clock)
    ids = [submit(aws.platform.tasks, NEAR_MS + 50 + 80 * i).task_id for i in range(20)]
    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    lanes = RecordingLanes(aws.platform.ticker.lanes, aws.platform.ticker.clock)
    stop = threading.Event()
    errors: list[BaseException] = []
    reports: dict[str, Any] = {}
    # The spans count from when both threads are ready, not from before they started: on a loaded
    # machine starting them can take longer than the short span, and the ticks would never overlap.
    began: list[int] = []
    barrier = threading.Barrier(2, action=lambda: began.append(aws.platform.ticker.clock.now_ms()))

    def tick(owner: str, span_ms: int) -> None:
        ticker = dataclasses.replace(
            aws.platform.ticker,
            wheel=LeaseLog(aws.platform.ticker.wheel, log, lock),
            lanes=lanes,
            wait=stop.wait,
        )
        barrier.wait()
        try:
            reports[owner] = ticker.run(0, until_ms=began[0] + span_ms, owner=owner)
        except BaseException as exc:  # reported below
            errors.append(exc)

    # When two ticks run on shard 0 at the same time (one hands over at 1.2 s, one runs to 2.5 s)
    threads = [threading.Thread(target=tick, args=a) for a in (("short", 1_200), ("long", 2_500))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors and set(reports) == {"short", "long"}
    # Then one of them waited for the lease, and they never held it at the same time
    assert any(kind == "refused" for kind, _, _ in log), log
    holder = None
    for kind, owner, _ in log:
        if kind == "got":
            assert holder in (None, owner), f"{owner} got the lease while {holder} held it"
            holder = owner
        elif kind == "release" and holder == owner:
            holder = None
    assert not any(r.lost_lease for r in reports.values())
    # And every task was dispatched, at or after its run_at
    due = {t: aws.platform.tasks.get("acme", t).run_at for t in ids}
    assert set(lanes.per_task()) == set(ids)
    # (a lead ahead, a batch's group, and in a tick's last second up to a second more)
    ahead = LEAD + GROUP_MS + HANDOVER_SEND_AHEAD_MS
    assert all(m.dispatched_at >= due[m.task_id] - ahead for _, m in lanes.sent)
    # And after draining each ran exactly once
    drain(rounds=10)
    assert_ran_once(aws.platform.tasks, ids, counting)


# -- clock skew ---------------------------------------------------------------------------------
@on_sim_clock()
def test_entries_written_in_the_past_of_the_tick_are_still_dispatched(aws, sim, drain, counting):
    # Given an API whose clock is 2.5 s behind the tick's, and a tick kept running by later work
    submit(aws.platform.tasks, 30_000)
    api_side = dataclasses.replace(aws.platform.tasks, clock=OffsetClock(sim, -2_500))
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    due: dict[str, int] = {}

    def submit_skewed() -> None:
        for delay in (1_400, 2_200, 4_000):
            task = submit(api_side, delay)
            due[task.task_id] = task.run_at

    # When, mid-run, it submits tasks that by the tick's clock are due 1.1 s ago, 0.3 s ago and in 1.5 s
    sim.at(START + 5_050, submit_skewed)
    ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 9_000)
    assert sorted(d - (START + 5_050) for d in due.values()) == [-1_100, -300, 1_500]
    # Then the tick found the ones behind it at its next read, and the other on time
    assert {t: n for t, n in lanes.per_task().items() if t in due} == dict.fromkeys(due, 1)
    for at, message in lanes.sent:
        if message.task_id not in due:
            continue
        if due[message.task_id] < START + 5_050:
            assert START + 5_050 <= at <= START + 5_050 + LOOKBACK_EVERY_MS
        else:
            assert sent_on_time(due[message.task_id], at)
    drain(rounds=2)
    assert_ran_once(aws.platform.tasks, list(due), counting)


@on_sim_clock()
@pytest.mark.parametrize("worker_waits", [True, False], ids=["holds", "requeues"])
def test_worker_behind_the_tick_never_starts_a_task_early(aws, sim, counting, worker_waits):
    # Given a tick whose clock is 300 ms ahead of the worker's
    worker_clock = OffsetClock(sim, -300)
    # (a worker that holds an early delivery sleeps through simulated time; one that cannot, requeues it)
    sleep = (lambda s: sim.advance(round(s * 1000))) if worker_waits else (lambda s: None)
    worker = dataclasses.replace(aws.platform.executor, clock=worker_clock, sleep=sleep)
    sqs, urls = aws.client("sqs"), aws.settings.queue_urls
    outcomes: list[Outcome] = []
    # (each time the tick waits, one receive per lane: a requeued delivery comes back at a later time)
    sim.after_wait.append(lambda: outcomes.extend(work(sqs, urls, worker, rounds=1, until_empty=False)))
    due = {
        submit(aws.platform.tasks, d).task_id: START + d for d in (NEAR_MS + 1, NEAR_MS + 300, 2_500, 4_000)
    }
    # When the tick dispatches on its clock and the worker handles each delivery as it arrives
    report = ticker_on(aws, sim).run(0, until_ms=START + 6_000)
    outcomes.extend(work(sqs, urls, worker))
    # Then the deliveries arrived early by the worker's clock, were held or requeued, and no task
    # started before its run_at by the worker's clock
    assert report.dispatched == len(due)
    assert (Outcome.REQUEUED in outcomes) is not worker_waits
    assert outcomes.count(Outcome.SUCCEEDED) == len(due)
    done = assert_ran_once(aws.platform.tasks, list(due), counting)
    for task in done:
        running = next(h for h in task.history if h.state is S.RUNNING)
        assert task.started_at == running.at >= task.run_at
        if worker_waits:
            assert task.started_at == task.run_at  # held exactly until due


# -- retries through the wheel --------------------------------------------------------------------
@on_sim_clock()
def test_retry_with_backoff_beyond_sqs_delay_goes_through_the_wheel(aws, sim, drain, counting):
    # Given a task that fails once, with a 1,000 s backoff (SQS can delay 900 s at most)
    retry = {"max_attempts": 2, "base_delay_ms": 1_000_000, "max_delay_ms": 1_000_000, "jitter": "none"}
    task = submit(
        aws.platform.tasks, 0, payload={"times": 1}, retry=retry, target={"type": "builtin", "name": "fail"}
    )
    sqs = aws.client("sqs")
    # When its first attempt fails
    drain()
    waiting = aws.platform.tasks.get("acme", task.task_id)
    retry_at = START + 1_000_000
    assert waiting.state is S.RETRYING and waiting.next_attempt_at == retry_at
    # Then no delayed lane message holds it; a "retry" wheel entry for attempt 2 does
    assert lane_depth(sqs, aws.settings.queue_urls) == 0
    entries = aws.platform.ticker.wheel.load(0, slot_of(retry_at), "", None)
    assert [(e.item_id, e.kind, e.attempt, e.due_ms) for e in entries] == [
        (task.task_id, "retry", 2, retry_at)
    ]
    # And a tick running from 5 s before it is due sends it exactly when due
    sim.set(retry_at - 5_000)
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    ticker_on(aws, sim, lanes=lanes).run(0, until_ms=retry_at + 2_000)
    ((at, message),) = [(at, m) for at, m in lanes.sent if m.state != "RUNNING"]  # not timeout watches
    assert retry_at - LEAD <= at <= retry_at - LEAD + ON_TIME_MS
    assert (message.state, message.attempt) == ("RETRYING", 2)
    # And the second attempt runs and succeeds
    drain()
    done = aws.platform.tasks.get("acme", task.task_id)
    assert done.state is S.SUCCEEDED and done.attempts == 2 and counting.calls == {task.task_id: 2}
    assert states(done)[-4:] == [S.RETRYING, S.PENDING, S.RUNNING, S.SUCCEEDED]
    assert done.started_at >= retry_at


@on_sim_clock()
def test_a_retry_due_too_soon_for_the_ticks_reads_goes_straight_to_its_lane(aws, sim, drain, counting):
    # Given a task that fails once with a backoff past what waits in its worker (INLINE_RETRY_MS) but
    # within NEAR_MS: the tick reads the wheel every POLL_MS, and might read an entry only after it
    # must leave
    backoff = INLINE_RETRY_MS + 1
    assert INLINE_RETRY_MS < backoff <= NEAR_MS
    retry = {"max_attempts": 2, "base_delay_ms": backoff, "max_delay_ms": backoff, "jitter": "none"}
    task = submit(
        aws.platform.tasks, 0, payload={"times": 1}, retry=retry, target={"type": "builtin", "name": "fail"}
    )
    # When its first attempt fails (one round: the retry's delivery is received, not yet run)
    drain(rounds=1)
    waiting = aws.platform.tasks.get("acme", task.task_id)
    # Then its retry went to its lane, not into the wheel
    assert waiting.state is S.RETRYING
    retry_at = waiting.next_attempt_at
    assert retry_at is not None and retry_at - sim.now_ms() <= NEAR_MS
    entries = aws.platform.ticker.wheel.load(0, slot_of(retry_at), "", None)
    assert [e for e in entries if e.kind == "retry"] == []
    # And the worker that gets it waits out the rest: the second attempt starts when due, not before
    drain()
    done = aws.platform.tasks.get("acme", task.task_id)
    assert done.state is S.SUCCEEDED and done.attempts == 2 and counting.calls == {task.task_id: 2}
    assert done.started_at >= retry_at


# -- idle ticks and wakes ------------------------------------------------------------------------
@on_sim_clock()
def test_an_idle_tick_ends_at_once_and_moves_the_cursor_up(aws, sim):
    # Given a shard with nothing due, whose cursor was left two hours back
    wheel: WheelStore = aws.platform.ticker.wheel
    assert wheel.advance_idle(0, START, (slot_of(START - 7_200_000), ""))
    calls: list[str] = []
    real = wheel._client

    class Counting:
        def __getattr__(self, name: str) -> Any:
            attr = getattr(real, name)
            return (lambda **kw: (calls.append(name), attr(**kw))[1]) if callable(attr) else attr

    wheel._client = Counting()
    try:
        # When the rule invokes the tick
        report = ticker_on(aws, sim).run(0, until_ms=START + 300_000)
    finally:
        wheel._client = real
    # Then it only looked (no lease taken, no time spent), and the next look starts from the look-back
    assert report.idle and not report.acquired and sim.now_ms() == START
    assert calls.count("update_item") == 1 and "send_message_batch" not in calls
    lease = wheel.peek(0)
    assert (lease.resume_slot, lease.resume_sk) == (
        slot_of(START - LOOKBACK_MS),
        sort_key(START - LOOKBACK_MS, ""),
    )
    calls.clear()
    wheel._client = Counting()
    try:
        ticker_on(aws, sim).run(0, until_ms=START + 300_000)
    finally:
        wheel._client = real
    assert calls.count("query") <= 3  # the slots from there to the idle horizon (75 s: up to three)


@on_sim_clock()
def test_a_write_landing_as_the_tick_hands_its_shard_back_is_still_sent(aws, sim, drain, counting):
    # Given a tick about to end idle (its only task sent), and a task written right after it released
    # the shard: the writer saw the lease still held, so it woke nobody
    first = submit(aws.platform.tasks, 2_000)
    wheel: WheelStore = aws.platform.ticker.wheel
    late: dict[str, Any] = {}

    class WriteOnRelease:
        def __getattr__(self, name: str) -> Any:
            return getattr(wheel, name)

        def release(self, shard: int, owner: str) -> None:
            wheel.release(shard, owner)
            if not late:
                late["task"] = submit(aws.platform.tasks, 20_000)

    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    # When the tick runs
    report = ticker_on(aws, sim, lanes=lanes, wheel=WriteOnRelease()).run(0, until_ms=START + 60_000)
    # Then its consistent look after releasing found the new task, it took the shard back and sent it
    assert late and report.acquired and not report.lost_lease
    sent = {m.task_id: at for at, m in lanes.sent}
    assert set(sent) == {first.task_id, late["task"].task_id}
    assert sent_on_time(late["task"].run_at, sent[late["task"].task_id])
    drain(rounds=2)
    assert_ran_once(aws.platform.tasks, [first.task_id, late["task"].task_id], counting)


@on_sim_clock()
def test_writers_wake_an_idle_tick_for_entries_due_before_its_next_check(aws, sim):
    # Given no tick holding the shard, and a record of wakes
    woken: list[int] = []
    aws.platform.wakes.wake = woken.append
    # When tasks due in 30 s (before the rule's next look could see them) and in 10 minutes arrive
    submit(aws.platform.tasks, 30_000)
    assert woken == [0]
    submit(aws.platform.tasks, 600_000)
    assert woken == [0]  # the rule's checks find that one in time
    # And while a tick holds the shard, nobody is woken
    assert aws.platform.ticker.wheel.acquire(0, "running", sim.now_ms(), 15_000) is not None
    aws.platform.tasks.submit_batch(
        "acme", [TaskSubmit.model_validate({"target": ECHO, "delay_ms": 5_000})] * 3
    )
    assert woken == [0]


def test_the_api_wakes_the_tick_with_an_asynchronous_invoke_of_its_function(aws, api):
    # Given the api's wakes going through Lambda (as deployed: TASKPLANE_TICK_FUNCTION), and a
    # record of what it asks Lambda for (moto has no tick function: the invoke fails, and must not
    # fail the submit)
    import json

    from taskplane.adapters.tick_waker import TickInvoker

    client = aws.client("lambda")
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.lambda.Invoke", lambda params, **_: sent.append(dict(params))
    )
    aws.platform.wakes.wake = TickInvoker("taskplane-tick", client)
    # When a task due in 5 s arrives at the api
    reply = api("POST", "/v1/tasks", {"target": ECHO, "delay_ms": 5_000})
    # Then it is accepted, and the shard's tick was invoked once, asynchronously, for its shard
    assert reply.status == 201 and reply.body["state"] == "SCHEDULED"
    assert [(p["FunctionName"], p["InvocationType"], json.loads(p["Payload"])) for p in sent] == [
        ("taskplane-tick", "Event", {"shard": 0, "woken": True})
    ]


@on_sim_clock()
def test_a_busy_tick_wakes_its_successor_before_its_span_ends(aws, sim, drain, counting):
    # Given work due across two spans of a tick, and a record of the wakes it sends
    due = {submit(aws.platform.tasks, d).task_id: START + d for d in (2_000, 9_000, 14_000)}
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    woken: list[tuple[int, int]] = []
    # When a tick runs a 10 s span
    first = ticker_on(aws, sim, lanes=lanes, handover=lambda shard: woken.append((shard, sim.now_ms())))
    report = first.run(0, until_ms=START + 10_000, owner="a")
    # Then it woke one successor in the last HANDOVER_MS of its span, and handed the shard back
    assert report.handed_over and not report.lost_lease
    assert [shard for shard, _ in woken] == [0] and START + 10_000 - HANDOVER_MS <= woken[0][
        1
    ] < START + 10_000
    assert aws.platform.ticker.wheel.peek(0).until_ms == 0
    # And the successor (woken then) sends the rest on time
    second = ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 30_000, owner="b")
    assert second.acquired
    sent: dict[str, int] = {}
    for at, m in lanes.sent:  # (the successor sends again what the first sent in its look-back)
        sent.setdefault(m.task_id, at)
    assert set(sent) == set(due)
    assert all(sent_on_time(due[t], sent[t]) for t in due)
    drain(rounds=3)
    assert_ran_once(aws.platform.tasks, list(due), counting)


@on_sim_clock()
def test_tasks_submitted_together_share_wheel_items_and_each_is_sent(aws, sim, drain, counting):
    # Given 30 tasks submitted in one batch, ten due in each of three seconds
    body = [
        TaskSubmit.model_validate({"target": ECHO, "delay_ms": 2_000 + 1_000 * (i % 3) + i})
        for i in range(30)
    ]
    ids = [t.task_id for t in aws.platform.tasks.submit_batch("acme", body)]
    # Then three wheel items hold them (one write each, not thirty)
    wheel = aws.platform.ticker.wheel
    raw = aws.client("dynamodb").scan(TableName=aws.settings.wheel_table)["Items"]
    assert len(raw) == 3 and all(len(item["more"]["L"]) == 9 for item in raw)
    entries = [
        e for slot in {slot_of(START + d) for d in (2_000, 5_000)} for e in wheel.load(0, slot, "", None)
    ]
    assert sorted(e.item_id for e in entries) == sorted(ids)
    # And the tick sends each on time, and each runs once
    lanes = RecordingLanes(aws.platform.ticker.lanes, sim)
    ticker_on(aws, sim, lanes=lanes).run(0, until_ms=START + 8_000)
    run_at = {t: aws.platform.tasks.get("acme", t).run_at for t in ids}
    assert lanes.per_task() == dict.fromkeys(ids, 1)
    assert all(sent_on_time(run_at[m.task_id], at) for at, m in lanes.sent)
    drain(rounds=6)
    assert_ran_once(aws.platform.tasks, ids, counting)
