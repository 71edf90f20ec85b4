"""Capacity model: what 1 million, 100 million and 1 billion tasks a day need, and what breaks first.

From the units per task measured by bench/cost.py (``bench/results/cost.json``), the published quotas
in ``bench/prices.json`` and the limits of taskplane's own settings (infra/config.py), at peaks of
``PEAK_FACTOR`` x the mean rate:

- **wheel shards**: enough that (a) each shard's tick keeps up (the measured tasks/s per shard) and
  (b) no wheel partition takes over 1,000 WCU/s. A wheel partition is ``"<shard>#<slot minute>"``:
  every entry due in one minute on one shard is written to one partition key, so with tasks
  submitted with similar delays the whole write rate of a shard lands on one key.
- **task-table partition keys** (``"<tenant>#<bucket>"``, bucket from the task id's last 4
  characters, ``task_buckets`` per tenant): enough buckets that the largest tenant's writes stay
  under 1,000 WCU/s per key.
- **worker concurrency** (peak tasks/s x worker seconds per task, the waits on AWS calls divided by
  the batch: a batch's records run at the same time), the Lambda scaling rate
  (1,000 environments per 10 s per function), the lanes' MaximumConcurrency,
- **API Gateway** (10,000 rps per account; tasks submitted in batches of 100; the stage's default
  throttle of 500 rps in infra/config.py), **DynamoDB** per-table throughput (40,000 WRU/s by
  default), **Step Functions** StartExecution (300/s, workflow runs only) and, for comparison, the
  alternatives' own quotas.
- **cost per day** (on-demand and provisioned) from bench/pricing.py, with the tick's cost at the
  shards needed.

Every demand is linear in the load, so the limit with the highest demand/limit ratio at a scale is
the first one the load reaches; ``first_limit`` names it with how the design passes it.

    python bench/capacity.py            # bench/results/cost.json -> bench/results/capacity.json
    python bench/capacity.py --example  # the hand-made example of bench/pricing.py (nothing written)
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pricing

from taskplane.domain.ring import DRAIN_MS, RING_CACHE_MS, Ring

RESULTS = pricing.RESULTS
SCALES = (1_000_000, 100_000_000, 1_000_000_000)
PEAK_FACTOR = 10
#: Wheel entries written per delayed task: its delivery. (Since commit 1d066ab the dead-worker watch
#: is the lane message's visibility timeout, no longer a wheel put and delete.)
WHEEL_WRITES_PER_TASK = 1
#: AWS calls the worker waits on per invocation (start and finish writes, the watch's visibility
#: change); a batch's records run at the same time, so the waits overlap within an invocation.
WORKER_WAITED_CALLS = 3
#: Share of all tasks from the largest tenant (1.0: one tenant sends everything, the worst case).
LARGEST_TENANT_SHARE = 1.0
#: The mean-to-peak ramp the worker's concurrency must follow.
RAMP_S = 60
#: taskplane's own ceilings (infra/config.py) and defaults.
CONFIG = {
    "shards_max": 64,
    "task_buckets_max": 64,
    "lane_concurrency_max": 1000,
    "lanes": 3,
    "default_shards": 1,
    "default_task_buckets": 1,
    "default_lane_concurrency_total": 25,
    "default_api_throttle_rps": 500,
    "api_batch": 100,
}


def quota(prices_doc: Mapping[str, Any], name: str) -> float:
    return float(prices_doc["quotas"][name]["value"])


def wheel_wru_per_task(cost: Mapping[str, Any]) -> float:
    """Wheel writes per task: measured by table (entries due in the same second share an item), else
    one entry per task."""
    by_table = cost["units_per_task"].get("dynamodb_wru_by_table") or {}
    wheel = [v for table, v in by_table.items() if table.endswith("wheel")]
    if wheel:
        return float(sum(wheel))
    return WHEEL_WRITES_PER_TASK * pricing.write_units(cost["item_bytes"]["wheel_entry_max"])


def task_table_wru_per_task(cost: Mapping[str, Any]) -> float:
    """Every measured WRU that is not a wheel write (the task table's, plus small control writes)."""
    return max(0.0, cost["units_per_task"]["dynamodb_wru"] - wheel_wru_per_task(cost))


def worker_seconds_per_task(cost: Mapping[str, Any], io_latency_ms: float = pricing.IO_LATENCY_MS) -> float:
    """Busy worker-environment seconds per task, so that concurrency = tasks/s x this.

    A batch's records run at the same time in one invocation (infra/config.py), so an invocation
    lasts about its records' CPU one after another (one interpreter) plus one round of waits on its
    AWS calls: ``cpu_s x batch + WORKER_WAITED_CALLS x io_latency``. Per task that is
    ``cpu_s + WORKER_WAITED_CALLS x io_latency / batch``, with batch = 1 / worker invocations per task
    (measured). A real target adds its own duration on top (echo here).
    """
    gb = cost["memory_mb"]["worker"] / 1024
    if "lambda_gb_s_cpu" in cost["units_per_task"]:
        # bench/cost.py's billed GB-s already hold both: CPU at the memory's vCPU share, and the
        # calls' latency with a batch's records overlapping.
        return float(cost["units_per_task"]["lambda_gb_s"].get("worker", 0.0)) / gb
    cpu_s = cost["units_per_task"]["lambda_gb_s"].get("worker", 0.0) / gb
    batch = 1 / max(cost["units_per_task"]["lambda_requests"].get("worker", 1.0), 1e-9)
    return cpu_s + WORKER_WAITED_CALLS * io_latency_ms / 1000 / batch


#: Lambda's memory for one full vCPU: a tick at this size dispatches vCPU/share times more per shard.
FULL_VCPU_MB = 1769


#: The most shards a tick runs for (on the ring and draining: functions/tick/handler.py MAX_SHARDS).
TICKING_SHARDS_MAX = 256


@functools.cache
def hottest_share(shards: int) -> float:
    """How many times the mean share of new entries the busiest shard of a ring of ``shards`` gets (the
    ring's exact arcs, domain/ring.py: virtual nodes balance within about +-20%, not perfectly)."""
    return max(Ring.of(shards).shares().values()) * shards


#: The share of its measured rate (bench/cost.py's tasks_per_s_per_shard) a shard's tick is sized to
#: carry at the peak. A tick is a queue, and its window read stalls its sends: every 100 ms poll reads
#: and parses the whole window on the loop that sends, so a shard's dispatch lateness follows its
#: utilization times the poll. In the modelled-AWS harness with the real adapters' CPU charged
#: (bench/wheel_lateness.py, 1,000 due/s as deployed): 3 shards (70%) p99 43 ms, 6 (35%) 22 ms, 8 (22%)
#: 16 ms. 22% keeps the dispatch goal (p99 <= 20 ms) until the tick reads its window off the send
#: path; docs/DEPLOY.md sizes wheel_shards by the same rule. (A million tasks a day stays on one shard.)
TICK_TARGET_UTILIZATION = 0.22


def tick_shards(load: float, per_shard: float) -> int:
    """The fewest shards whose busiest tick carries at most TICK_TARGET_UTILIZATION of ``per_shard``."""
    return ring_shards(load, per_shard * TICK_TARGET_UTILIZATION)


def ring_shards(load: float, per_shard: float) -> int:
    """The fewest shards whose busiest one (``hottest_share``) stays within ``per_shard``."""
    n = max(1, math.ceil(load / per_shard))
    while n < TICKING_SHARDS_MAX and load * hottest_share(n) / n > per_shard:
        n += 1
    return n


def shards_needed(cost: Mapping[str, Any], peak_tps: float, partition_wcu: float) -> dict[str, Any]:
    """Shards for the tick's throughput and the wheel partition's WCU: ``by_*`` if the load split
    evenly; ``needed`` with the ring's busiest shard (it gets ``hottest_share`` x the mean)."""
    per_shard = cost["tick"]["tasks_per_s_per_shard"]
    wru = wheel_wru_per_task(cost)
    by_tick = math.ceil(peak_tps / (per_shard * TICK_TARGET_UTILIZATION))
    by_partition = math.ceil(peak_tps * wru / partition_wcu)
    # The tick is CPU-bound: at tick_memory_mb=1769 it has a whole vCPU instead of memory/1769 of one.
    share = min(cost["tick"]["memory_mb"], FULL_VCPU_MB) / FULL_VCPU_MB
    needed = max(tick_shards(peak_tps, per_shard), ring_shards(peak_tps * wru, partition_wcu))
    needed_full = max(tick_shards(peak_tps, per_shard / share), ring_shards(peak_tps * wru, partition_wcu))
    return {
        "by_tick_throughput": by_tick,
        "by_partition_wcu": by_partition,
        "needed": needed,
        "needed_with_full_vcpu_tick": needed_full,
        "hottest_share": round(hottest_share(needed), 3),
    }


def reshard_figures(cost: Mapping[str, Any], prices_doc: Mapping[str, Any], shards: int) -> dict[str, Any]:
    """What changing the shard count costs at ``shards``: the share of new entries placed elsewhere by
    one more shard, how soon writers follow, and what a removed shard costs while it drains."""
    idle = pricing.idle_usd_per_month(cost, prices_doc, shards=1)["lines"]["tick_checks"]
    return {
        "moves_adding_one_shard": round(1 / (shards + 1), 4),
        "moves_doubling": 0.5,
        "applies_within_s": (60_000 + RING_CACHE_MS) // 1000,
        "existing_entries_move": False,
        "drain_days": round(DRAIN_MS / 86_400_000, 1),
        "drain_usd_per_removed_shard_month": round(idle, 4),
        "ticking_shards_max": TICKING_SHARDS_MAX,
    }


def limits_at(
    cost: Mapping[str, Any],
    prices_doc: Mapping[str, Any],
    tasks_per_day: float,
    waits: list[Mapping[str, float]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demands at one scale, and every limit as {name, demand, limit, ratio, remedy}."""
    mean_tps = tasks_per_day / pricing.SECONDS_PER_DAY
    peak_tps = PEAK_FACTOR * mean_tps
    u = cost["units_per_task"]
    part_wcu = quota(prices_doc, "dynamodb_partition_wcu_per_s")
    shards = shards_needed(cost, peak_tps, part_wcu)
    tenant_wru = peak_tps * LARGEST_TENANT_SHARE * task_table_wru_per_task(cost)
    buckets = max(1, math.ceil(tenant_wru / part_wcu))
    # The worker's own seconds per task, and its wait for due times at the peak's load (measured).
    worker_s = worker_seconds_per_task(cost) + pricing.wait_gb_s_per_task(waits, peak_tps) / (
        cost["memory_mb"]["worker"] / 1024
    )
    concurrency = peak_tps * worker_s
    mean_concurrency = mean_tps * worker_s
    scale_rate = quota(prices_doc, "lambda_scaling_per_10s") / 10  # environments per second
    api_rps = peak_tps * u["apigw_requests"]
    table_wru = peak_tps * u["dynamodb_wru"]
    per_lane = concurrency  # worst case: every task on one lane
    demands = {
        "mean_tasks_per_s": round(mean_tps, 2),
        "peak_tasks_per_s": round(peak_tps, 2),
        "wheel_shards": shards,
        "reshard": reshard_figures(cost, prices_doc, shards["needed"]),
        "task_buckets_needed": buckets,
        "largest_tenant_share": LARGEST_TENANT_SHARE,
        "task_table_peak_wru_per_s_largest_tenant": round(tenant_wru, 1),
        "dynamodb_peak_wru_per_s": round(table_wru, 1),
        "dynamodb_peak_rru_per_s": round(peak_tps * u["dynamodb_rru"], 1),
        "worker_seconds_per_task": round(worker_s, 4),
        "worker_concurrency_peak": round(concurrency, 1),
        "worker_concurrency_mean": round(mean_concurrency, 1),
        "worker_invocations_per_s_peak": round(peak_tps * u["lambda_requests"].get("worker", 1.0), 1),
        "ramp_environments_per_s": round((concurrency - mean_concurrency) / RAMP_S, 2),
        "api_requests_per_s_peak": round(api_rps, 1),
        "sqs_in_flight_peak": round(peak_tps * worker_s, 1),
    }
    rows = [
        (
            f"tick throughput of 1 shard (default shards=1; {TICK_TARGET_UTILIZATION:.0%} of its measured rate)",
            peak_tps,
            cost["tick"]["tasks_per_s_per_shard"] * TICK_TARGET_UTILIZATION * CONFIG["default_shards"],
            f"more wheel shards, online (a deploy of wheel_shards; new entries follow within "
            f"{(60_000 + RING_CACHE_MS) // 1000} s): shards={shards['needed']} (one tick each, the busiest "
            f"taking {hottest_share(shards['needed']):.2f}x the mean), or "
            f"{shards['needed_with_full_vcpu_tick']} with tick_memory_mb={FULL_VCPU_MB} (a whole vCPU each)",
        ),
        (
            "wheel partition 1,000 WCU/s (shard#minute key, shards=1)",
            peak_tps * wheel_wru_per_task(cost) / CONFIG["default_shards"],
            part_wcu,
            f"more wheel shards (online): shards={shards['needed']} spreads one minute over that many keys",
        ),
        (
            "wheel shards allowed by infra/config.py (64)",
            shards["needed"],
            CONFIG["shards_max"],
            "raise the cap in infra/config.py (settings allow 256 shards on the ring and draining), "
            "or a finer slot than a minute",
        ),
        (
            "task partition 1,000 WCU/s (tenant#bucket key, task_buckets=1)",
            tenant_wru / CONFIG["default_task_buckets"],
            part_wcu,
            f"more buckets per tenant: task_buckets={buckets} (fixed for the table's life: set before go-live)",
        ),
        (
            "task buckets allowed by infra/config.py (64)",
            buckets,
            CONFIG["task_buckets_max"],
            "raise the cap (le=64) or split the largest tenant; listing queries every bucket",
        ),
        (
            "DynamoDB table throughput 40,000 WRU/s (default quota)",
            table_wru,
            quota(prices_doc, "dynamodb_table_wru_per_s"),
            "quota increase (adjustable); pre-warm the table (warm throughput) before the peak",
        ),
        (
            "Lambda account concurrency 1,000 (default)",
            concurrency + demands["api_requests_per_s_peak"] * 0.1,
            quota(prices_doc, "lambda_concurrency"),
            "quota increase (adjustable to tens of thousands)",
        ),
        (
            "worker lanes' MaximumConcurrency (default 10+10+5)",
            concurrency,
            CONFIG["default_lane_concurrency_total"],
            "raise lane_concurrency (up to 1,000 per lane in cdk.json)",
        ),
        (
            "one lane's MaximumConcurrency cap 1,000",
            per_lane,
            CONFIG["lane_concurrency_max"],
            "spread tasks over the three lanes, or more queues per lane",
        ),
        (
            "Lambda scaling 1,000 environments / 10 s (mean -> peak in 60 s)",
            demands["ramp_environments_per_s"],
            scale_rate,
            "keep warm headroom (provisioned concurrency) or a slower ramp",
        ),
        (
            "API stage throttle 500 rps (infra/config.py default)",
            api_rps,
            CONFIG["default_api_throttle_rps"],
            "raise api_throttle.rate_limit (up to the account's 10,000)",
        ),
        (
            "API Gateway account 10,000 rps",
            api_rps,
            quota(prices_doc, "apigw_account_rps"),
            "quota increase; bigger batches (POST /v1/tasks/batch takes 500)",
        ),
        (
            "SQS in-flight 120,000 per queue",
            demands["sqs_in_flight_peak"],
            quota(prices_doc, "sqs_inflight_per_queue"),
            "more queues per lane",
        ),
    ]
    limits = [
        {
            "limit": name,
            "demand": round(demand, 2),
            "limit_value": limit,
            "ratio": round(demand / limit, 4),
            "hit": demand > limit,
            "remedy": remedy,
        }
        for name, demand, limit, remedy in rows
    ]
    limits.sort(key=lambda row: row["ratio"], reverse=True)
    return demands, limits


def alternatives_at(prices_doc: Mapping[str, Any], tasks_per_day: float) -> dict[str, Any]:
    """The same peak on the alternatives' own default quotas (StartExecution applies to workflows)."""
    peak = PEAK_FACTOR * tasks_per_day / pricing.SECONDS_PER_DAY
    sfn = quota(prices_doc, "sfn_start_execution_per_s")
    sch = quota(prices_doc, "scheduler_invocations_per_s")
    return {
        "step_functions_start_execution_ratio": round(peak / sfn, 3),
        "eventbridge_scheduler_invocations_ratio": round(peak / sch, 3),
        "taskplane_workflow_runs_per_s_ceiling": sfn,
    }


def model(
    cost: Mapping[str, Any],
    prices_doc: Mapping[str, Any] | None = None,
    scales: tuple[int, ...] = SCALES,
    waits: list[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    prices_doc = prices_doc if prices_doc is not None else pricing.load_prices()
    out = []
    for tasks_per_day in scales:
        demands, limits = limits_at(cost, prices_doc, tasks_per_day, waits)
        shards = demands["wheel_shards"]["needed"]
        priced = pricing.price(cost, prices_doc, tasks_per_day=tasks_per_day, shards=shards, waits=waits)
        per_m = priced["usd_per_million"]
        millions = tasks_per_day / 1_000_000
        ddb = {
            mode: round(
                millions * (per_m[key]["lines"]["dynamodb_writes"] + per_m[key]["lines"]["dynamodb_reads"]), 2
            )
            for mode, key in (("on_demand", "taskplane_on_demand"), ("provisioned", "taskplane_provisioned"))
        }
        hit = [row for row in limits if row["hit"]]
        out.append(
            {
                "tasks_per_day": tasks_per_day,
                **demands,
                "dynamodb_usd_per_day": ddb,
                "total_usd_per_day": {
                    "on_demand": round(millions * per_m["taskplane_on_demand"]["total"], 2),
                    "provisioned": round(millions * per_m["taskplane_provisioned"]["total"], 2),
                    "eventbridge_scheduler": round(millions * per_m["eventbridge_scheduler"]["total"], 2),
                    "step_functions_standard": round(millions * per_m["step_functions_standard"]["total"], 2),
                },
                "usd_per_million": {k: v["total"] for k, v in per_m.items()},
                "first_limit": limits[0]["limit"] if hit else None,
                "first_limit_remedy": limits[0]["remedy"] if hit else None,
                "nearest_limit": None if hit else {"limit": limits[0]["limit"], "ratio": limits[0]["ratio"]},
                "limits_hit": [row["limit"] for row in hit],
                "limits": limits,
                "alternatives": alternatives_at(prices_doc, tasks_per_day),
            }
        )
    return {
        "peak_factor": PEAK_FACTOR,
        "scales": out,
        "assumptions": [
            f"Peak = {PEAK_FACTOR} x the mean rate (tasks a day / 86,400).",
            f"Wheel: {wheel_wru_per_task(cost):.2f} WRU per delayed task (measured: the tasks of a batch "
            "due in the same second share an item; the dead-worker watch is the held lane message), and "
            "all of a shard's writes land on one shard#minute key (tasks submitted with similar delays).",
            "Shards on a consistent hash ring (256 virtual nodes each): the busiest shard gets "
            "hottest_share x the mean of new entries (exact from the ring's arcs: 1.03 at 3 shards, about "
            "1.2 from 8), so shards needed = the fewest whose busiest shard keeps up. The shard count "
            "changes online (a deploy of wheel_shards): one more shard re-homes 1/(n+1) of new entries; "
            "entries already written stay and drain where they are (a removed shard is ticked for "
            f"{DRAIN_MS / 86_400_000:.0f} days: what the wheel can hold), so a reshard relieves a hot shard "
            "only as its existing entries come due.",
            "Tick throughput per shard: bench/cost.py's measured tick CPU per task at the tick's memory "
            f"share of a vCPU (memory / {FULL_VCPU_MB} MB); the tick is one thread, so more than one vCPU "
            "does not help it.",
            f"Largest tenant sends {LARGEST_TENANT_SHARE:.0%} of the tasks; its task-table WRU/s = peak x "
            "(measured WRU per task - wheel WRU per task).",
            "Worker seconds per task = bench/cost.py's billed worker GB-s / GB: its CPU at the memory's "
            "vCPU share plus the waits on its AWS calls, a batch's records overlapping; plus its wait for "
            "due times at the peak's load (bench/wheel_lateness.py, measured at ~12 and 1,000 tasks due a "
            "second); a real target's own duration comes on top.",
            f"Lambda scaling: the worker goes from mean to peak concurrency within {RAMP_S} s.",
            "Lambda account concurrency counts the worker and the api (0.1 s per batch request).",
            "Limits at taskplane's defaults (shards=1, task_buckets=1, lanes 10+10+5, API throttle 500 rps) "
            "and AWS's default quotas; every one has a remedy listed.",
            "Cost per day: bench/pricing.py at that scale with the tick priced for the shards needed.",
        ],
    }


def run(cost: Mapping[str, Any] | None = None, *, write: bool = True) -> dict[str, Any] | None:
    if cost is None:
        path = RESULTS / "cost.json"
        if not path.exists():
            return None
        cost = json.loads(path.read_text())
    result = model(cost, waits=pricing.load_waits())
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--example", action="store_true", help="model the hand-made example; write nothing")
    args = parser.parse_args()
    result = run(pricing.EXAMPLE_COST, write=False) if args.example else run()
    if result is None:
        raise SystemExit("bench/results/cost.json is missing: run bench/cost.py first")
    for s in result["scales"]:
        print(
            f"{s['tasks_per_day']:>13,} /day  peak {s['peak_tasks_per_s']:>9,.0f}/s  shards {s['wheel_shards']['needed']:>3}"
            f"  buckets {s['task_buckets_needed']:>3}  workers {s['worker_concurrency_peak']:>7,.0f}"
            f"  ${s['total_usd_per_day']['on_demand']:>9,.2f}/day  first: {s['first_limit'] or '-'}"
        )


if __name__ == "__main__":
    main()
