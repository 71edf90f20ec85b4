"""bench/capacity.py on the hand-made example of bench/pricing.py (not a measurement)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import capacity
import pricing

pytestmark = pytest.mark.unit


def scales(cost: dict) -> dict[int, dict]:
    return {s["tasks_per_day"]: s for s in capacity.model(cost)["scales"]}


def test_first_limit_at_each_scale() -> None:
    by = scales(pricing.EXAMPLE_COST)
    assert by[1_000_000]["first_limit"] is None
    assert by[1_000_000]["nearest_limit"]["ratio"] < 1
    # The default single shard's tick (sized at TICK_TARGET_UTILIZATION of its rate) is the first to
    # give out; 4.02 WRU per task of which 1 is the wheel write: 3.02 WRU on one tenant#bucket key too.
    for n in (100_000_000, 1_000_000_000):
        assert by[n]["first_limit"].startswith("tick throughput of 1 shard")
        assert any(hit.startswith("task partition 1,000 WCU/s") for hit in by[n]["limits_hit"])
    assert "wheel shards allowed by infra/config.py (64)" in by[1_000_000_000]["limits_hit"]
    assert "wheel shards allowed by infra/config.py (64)" not in by[100_000_000]["limits_hit"]


def test_shards_buckets_and_concurrency() -> None:
    by = scales(pricing.EXAMPLE_COST)
    peak = 10 * 100_000_000 / 86_400
    s = by[100_000_000]
    assert s["peak_tasks_per_s"] == pytest.approx(peak, abs=0.01)
    assert s["wheel_shards"]["by_partition_wcu"] == int(-(-peak * 1 // 1000))  # 1 wheel WRU per task
    # a shard's tick sized to carry 22% of its measured 1,200 tasks/s
    assert capacity.TICK_TARGET_UTILIZATION == 0.22
    assert s["wheel_shards"]["by_tick_throughput"] == int(-(-peak // (1200 * 0.22)))
    assert s["task_buckets_needed"] == int(-(-peak * 3.02 // 1000))
    worker_s = 0.003 / 0.5 + 3 * 0.005 / 10  # CPU + 3 overlapping waits per batch of 10
    assert s["worker_concurrency_peak"] == pytest.approx(peak * worker_s, abs=0.1)


def test_a_slow_tick_makes_tick_throughput_the_first_limit() -> None:
    cost = copy.deepcopy(pricing.EXAMPLE_COST)
    cost["tick"]["tasks_per_s_per_shard"] = 50.0
    by = scales(cost)
    assert by[1_000_000]["first_limit"].startswith("tick throughput")
    # 115.7 peak tasks/s over shards carrying at most TICK_TARGET_UTILIZATION of 50 tasks/s each (the
    # busiest on the ring)
    peak = by[1_000_000]["peak_tasks_per_s"]
    needed = by[1_000_000]["wheel_shards"]["needed"]
    assert needed == capacity.tick_shards(peak, 50.0) >= peak / (50.0 * capacity.TICK_TARGET_UTILIZATION)


def test_cost_per_day_grows_with_scale() -> None:
    by = scales(pricing.EXAMPLE_COST)
    small, big = by[1_000_000], by[1_000_000_000]
    assert big["total_usd_per_day"]["on_demand"] > 100 * small["total_usd_per_day"]["on_demand"]
    assert big["dynamodb_usd_per_day"]["provisioned"] < big["dynamodb_usd_per_day"]["on_demand"]
    assert capacity.model(pricing.EXAMPLE_COST)["assumptions"]


def test_shards_needed_count_the_rings_busiest_shard() -> None:
    # The ring balances within about +-20%, not perfectly: enough shards that the busiest keeps up
    cost = copy.deepcopy(pricing.EXAMPLE_COST)
    cost["tick"]["tasks_per_s_per_shard"] = 600.0
    s = scales(cost)[100_000_000]
    peak, per_shard = s["peak_tasks_per_s"], 600.0 * capacity.TICK_TARGET_UTILIZATION
    shards = s["wheel_shards"]
    n = shards["needed"]
    assert n > shards["by_tick_throughput"] == int(-(-peak // per_shard))
    assert peak * capacity.hottest_share(n) / n <= per_shard
    assert peak * capacity.hottest_share(n - 1) / (n - 1) > per_shard  # the fewest that do
    assert shards["hottest_share"] == pytest.approx(capacity.hottest_share(n), abs=0.001)
    # And a reshard's figures: one more shard re-homes 1/(n+1) of new entries, nothing written moves
    reshard = s["reshard"]
    assert reshard["moves_adding_one_shard"] == pytest.approx(1 / (n + 1), abs=1e-4)
    assert reshard["existing_entries_move"] is False and reshard["applies_within_s"] == 90
    assert reshard["drain_days"] > 366 and reshard["drain_usd_per_removed_shard_month"] > 0


def test_a_shards_tick_is_sized_with_headroom() -> None:
    # A tick measured at 1,014 tasks/s could carry 1,000 due a second alone (at 99%), but is sized so
    # its busiest shard carries at most TICK_TARGET_UTILIZATION of its rate; at half the rate, more
    u = capacity.TICK_TARGET_UTILIZATION
    assert capacity.ring_shards(1000, 1014.4) == 1
    assert capacity.tick_shards(1000, 1014.4) == capacity.ring_shards(1000, 1014.4 * u) > 1
    assert capacity.tick_shards(1000, 507.2) > capacity.tick_shards(1000, 1014.4)
    for load, rate in ((1000, 1014.4), (11_574, 300.0), (50, 40.0)):
        n = capacity.tick_shards(load, rate)
        assert load * capacity.hottest_share(n) / n <= u * rate
        assert n == 1 or load * capacity.hottest_share(n - 1) / (n - 1) > u * rate
