"""bench/pricing.py: arithmetic on a hand-made units dict (not a measurement) and prices.json's shape."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import pricing  # noqa: E402

pytestmark = pytest.mark.unit

PRICES = pricing.load_prices()
P = pricing.unit_prices(PRICES)


def example(**units: object) -> dict:
    cost = copy.deepcopy(pricing.EXAMPLE_COST)
    cost["units_per_task"].update(units)
    return cost


def test_every_price_has_its_source_date_unit_and_status() -> None:
    doc = json.loads((BENCH / "prices.json").read_text())
    for name, entry in doc["prices"].items():
        assert entry["source"].startswith("https://"), name
        assert entry["checked"] and entry["unit"] and entry["verified"], name
        assert entry["per"] > 0 and entry["usd"] >= 0, name
    assert P["dynamodb_wru"] == pytest.approx(0.625e-6)
    assert P["dynamodb_rru"] == pytest.approx(0.125e-6)
    assert P["sfn_standard_transition"] == pytest.approx(0.025e-3)


def test_four_write_units_at_0_625_per_million_are_2_50() -> None:
    lines = pricing.per_million(
        pricing.taskplane_usd_per_task(example(dynamodb_wru=4.0), P, tasks_per_day=1e6)
    )
    assert lines["dynamodb_writes"] == pytest.approx(2.50)


def test_on_demand_lines_by_hand() -> None:
    result = pricing.price(pricing.EXAMPLE_COST, PRICES, tasks_per_day=1_000_000, shards=1)
    lines = result["usd_per_million"]["taskplane_on_demand"]["lines"]
    assert lines["dynamodb_writes"] == pytest.approx(4.02 * 0.625, abs=1e-4)
    assert lines["dynamodb_reads"] == pytest.approx(0.31 * 0.125, abs=1e-4)
    assert lines["sqs"] == pytest.approx(1.3 * 0.40, abs=1e-4)
    assert lines["lambda_requests"] == pytest.approx(0.11 * 0.20, abs=1e-4)
    assert lines["lambda_gb_s"] == pytest.approx(0.007 * 0.0000133334 * 1e6, abs=1e-4)
    assert lines["api_gateway"] == pytest.approx(0.01 * 3.50, abs=1e-4)
    # tick: busy all day at a million tasks a day (one due within 75 s, always): 1 shard x 86,400 s x
    # 1.0333 x 0.5 GB x GB-s price + a hand-over invocation every 300 s, plus 1 WRU/s and 5 RRU/s
    # on-demand; and the rule's 1,440 checks (invocation, 2 ms CPU at a 512 MB share + 18 ms of calls,
    # 1 WRU, 1.5 RRU) -> over one million tasks a day, USD per million tasks = USD per day.
    check = 0.2e-6 + (2.0 * 1769 / 512 + 18.0) / 1000 * 0.5 * 0.0000133334 + 0.625e-6 + 1.5 * 0.125e-6
    tick = 86_400 * 1.0333 * 0.5 * 0.0000133334 + 288 * 0.2e-6 + 86_400 * 0.625e-6 + 5 * 86_400 * 0.125e-6
    assert lines["tick"] == pytest.approx(tick + 1_440 * check, abs=1e-4)
    # no waits measured in the example: no wait line
    assert lines["worker_wait"] == 0
    # I/O wait: waited calls (every call but receives, deletes and Queries) x 5 ms x worker GB.
    waited = (20_000 + 400 + 20_000 + 1_000) / 10_000
    assert lines["lambda_io_wait"] == pytest.approx(waited * 0.005 * 0.5 * 0.0000133334 * 1e6, abs=1e-4)
    total = result["usd_per_million"]["taskplane_on_demand"]["total"]
    assert total == pytest.approx(sum(lines.values()), abs=1e-3)
    assert result["goal_met"] is (total <= 2.50)
    assert result["assumptions"] and all(isinstance(a, str) for a in result["assumptions"])


def test_sketch_writes_are_priced_at_the_days_load_not_the_benchs() -> None:
    # Given a run whose one worker process wrote 0.003 sketch WRU per task, 3 writes per target-minute
    kinds = {"wru:taskplane-control:sketch": 0.003, "wru:taskplane-control:breaker": 0.08}
    cost = example(dynamodb_wru=4.0, dynamodb_by_item_kind=kinds, sketch_writes_per_add=3.0)
    # Then at a million a day: 5 instances x 3 writes every 30 s over 11.57 tasks/s
    at_day = 5 * 3.0 / 30 / (1e6 / 86_400)
    assert pricing.sketch_wru_per_task(cost, 1e6) == (0.003, pytest.approx(at_day))
    lines = pricing.per_million(pricing.taskplane_usd_per_task(cost, P, tasks_per_day=1e6))
    assert lines["dynamodb_writes"] == pytest.approx((4.0 - 0.003 + at_day) * 0.625)
    # And at 100 million a day the instances grow with the batches (1,157 tasks/s / 10 x 1 s)
    assert pricing.sketch_wru_per_task(cost, 1e8)[1] == pytest.approx(116 * 3.0 / 30 / (1e8 / 86_400))
    # And a run from before the throttle (no writes-per-add) is priced as measured
    old = example(dynamodb_by_item_kind=kinds)
    assert pricing.sketch_wru_per_task(old, 1e6) == (0.003, 0.003)


def test_tick_cost_is_amortized_over_the_day() -> None:
    small = pricing.taskplane_usd_per_task(pricing.EXAMPLE_COST, P, tasks_per_day=1e6, shards=2)["tick"]
    large = pricing.taskplane_usd_per_task(pricing.EXAMPLE_COST, P, tasks_per_day=1e8, shards=2)["tick"]
    assert small == pytest.approx(100 * large)
    one = pricing.tick_usd_per_day(pricing.EXAMPLE_COST, P, 1)
    assert pricing.tick_usd_per_day(pricing.EXAMPLE_COST, P, 4) == pytest.approx(4 * one)


def test_provisioned_at_target_utilization() -> None:
    lines = pricing.per_million(
        pricing.taskplane_usd_per_task(
            example(dynamodb_wru=1.0, dynamodb_rru=1.0),
            P,
            tasks_per_day=1e6,
            provisioned=True,
            target_utilization=0.7,
        )
    )
    assert lines["dynamodb_writes"] == pytest.approx(0.00065 / 3600 / 0.7 * 1e6)
    assert lines["dynamodb_reads"] == pytest.approx(0.00013 / 3600 / 0.7 * 1e6)


def test_step_functions_transition_count() -> None:
    assert pricing.sfn_transitions() == 2  # Wait, Task: one per state executed
    assert pricing.SFN_TRANSITIONS_PER_TASK == 2
    assert pricing.sfn_transitions(retries=1) == 3  # each retry is billed as a transition
    lines = pricing.per_million(pricing.step_functions_usd_per_task(pricing.EXAMPLE_COST, P))
    assert lines["step_functions"] == pytest.approx(2 * 0.025 / 1000 * 1e6)  # $50 per million
    assert lines["dynamodb_writes"] == pytest.approx(0.625)  # the task record, 812 B -> 1 WRU


def test_eventbridge_scheduler_lines() -> None:
    lines = pricing.per_million(pricing.eventbridge_scheduler_usd_per_task(pricing.EXAMPLE_COST, P))
    assert lines["scheduler"] == pytest.approx(1.00)  # one invocation; CreateSchedule not charged
    assert lines["dynamodb_writes"] == pytest.approx(3 * 0.625)  # put, start, finish
    assert lines["lambda_requests"] == pytest.approx((1 + 0.01) * 0.20)  # worker once + api share
    assert lines["api_gateway"] == pytest.approx(0.035)


def test_write_units_round_up_per_kilobyte() -> None:
    assert pricing.write_units(1) == 1
    assert pricing.write_units(1024) == 1
    assert pricing.write_units(1025) == 2


def test_an_idle_shard_costs_its_checks_only() -> None:
    # Given no task at all, then one task a day, then a million
    idle = pricing.tick_usd_per_day(pricing.EXAMPLE_COST, P, 1, tasks_per_day=0)
    checks = 1_440 * pricing.check_usd(pricing.EXAMPLE_COST, P)
    # Then idle it is the rule's checks, cents a month; busy it runs all day
    assert idle == pytest.approx(checks) and idle * 30.44 < 0.10
    assert pricing.tick_busy_fraction(0, 1) == 0
    assert pricing.tick_busy_fraction(1, 1) == pytest.approx(75 / 86_400, rel=1e-3)
    assert pricing.tick_busy_fraction(1_000_000, 1) == pytest.approx(1.0)
    busy = pricing.tick_usd_per_day(pricing.EXAMPLE_COST, P, 1, tasks_per_day=1_000_000)
    assert busy > 86_400 * 0.5 * 0.0000133334  # at least the tick's GB-s of a whole day


def test_waits_are_interpolated_between_the_measured_loads() -> None:
    waits = [
        {"tasks_per_s": 12, "wait_gb_s_per_task": 0.06},
        {"tasks_per_s": 1_200, "wait_gb_s_per_task": 0.02},
    ]
    assert pricing.wait_gb_s_per_task(waits, 1) == 0.06  # the nearest beyond the measured range
    assert pricing.wait_gb_s_per_task(waits, 10_000) == 0.02
    assert pricing.wait_gb_s_per_task(waits, 120) == pytest.approx(0.04)  # halfway on a log scale
    assert pricing.wait_gb_s_per_task([], 100) == 0.0
    lines = pricing.per_million(
        pricing.taskplane_usd_per_task(pricing.EXAMPLE_COST, P, tasks_per_day=12 * 86_400, waits=waits)
    )
    assert lines["worker_wait"] == pytest.approx(0.06 * 0.0000133334 * 1e6)


def test_idle_environment_by_line() -> None:
    idle = pricing.idle_usd_per_month(pricing.EXAMPLE_COST, PRICES, shards=1)
    minutes = 30.44 * 24 * 60
    # three lanes' mappings long-polling: 15 receives a minute each at $0.40 per million
    assert idle["lines"]["event_source_mapping_polling"] == pytest.approx(3 * minutes * 15 * 0.4e-6, abs=1e-4)
    assert idle["lines"]["tick_checks"] == pytest.approx(
        minutes * pricing.check_usd(pricing.EXAMPLE_COST, P), abs=1e-4
    )
    assert idle["usd_per_month"] == pytest.approx(sum(idle["lines"].values()), abs=1e-3)
    # monitoring is reported beside it: 13 alarm metrics at $0.10 and one $3 dashboard
    assert idle["monitoring_usd_per_month"] == pytest.approx(13 * 0.10 + 3.0)


def _wheel_run(rate: float, wait_gb_s: float, p99: int = 5) -> dict:
    """One bench/wheel_lateness.py run as pricing reads it (hand-made, not measured)."""
    return {
        "rate_per_s": rate,
        "early_starts": 0,
        "start_lateness_ms": {"p50": 1, "p99": p99, "max": 40},
        "worker": {"wait_gb_s_per_task": wait_gb_s, "wait_ms_per_task": wait_gb_s * 2000},
    }


def _wheel() -> dict:
    return {
        "a_wheel": _wheel_run(1000, 0.02),
        "a_wheel_at_1m_per_day": _wheel_run(12, 0.06),
        "a_wheel_worker_256": _wheel_run(1000, 0.01, p99=7),
        "a_wheel_worker_256_at_1m_per_day": _wheel_run(12, 0.03),
    }


def test_each_variant_reads_its_own_measured_waits() -> None:
    wheel = _wheel()
    assert [w["wait_gb_s_per_task"] for w in pricing.waits_of(wheel)] == [0.02, 0.06]
    assert [w["wait_gb_s_per_task"] for w in pricing.waits_of(wheel, "_worker_256")] == [0.01, 0.03]
    assert pricing.waits_of(wheel, "_worker_128") == []
    assert pricing.waits_of(None) == []


def test_directions_price_each_change_from_the_measured_units() -> None:
    # Given the example's units with a CPU/latency split and a wheel share, and hand-made waits
    cost = example(
        lambda_gb_s={"api": 0.004, "worker": 0.003},
        lambda_gb_s_cpu={"api": 0.001, "worker": 0.002},
        dynamodb_wru_by_table={"taskplane-tasks": 3.0, "taskplane-wheel": 0.25},
    )
    result = pricing.directions(cost, PRICES, _wheel(), tasks_per_day=12 * 86_400)
    rows = result["directions"]
    base = rows["as_built"]
    assert base["saves"] == 0
    # a variant the harness did not run is left out, not priced from the wrong waits
    assert "worker_128mb" not in rows and "lead_300ms" not in rows
    # the smaller worker: its measured wait (0.03 GB-s at 12/s) and half the calls' latency; CPU alike
    small = rows["worker_256mb"]
    assert small["lines"]["worker_wait"] == pytest.approx(0.03 * P["lambda_gb_s_arm64"] * 1e6, abs=1e-4)
    assert small["lines"]["lambda_gb_s"] == pytest.approx(
        (0.004 + 0.002 + 0.001 * 256 / 512) * P["lambda_gb_s_arm64"] * 1e6, abs=1e-4
    )
    assert small["lateness"]["start_ms_at_1000_per_s"]["p99"] == 7
    # the smaller tick: the same day's tick priced at 128 MB
    tick = pricing.tick_usd_per_day(
        {**cost, "tick": {**cost["tick"], "memory_mb": 128}}, P, 1, tasks_per_day=12 * 86_400
    )
    assert rows["tick_128mb"]["lines"]["tick"] == pytest.approx(tick / (12 * 86_400) * 1e6, abs=1e-4)
    assert rows["tick_128mb"]["lines"]["tick"] < base["lines"]["tick"]
    # claims: the start write (1 WRU of a <1 KB item) becomes the wheel item's share, plus one read
    claims = rows["claims_batched"]
    assert claims["lines"]["dynamodb_writes"] == pytest.approx((4.02 - 1 + 0.25) * 0.625, abs=1e-4)
    assert claims["lines"]["dynamodb_reads"] == pytest.approx((0.31 + 1.0) * 0.125, abs=1e-4)
    assert rows["claims_batched_split"]["lines"]["dynamodb_writes"] == pytest.approx(
        (4.02 - 1 + 0.5) * 0.625, abs=1e-4
    )
    for row in rows.values():
        assert row["saves"] == pytest.approx(base["total"] - row["total"], abs=1e-3)
        assert row["goal_met"] is (row["total"] <= pricing.GOAL_USD_PER_MILLION)
    # the combination adds the savings of its parts (they touch different lines)
    both = rows["claims_worker_256_tick_128"]
    assert both["saves"] == pytest.approx(
        claims["saves"] + small["saves"] + rows["tick_128mb"]["saves"], abs=1e-3
    )
    # the contract's floor: the task writes as built, the 128 MB tick, and no hold at all
    floor = rows["bound_contract_tick_128_no_wait"]
    assert floor["lines"]["dynamodb_writes"] == base["lines"]["dynamodb_writes"]
    assert floor["lines"]["worker_wait"] == 0
    assert floor["saves"] == pytest.approx(
        base["lines"]["worker_wait"] + rows["tick_128mb"]["saves"], abs=1e-3
    )


def test_directions_scale_a_new_instances_set_up_by_the_memorys_cpu_share() -> None:
    # Given a hand-made cold start: 100 ms of platform build + 77 ms of first-call set-up at one core
    cold = {
        "handlers": {
            "worker": {"platform_build_median_ms": 100.0, "first_call_setup_median_ms": 77.0},
            "tick": {"platform_build_median_ms": 100.0, "first_call_setup_median_ms": 77.0},
        }
    }
    rows = pricing.directions(pricing.EXAMPLE_COST, PRICES, _wheel(), cold=cold)["directions"]
    # at 1,769 MB a function has one vCPU: 177 ms there, 1769/512 times that at the example's 512 MB
    assert rows["as_built"]["first_invocation_set_up_ms"] == {
        "worker": round(177 * 1769 / 512),
        "tick": round(177 * 1769 / 512),
    }
    assert rows["worker_256mb"]["first_invocation_set_up_ms"]["worker"] == round(177 * 1769 / 256)
    assert rows["tick_128mb"]["first_invocation_set_up_ms"]["tick"] == round(177 * 1769 / 128)
    # With the init-phase warm-up measured (80 ms more init at one core, 2 ms left for the first call),
    # the warm-up counts at a full vCPU (init) and only the rest at the memory's share
    for h in cold["handlers"].values():
        h["warm_up"] = {"warm_up_median_ms": 80.0, "first_call_median_ms": 2.0}
    warm = pricing.directions(pricing.EXAMPLE_COST, PRICES, _wheel(), cold=cold)["directions"]
    assert warm["worker_256mb"]["first_invocation_set_up_ms"]["worker"] == round(80 + 2 * 1769 / 256)
    assert warm["worker_256mb"]["first_invocation_set_up_without_warm_up_ms"]["worker"] == round(
        177 * 1769 / 256
    )
    # without cold-start results there is nothing to say
    assert (
        pricing.directions(pricing.EXAMPLE_COST, PRICES, _wheel())["directions"]["as_built"][
            "first_invocation_set_up_ms"
        ]
        is None
    )


def test_each_measured_target_is_priced_on_its_own_units() -> None:
    # Given the headline run (an HTTP target) and an echo run with 0.2 WRU and 0.1 RRU less per task
    cost = example()
    cost["target"] = "http"
    echo = copy.deepcopy(cost["units_per_task"])
    echo["dynamodb_wru"] -= 0.2
    echo["dynamodb_rru"] -= 0.1
    cost["by_target"] = {
        "http": {"target": "an HTTP target", "units_per_task": copy.deepcopy(cost["units_per_task"])},
        "echo": {"target": "echo", "units_per_task": echo},
    }
    result = pricing.price(cost, PRICES, tasks_per_day=1_000_000, shards=1)
    # Then the headline is the HTTP run's, and echo costs exactly its units' difference less
    http = result["by_target"]["http"]["usd_per_million_on_demand"]
    assert http == pytest.approx(result["usd_per_million"]["taskplane_on_demand"]["total"], abs=1e-4)
    assert result["by_target"]["echo"]["usd_per_million_on_demand"] == pytest.approx(
        http - 0.2 * 0.625 - 0.1 * 0.125, abs=1e-3
    )
    assert result["target"] == "http"


def test_per_batch_units_follow_the_loads_batch_size() -> None:
    """A million a day fills lane batches less than the cost bench's drain: every per-batch request
    (send, receive, delete, hold), invocation and breaker write is spread over fewer tasks."""
    cost = copy.deepcopy(pricing.EXAMPLE_COST)
    cost["units_per_task"]["lambda_requests"] = {"api": 0.01, "worker": 0.1}
    cost["units_per_task"]["dynamodb_by_item_kind"] = {"wru:taskplane-control:breaker": 0.08}
    tasks = cost["tasks"]
    cost["calls"] = {
        name: {"count": per_task * tasks, "per_task": per_task}
        for name, per_task in (
            ("sqs.SendMessageBatch", 0.1),
            ("sqs.ReceiveMessage", 0.1),
            ("sqs.DeleteMessageBatch", 0.1),
            ("sqs.ChangeMessageVisibilityBatch", 0.1),
            ("sqs.GetQueueAttributes", 0.05),  # the api's: not per batch
        )
    }
    full = [{"tasks_per_s": 12, "wait_gb_s_per_task": 0.0, "records_per_invocation": 10.0}]
    half = [{"tasks_per_s": 12, "wait_gb_s_per_task": 0.0, "records_per_invocation": 5.0}]
    assert pricing.batch_scale(cost, full, 12) == pytest.approx(1.0)
    assert pricing.batch_scale(cost, half, 12) == pytest.approx(2.0)
    assert pricing.batch_scale(cost, None, 12) == 1.0  # no harness figures: as measured
    at_full = pricing.taskplane_usd_per_task(cost, P, tasks_per_day=12 * 86_400, waits=full)
    at_half = pricing.taskplane_usd_per_task(cost, P, tasks_per_day=12 * 86_400, waits=half)
    assert at_half["sqs"] - at_full["sqs"] == pytest.approx(0.4 * P["sqs_request"])
    assert at_half["lambda_requests"] - at_full["lambda_requests"] == pytest.approx(0.1 * P["lambda_request"])
    assert at_half["dynamodb_writes"] - at_full["dynamodb_writes"] == pytest.approx(0.08 * P["dynamodb_wru"])
