"""The ring's keeper under moto: the first ring, draining shards and their wakes, weights from lag,
and the ring in ``GET /v1/stats``."""

from __future__ import annotations

import dataclasses
from itertools import pairwise
from typing import Any

import pytest

from taskplane.adapters.ring_store import CachedRing, RingStore
from taskplane.domain.models import TaskSubmit
from taskplane.domain.ring import DRAIN_MS, MIN_WEIGHT, WEIGHT_STEP, Ring
from taskplane.domain.wheel import SLOT_MS
from taskplane.local.context import LocalContext
from taskplane.local.handlers import load_handler
from tests.integration.test_wheel import START, RecordingLanes, SimClock, on_sim_clock

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}


@pytest.fixture
def sim(aws: Any) -> SimClock:
    clock = aws.platform.tasks.clock
    assert isinstance(clock, SimClock)
    clock.reset(START)
    return clock


def keeper_for(aws: Any, shards: int, woken: list[int] | None = None) -> Any:
    keeper = aws.platform.keeper
    keeper.shards = shards
    if woken is not None:
        keeper.wake = woken.append
    return keeper


@on_sim_clock()
def test_the_first_ring_drains_shards_a_tick_used_beyond_the_configured_count(aws, sim):
    # Given ticks that ran shards 0..5 before the ring existed, and a deploy that configures 4
    wheel = aws.platform.ticker.wheel
    for shard in range(6):
        assert wheel.advance_idle(shard, START, (START - START % SLOT_MS, ""))
    woken: list[int] = []
    keeper = keeper_for(aws, 4, woken)
    # When the tick of shard 0 keeps the ring for the first time
    ring = keeper.maintain()
    # Then shards 0..3 take new entries and 4, 5 drain (nothing they hold is forgotten)
    assert ring.version == 1 and ring.shards == [0, 1, 2, 3]
    assert ring.draining == {4: START + DRAIN_MS, 5: START + DRAIN_MS}
    assert RingStore(aws.settings.control_table, aws.client("dynamodb")).read(consistent=True) == ring
    # And a tick runs for a draining shard, none for a shard never used; each draining one is woken by
    # exactly one shard on the ring, at each of its invocations
    assert keeper.ticks(5) and not keeper.ticks(6)
    assert [keeper.wake_drains(s) for s in range(4)] == [[4], [5], [], []]
    assert woken == [4, 5]
    # And keeping it again changes nothing (no new version)
    assert keeper.maintain() == ring


@on_sim_clock()
def test_a_draining_shards_tick_sends_what_it_holds(aws, sim, drain):
    # Given a task written into shard 5 of a six-shard ring, then the count lowered to 2
    store = RingStore(aws.settings.control_table, aws.client("dynamodb"))
    assert store.write(Ring.of(6, changed_at=START), expected_version=None)
    tasks = aws.platform.tasks
    tasks.shards = CachedRing(store, sim.now_ms, 6)
    placed = None
    while placed is None:  # (ids are random: submit until one lands on shard 5)
        task, _ = tasks.submit("acme", TaskSubmit.model_validate({"target": ECHO, "delay_ms": 3_000}))
        placed = task if Ring.of(6).shard_for(task.task_id) == 5 else None
        if placed is None:
            tasks.cancel("acme", task.task_id)
    keeper = keeper_for(aws, 2)
    ring = keeper.maintain()
    assert ring.shards == [0, 1] and 5 in ring.draining
    # When shard 1's tick wakes it (its rule is gone) and the woken tick runs
    handler = load_handler("tick").lambda_handler
    woken: list[int] = []
    keeper.wake = woken.append
    aws.platform.ticker = dataclasses.replace(aws.platform.ticker, wait=sim.wait, senders=sim.senders)
    handler({"shard": 1}, LocalContext("taskplane-tick", timeout_s=10))
    assert woken == [3, 5]  # (draining 2..5, given round-robin to shards 0 and 1)
    result = handler({"shard": 5, "woken": True}, LocalContext("taskplane-tick", timeout_s=10))
    # Then it sent the task on time, and the worker ran it
    assert result["acquired"] and result["dispatched"] == 1
    drain(rounds=2)
    done = tasks.get("acme", placed.task_id)
    assert done.state.value == "SUCCEEDED" and done.started_at >= done.run_at


@on_sim_clock()
def test_a_lagging_shard_loses_weight_within_bounds_and_earns_it_back(aws, sim, api):
    # Given four shards, and shard 2's lanes answering 1.5 s late (a slow or throttled SQS)
    keeper = keeper_for(aws, 4)
    keeper.maintain()

    class SlowLanes(RecordingLanes):
        def send(self, messages: list[Any]) -> list[Exception | None]:
            sim.advance(1_500)
            return super().send(messages)

    tasks = aws.platform.tasks
    on_two = []
    while len(on_two) < 30:
        task, _ = tasks.submit("acme", TaskSubmit.model_validate({"target": ECHO, "delay_ms": 2_000}))
        if Ring.of(4).shard_for(task.task_id) == 2:
            on_two.append(task)
    lanes = SlowLanes(aws.platform.ticker.lanes, sim)
    ticker = dataclasses.replace(
        aws.platform.ticker, clock=sim, wait=sim.wait, senders=sim.senders, lanes=lanes, group_ms=0
    )
    # When its tick sends them (late) and saves its position, with the lag it measured
    report = ticker.run(2, until_ms=START + 10_000, owner="slow")
    assert report.dispatched == len(on_two) and report.lag_ms >= 1_500
    lease = aws.platform.ticker.wheel.peek(2)
    assert lease.lag_ms is not None and lease.lag_ms >= 1_500
    # Then the keeper lowers its weight (the others keep theirs), as a new ring version
    ring = keeper.maintain()
    assert ring.version == 2 and ring.weights[2] < 1.0 and ring.weights[2] >= MIN_WEIGHT
    assert {s: w for s, w in ring.weights.items() if s != 2} == {0: 1.0, 1: 1.0, 3: 1.0}
    assert ring.shares()[2] < 0.25
    # And GET /v1/stats shows it
    aws.platform.ring.forget()
    wheel = api("GET", "/v1/stats").body["wheel"]
    assert wheel["ring_version"] == 2 and wheel["draining"] == []
    shown = {s["shard"]: s for s in wheel["shards"]}
    assert shown[2]["weight"] == ring.weights[2] and shown[2]["lag_ms"] == lease.lag_ms
    assert shown[0]["weight"] == 1.0 and shown[0]["lag_ms"] is None
    # (read again at most every 5 s: a dashboard polling it costs one lease read per shard per 5 s)
    sim.advance(1_000)
    assert api("GET", "/v1/stats").body["wheel"] == wheel
    assert sum(s["share"] for s in wheel["shards"]) == pytest.approx(1.0, abs=0.001)
    # And once its lag is old news (an idle shard reports none), it climbs back a step a minute
    weights = [ring.weights[2]]
    for _ in range(5):
        sim.advance(60_000)
        weights.append(keeper.maintain().weights[2])
    assert weights[0] < 1.0 and weights[-1] == 1.0
    assert all(b - a <= WEIGHT_STEP for a, b in pairwise(weights))
