"""USD per million delayed tasks, from the billable units per task that bench/cost.py measured.

Input: ``bench/results/cost.json`` (written by bench/cost.py; shape in ``EXAMPLE_COST``, the
hand-made example the tests use; it is *not* a measurement). Prices: ``bench/prices.json``
(published us-east-1 list prices, each with its source and the date it was checked).

Everything here is a pure function of (units, prices, settings) except ``run``, which reads and
writes files. Four designs are priced on the same workload:

- **taskplane, DynamoDB on-demand**: the measured units per task, line by line, plus the tick
  amortized over the day's tasks (shards x seconds per day x duty x tick GB x price / tasks per day,
  and the per-shard lease and poll units that a shard spends whatever the load).
- **taskplane, DynamoDB provisioned**: the same units, DynamoDB priced per WCU-hour / RCU-hour at a
  stated target utilization (auto scaling tracking the load at 70% by default).
- **EventBridge Scheduler**: one schedule per task (CreateSchedule + one invocation) whose target is
  the worker Lambda, invoked once per task (no batching), and the same state tracking as taskplane
  (task record put, start and finish writes).
- **Step Functions Standard**: one execution per task, ``Wait`` then a ``Task`` state invoking the
  worker Lambda; ``SFN_TRANSITIONS_PER_TASK`` transitions (see ``sfn_transitions``), the Lambda
  invocation, and the task record put (the execution history holds the rest of the history).

Both alternatives keep taskplane's ingress (API Gateway in batches, the api Lambda) so that the
comparison is about scheduling and dispatch, not about how tasks arrive.

    python bench/pricing.py                      # bench/results/cost.json -> bench/results/pricing.json
    python bench/pricing.py --example            # the hand-made example (printed, not written)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PRICES_PATH = HERE / "prices.json"

SECONDS_PER_DAY = 86_400
#: Lambda gives a function one full vCPU at 1,769 MB and a proportional share below.
FULL_VCPU_MB = 1769
#: The issue's goal: USD per million delayed tasks, end to end, state history included.
GOAL_USD_PER_MILLION = 2.50
#: Provisioned capacity is priced as consumed units / this utilization (auto scaling's target).
TARGET_UTILIZATION = 0.70
#: Round-trip of one DynamoDB or SQS call from Lambda in the Region, billed as Lambda duration while
#: the handler waits (the same figure bench/wheel_lateness.py injects for DynamoDB).
IO_LATENCY_MS = 5.0
#: Per wheel shard, whatever the load (README, "Billable requests per task"): the lease/cursor
#: UpdateItem once a second and 10 window Queries a second at 0.5 RRU each.
TICK_FIXED_WRU_PER_S = 1.0
TICK_FIXED_RRU_PER_S = 5.0
#: A worker instance writes a target's duration sketch at most once per this many seconds
#: (services/latency.py FLUSH_EVERY_MS), one write per part its durations fall in.
SKETCH_FLUSH_EVERY_S = 30
#: Worker instances writing sketches at a low load: the event source mapping's five pollers keep up to
#: five batches (five instances) going at once; more as the load needs (SKETCH_BATCH_S per batch of 10).
SKETCH_MIN_INSTANCES = 5
SKETCH_BATCH_S = 1.0
#: The shard's rule invokes the tick once a minute (scheduled rules are free): idle, that is a check
#: that ends at once; busy, one that sees the running tick and ends at once.
TICK_INVOCATIONS_PER_DAY = 1_440
#: A tick runs while an entry is due within this many seconds (services/tick.py, IDLE_HORIZON_MS).
IDLE_HORIZON_S = 75
#: A busy tick hands over to a successor every span (functions/tick/handler.py, TICK_SPAN_MS).
TICK_SPAN_S = 300
DAYS_PER_MONTH_IDLE = 30.44
#: Lanes with an event source mapping, each long-polled by it even when empty.
LANES = 3
#: CloudWatch alarm metrics and dashboards one environment creates (infra/capabilities/monitoring.py
#: and function.py): error rate of the api, worker, tick and step (2 metrics each), API 5xx rate (2),
#: DLQ not empty, tick lag (one Metrics Insights query), tick stopped.
ALARM_METRICS = 4 * 2 + 2 + 1 + 1 + 1
DASHBOARDS = 1
#: Calls made by the SQS event source mapping or by the tick's window reads, not by a handler that
#: waits on them per task: excluded from the modelled I/O wait.
NOT_WAITED = frozenset(
    {"sqs.ReceiveMessage", "sqs.DeleteMessage", "sqs.DeleteMessageBatch", "dynamodb.Query"}
)

#: Step Functions Standard bills "a state transition each time a step of your workflow is executed,
#: retries included" (aws.amazon.com/step-functions/pricing). A Wait state then a Task state: 2.
SFN_STATES = ("Wait", "Task")

#: A hand-made example of bench/cost.py's output, for tests and ``--example``. Not a measurement.
EXAMPLE_COST: dict[str, Any] = {
    "tasks": 10_000,
    "workload": "hand-made example (not measured)",
    "units_per_task": {
        "dynamodb_wru": 4.02,
        "dynamodb_rru": 0.31,
        "sqs_requests": 1.3,
        "apigw_requests": 0.01,
        "lambda_requests": {"api": 0.01, "worker": 0.1},
        "lambda_gb_s": {"api": 0.004, "worker": 0.003},
    },
    "tick": {"memory_mb": 512, "duty": 1.0333, "cpu_ms_per_task": 0.4, "tasks_per_s_per_shard": 1200.0},
    "calls": {
        "dynamodb.PutItem": {"count": 20_000, "wru": 20_000.0, "rru": 0.0},
        "dynamodb.BatchWriteItem": {"count": 400, "wru": 10_000.0, "rru": 0.0},
        "dynamodb.UpdateItem": {"count": 20_000, "wru": 20_000.0, "rru": 0.0},
        "dynamodb.Query": {"count": 6_200, "wru": 0.0, "rru": 3_100.0},
        "sqs.SendMessageBatch": {"count": 1_000, "wru": 0.0, "rru": 0.0},
        "sqs.ReceiveMessage": {"count": 1_000, "wru": 0.0, "rru": 0.0},
        "sqs.DeleteMessageBatch": {"count": 1_000, "wru": 0.0, "rru": 0.0},
    },
    "item_bytes": {"task_max": 812, "wheel_entry_max": 190},
    "memory_mb": {"api": 1024, "worker": 512, "tick": 256},
}


# -- prices --------------------------------------------------------------------------------------------
def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def unit_prices(prices_doc: Mapping[str, Any]) -> dict[str, float]:
    """USD per single unit for every price in prices.json (``usd / per``)."""
    return {name: float(p["usd"]) / float(p["per"]) for name, p in prices_doc["prices"].items()}


# -- small arithmetic ----------------------------------------------------------------------------------
def write_units(item_bytes: int) -> int:
    """WRU of one standard write of an item this size (1 KB per unit, at least 1)."""
    return max(1, math.ceil(item_bytes / 1024))


def sfn_transitions(states: tuple[str, ...] = SFN_STATES, retries: int = 0) -> int:
    """Billed Standard transitions of one execution: one per state executed, plus one per retry.

    AWS's pricing page: "Step Functions counts a state transition each time a step of your workflow
    is executed ... including retries". Starting and ending the execution are not steps, so
    ``Wait -> Task -> (end)`` is 2 transitions; some third-party calculators count the start as a
    third, which the ``sfn_transitions_high`` figure in the output shows beside it.
    """
    return len(states) + retries


SFN_TRANSITIONS_PER_TASK = sfn_transitions()


def _sum(value: float | Mapping[str, float]) -> float:
    return float(sum(value.values())) if isinstance(value, Mapping) else float(value)


def io_calls_per_task(cost: Mapping[str, Any]) -> float:
    """AWS calls per task that a handler waits on (every counted call but ``NOT_WAITED``)."""
    calls = cost.get("calls") or {}
    waited = sum(c["count"] for name, c in calls.items() if name not in NOT_WAITED)
    return waited / float(cost["tasks"])


def per_million(usd_per_task: Mapping[str, float]) -> dict[str, float]:
    return {k: v * 1_000_000 for k, v in usd_per_task.items()}


def _rounded(lines: Mapping[str, float]) -> dict[str, Any]:
    total = sum(lines.values())
    return {"lines": {k: round(v, 4) for k, v in lines.items()}, "total": round(total, 4)}


# -- taskplane -----------------------------------------------------------------------------------------
def tick_busy_fraction(tasks_per_day: float, shards: int) -> float:
    """The share of the day a shard's tick runs: while some entry is due within its idle horizon.
    With tasks due at random (Poisson) that is 1 - exp(-rate x horizon): all day from about one task a
    minute per shard, almost never when idle."""
    rate = tasks_per_day / SECONDS_PER_DAY / max(1, shards)
    return 1 - math.exp(-rate * IDLE_HORIZON_S)


def check_usd(
    cost: Mapping[str, Any],
    p: Mapping[str, float],
    *,
    provisioned: bool = False,
    target_utilization: float = TARGET_UTILIZATION,
) -> float:
    """One invocation of the tick that only looks (bench/cost.py ``idle_check``: a lease read, a wheel
    query, a cursor write): its request, its billed duration and its units."""
    check = cost.get("idle_check") or {}
    gb = cost["tick"]["memory_mb"] / 1024
    share = min(cost["tick"]["memory_mb"], FULL_VCPU_MB) / FULL_VCPU_MB
    seconds = (check.get("cpu_ms", 2.0) / share + check.get("io_ms", 18.0)) / 1000
    return (
        p["lambda_request"]
        + seconds * gb * p["lambda_gb_s_arm64"]
        + check.get("wru", 1.0) * wru_price(p, provisioned, target_utilization)
        + check.get("rru", 1.5) * rru_price(p, provisioned, target_utilization)
    )


def tick_usd_per_day(
    cost: Mapping[str, Any],
    p: Mapping[str, float],
    shards: int,
    *,
    tasks_per_day: float = 0.0,
    provisioned: bool = False,
    target_utilization: float = TARGET_UTILIZATION,
) -> float:
    """What the wheel's ticks cost in a day.

    A shard's tick runs only while something is due soon (``tick_busy_fraction``): then ``duty`` of
    the time (its successor waits for the lease at each hand-over) at ``tick.memory_mb``, spending its
    lease/cursor writes and window Queries every second; besides, the shard's rule invokes it once a
    minute, and each of those invocations only looks (``check_usd``).
    """
    tick = cost["tick"]
    gb = tick["memory_mb"] / 1024
    busy_s = shards * SECONDS_PER_DAY * tick_busy_fraction(tasks_per_day, shards)
    lambda_usd = busy_s * tick["duty"] * gb * p["lambda_gb_s_arm64"]
    lambda_usd += busy_s / TICK_SPAN_S * p["lambda_request"]  # the hand-overs' invocations
    checks = (
        shards
        * TICK_INVOCATIONS_PER_DAY
        * check_usd(cost, p, provisioned=provisioned, target_utilization=target_utilization)
    )
    wru = busy_s * tick.get("lease_wru_per_s", TICK_FIXED_WRU_PER_S)
    rru = busy_s * TICK_FIXED_RRU_PER_S
    if "query_bytes_per_task" in tick:
        # Measured: each window Query costs at least half a unit (eventually consistent) and more as
        # the entries in the window grow: the floor while busy, or the load's bytes, whichever is more.
        floor = busy_s * tick["queries_per_s"] * 0.5
        rru = max(floor, tasks_per_day * tick["query_bytes_per_task"] / 4096 * 0.5)
    return (
        lambda_usd
        + checks
        + wru * wru_price(p, provisioned, target_utilization)
        + rru * rru_price(p, provisioned, target_utilization)
    )


def at_load(points: list[tuple[float, float]], tasks_per_s: float) -> float | None:
    """A measured figure at a load, from (tasks/s, value) points: log-linear between them, the nearest
    beyond them; None without points."""
    points = sorted(points)
    if not points:
        return None
    if tasks_per_s <= points[0][0]:
        return points[0][1]
    if tasks_per_s >= points[-1][0]:
        return points[-1][1]
    for (r0, v0), (r1, v1) in itertools.pairwise(points):
        if r0 <= tasks_per_s <= r1:
            t = (math.log(tasks_per_s) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return v0 + t * (v1 - v0)
    return points[-1][1]


def wait_gb_s_per_task(waits: list[Mapping[str, float]] | None, tasks_per_s: float) -> float:
    """The worker's billed wait for due times (GB-s per task) at a load, from bench/wheel_lateness.py's
    measured points (``at_load``)."""
    found = at_load([(w["tasks_per_s"], w["wait_gb_s_per_task"]) for w in waits or []], tasks_per_s)
    return 0.0 if found is None else found


#: SQS requests made once per lane batch (the tick's send, the mapping's receive and delete, the
#: worker's holds): their count per task follows the batch size, not the task count.
PER_BATCH_SQS = (
    "sqs.SendMessageBatch",
    "sqs.ReceiveMessage",
    "sqs.DeleteMessageBatch",
    "sqs.ChangeMessageVisibilityBatch",
)


def invocations_per_record(waits: list[Mapping[str, float]] | None, tasks_per_s: float) -> float | None:
    """Worker invocations (lane batches) per record handled at a load, from bench/wheel_lateness.py's
    measured points as ``wait_gb_s_per_task`` reads them (per record, not per task: the harness's
    retries are records of their own); None when the harness did not report them."""
    points = [
        (w["tasks_per_s"], 1 / w["records_per_invocation"])
        for w in waits or []
        if w.get("records_per_invocation")
    ]
    return at_load(points, tasks_per_s)


def batch_scale(
    cost: Mapping[str, Any], waits: list[Mapping[str, float]] | None, tasks_per_s: float
) -> float:
    """How many more (or fewer) lane batches a task shares at this load than in bench/cost.py's run.

    bench/cost.py drains 10,000 tasks as fast as they come due, so its worker batches are full (about
    ten records); at a million a day the tick's groups hold fewer (the harness's modelled
    mapping, ``invocations_per_record``), so every per-batch request is spread over fewer tasks. 1.0
    when either figure is missing."""
    at_load = invocations_per_record(waits, tasks_per_s)
    measured = float((cost["units_per_task"].get("lambda_requests") or {}).get("worker", 0.0))
    if at_load is None or measured <= 0:
        return 1.0
    return at_load / measured


def per_batch_units(cost: Mapping[str, Any]) -> tuple[float, float]:
    """(SQS requests, DynamoDB WRU) per task that bench/cost.py measured once per lane batch: the
    ``PER_BATCH_SQS`` requests and the circuit breakers' end-of-batch writes."""
    calls = cost.get("calls") or {}
    tasks = float(cost.get("tasks") or 1)
    sqs = sum(
        float(calls[name]["per_task"]) if "per_task" in calls[name] else calls[name]["count"] / tasks
        for name in PER_BATCH_SQS
        if name in calls
    )
    kinds = cost["units_per_task"].get("dynamodb_by_item_kind") or {}
    breaker = sum(v for k, v in kinds.items() if k.startswith("wru:") and k.endswith(":breaker"))
    return sqs, float(breaker)


def idle_usd_per_month(
    cost: Mapping[str, Any], prices_doc: Mapping[str, Any], *, shards: int = 1, lanes: int = LANES
) -> dict[str, Any]:
    """What one environment costs a month with no task due: the platform's own lines, and its
    monitoring (alarms and a dashboard, free within an account's free tier) beside them."""
    p = unit_prices(prices_doc)
    minutes = DAYS_PER_MONTH_IDLE * 24 * 60
    receives = float(prices_doc["quotas"]["sqs_esm_idle_receives_per_min"]["value"])
    check = cost.get("idle_check") or {}
    log_bytes = check.get("log_bytes", 0.0)
    platform = {
        "tick_checks": shards * minutes * check_usd(cost, p),
        "tick_check_logs": shards * minutes * log_bytes / 2**30 * p.get("cloudwatch_logs_ingest_gb", 0.0),
        "event_source_mapping_polling": lanes * minutes * receives * p["sqs_request"],
        # The tick's function traces only what its caller traced (PassThrough): the rule's checks
        # record no X-Ray trace (infra/capabilities/scheduler.py).
        "xray_traces": 0.0,
        "dynamodb_storage": 0.0,
    }
    monitoring = {
        "cloudwatch_alarms": ALARM_METRICS * p.get("cloudwatch_alarm_metric_month", 0.0),
        "cloudwatch_dashboard": DASHBOARDS * p.get("cloudwatch_dashboard_month", 0.0),
    }
    return {
        "usd_per_month": round(sum(platform.values()), 4),
        "lines": {k: round(v, 4) for k, v in platform.items()},
        "monitoring_usd_per_month": round(sum(monitoring.values()), 4),
        "monitoring_lines": {k: round(v, 4) for k, v in monitoring.items()},
        "shards": shards,
        "assumptions": [
            f"{shards} shard(s): the rule invokes the tick {TICK_INVOCATIONS_PER_DAY:,} times a day; each "
            "invocation finds nothing due and ends (bench/cost.py's measured idle check: "
            f"{check.get('calls', {})}, {check.get('cpu_ms', '?')} ms of CPU, {check.get('io_ms', '?')} ms "
            "of modelled call latency).",
            f"The worker's {lanes} event source mappings poll their empty lanes: {receives:.0f} "
            "ReceiveMessage requests a minute each (five 20-second long polls; measured by users, not "
            "published by AWS).",
            "Empty tables: no storage worth a cent; DynamoDB on-demand, API Gateway, Step Functions, SNS, "
            "EventBridge scheduled rules and AWS-managed keys bill nothing idle.",
            f"Monitoring apart: {ALARM_METRICS} alarm metrics and {DASHBOARDS} dashboard at list price "
            "(an account's first 10 alarm metrics and 3 dashboards are free).",
        ],
    }


#: Days a finished task is kept (infra/config.py retention_days default); DynamoDB adds 100 bytes
#: of index overhead to every item's stored size.
RETENTION_DAYS = 30
ITEM_OVERHEAD_BYTES = 100
DAYS_PER_MONTH = 30.44


def storage_usd_per_task(cost: Mapping[str, Any], p: Mapping[str, float]) -> float:
    """Keeping one finished task's item (its history included) for RETENTION_DAYS."""
    price = p.get("dynamodb_storage_gb_month", 0.0)
    gb = (cost["item_bytes"]["task_max"] + ITEM_OVERHEAD_BYTES) / 2**30
    return gb * price * RETENTION_DAYS / DAYS_PER_MONTH


def sketch_wru_per_task(cost: Mapping[str, Any], tasks_per_day: float) -> tuple[float, float]:
    """(measured, at this load) duration-sketch write units per task. bench/cost.py's one worker
    process runs far faster than one instance at a day's load, so its sketch writes per task are low:
    at the load, each busy instance writes each target's minute (``sketch_writes_per_add`` writes,
    measured) once per SKETCH_FLUSH_EVERY_S."""
    u = cost["units_per_task"]
    kinds = u.get("dynamodb_by_item_kind") or {}
    measured = sum(v for k, v in kinds.items() if k.startswith("wru:") and k.endswith(":sketch"))
    per_add = u.get("sketch_writes_per_add")
    if not per_add:
        return measured, measured  # a run from before the throttle: every batch wrote
    tasks_per_s = tasks_per_day / SECONDS_PER_DAY
    instances = max(SKETCH_MIN_INSTANCES, math.ceil(tasks_per_s / 10 * SKETCH_BATCH_S))
    return measured, max(measured, instances * per_add / SKETCH_FLUSH_EVERY_S / tasks_per_s)


def wru_price(p: Mapping[str, float], provisioned: bool, target_utilization: float) -> float:
    """USD per consumed write unit: on-demand, or a WCU-hour spread over 3,600 s at the utilization."""
    return p["dynamodb_wcu_hour"] / 3600 / target_utilization if provisioned else p["dynamodb_wru"]


def rru_price(p: Mapping[str, float], provisioned: bool, target_utilization: float) -> float:
    return p["dynamodb_rcu_hour"] / 3600 / target_utilization if provisioned else p["dynamodb_rru"]


def taskplane_usd_per_task(
    cost: Mapping[str, Any],
    p: Mapping[str, float],
    *,
    tasks_per_day: float,
    shards: int = 1,
    provisioned: bool = False,
    target_utilization: float = TARGET_UTILIZATION,
    io_latency_ms: float = IO_LATENCY_MS,
    waits: list[Mapping[str, float]] | None = None,
) -> dict[str, float]:
    """USD per task by line for taskplane itself."""
    u = cost["units_per_task"]
    worker_gb = cost["memory_mb"]["worker"] / 1024
    tasks_per_s = tasks_per_day / SECONDS_PER_DAY
    sketch = sketch_wru_per_task(cost, tasks_per_day)
    # Per-batch requests and writes at this load's batch size, not the bench's full batches.
    more = batch_scale(cost, waits, tasks_per_s) - 1.0
    batch_sqs, batch_wru = per_batch_units(cost)
    worker_requests = float((u.get("lambda_requests") or {}).get("worker", 0.0))
    return {
        # the worker waiting, billed, for the due times of the deliveries that came in a lead ahead
        "worker_wait": wait_gb_s_per_task(waits, tasks_per_s) * p["lambda_gb_s_arm64"],
        # the duration sketch's writes at this load, not at the bench's (sketch_wru_per_task)
        "dynamodb_writes": (u["dynamodb_wru"] - sketch[0] + sketch[1] + batch_wru * more)
        * wru_price(p, provisioned, target_utilization),
        "dynamodb_reads": u["dynamodb_rru"] * rru_price(p, provisioned, target_utilization),
        "sqs": (u["sqs_requests"] + batch_sqs * more) * p["sqs_request"],
        "lambda_requests": (_sum(u["lambda_requests"]) + worker_requests * more) * p["lambda_request"],
        "lambda_gb_s": _sum(u["lambda_gb_s"]) * p["lambda_gb_s_arm64"],
        # bench/cost.py's GB-s include the calls' latency when it reports the CPU part apart
        "lambda_io_wait": 0.0
        if "lambda_gb_s_cpu" in u
        else io_calls_per_task(cost) * io_latency_ms / 1000 * worker_gb * p["lambda_gb_s_arm64"],
        "api_gateway": u["apigw_requests"] * p["apigw_rest_request"],
        # the task's record and history, kept retention_days (TTL deletes are free)
        "dynamodb_storage": storage_usd_per_task(cost, p),
        # what the handlers log and their EMF metrics documents, as CloudWatch Logs ingests them
        "cloudwatch_logs": u.get("log_bytes", 0.0) / 2**30 * p.get("cloudwatch_logs_ingest_gb", 0.0),
        "tick": tick_usd_per_day(
            cost,
            p,
            shards,
            tasks_per_day=tasks_per_day,
            provisioned=provisioned,
            target_utilization=target_utilization,
        )
        / tasks_per_day,
    }


# -- the alternatives ----------------------------------------------------------------------------------
def _ingress(cost: Mapping[str, Any], p: Mapping[str, float]) -> dict[str, float]:
    """API Gateway and the api Lambda, as measured for taskplane (the same batched submission)."""
    u = cost["units_per_task"]
    return {
        "api_gateway": u["apigw_requests"] * p["apigw_rest_request"],
        "api_lambda": u["lambda_requests"].get("api", 0.0) * p["lambda_request"]
        + u["lambda_gb_s"].get("api", 0.0) * p["lambda_gb_s_arm64"],
    }


def _worker_once(
    cost: Mapping[str, Any], p: Mapping[str, float], waited_calls: int, io_latency_ms: float
) -> dict[str, float]:
    """The worker Lambda invoked once for this one task (no batch), with its measured CPU per task."""
    worker_gb = cost["memory_mb"]["worker"] / 1024
    u = cost["units_per_task"]
    cpu_gb_s = u.get("lambda_gb_s_cpu", u["lambda_gb_s"]).get("worker", 0.0)
    return {
        "lambda_requests": 1 * p["lambda_request"],
        "lambda_gb_s": cpu_gb_s * p["lambda_gb_s_arm64"],
        "lambda_io_wait": waited_calls * io_latency_ms / 1000 * worker_gb * p["lambda_gb_s_arm64"],
    }


def eventbridge_scheduler_usd_per_task(
    cost: Mapping[str, Any], p: Mapping[str, float], *, io_latency_ms: float = IO_LATENCY_MS
) -> dict[str, float]:
    """One schedule per task (CreateSchedule, one invocation, deleted after completion) -> worker.

    State tracking as taskplane's: the task record put by the api, then the worker's start and
    finish writes, each ``write_units(task_max)`` WRU on-demand. The schedule deletes itself
    (ActionAfterCompletion=DELETE), so no DeleteSchedule call is priced. The worker waits on its two
    writes; the api's put and CreateSchedule wait is in the api's measured share.
    """
    wru = write_units(cost["item_bytes"]["task_max"])
    lines = {
        "scheduler": p["scheduler_invocation"] + p["scheduler_api_call"],
        "dynamodb_writes": 3 * wru * p["dynamodb_wru"],
        "dynamodb_storage": storage_usd_per_task(cost, p),
        **_worker_once(cost, p, 2, io_latency_ms),
    }
    ingress = _ingress(cost, p)
    lines["lambda_requests"] += (
        cost["units_per_task"]["lambda_requests"].get("api", 0.0) * p["lambda_request"]
    )
    lines["lambda_gb_s"] += cost["units_per_task"]["lambda_gb_s"].get("api", 0.0) * p["lambda_gb_s_arm64"]
    lines["api_gateway"] = ingress["api_gateway"]
    return lines


def step_functions_usd_per_task(
    cost: Mapping[str, Any],
    p: Mapping[str, float],
    *,
    transitions: int = SFN_TRANSITIONS_PER_TASK,
    io_latency_ms: float = IO_LATENCY_MS,
) -> dict[str, float]:
    """One Standard execution per task: Wait (until run_at) -> Task (lambda:invoke of the worker).

    ``transitions`` billed transitions (2, see ``sfn_transitions``); StartExecution itself is not
    billed apart from them. The task record is put once for listing; its history is the execution
    history (kept 90 days by Step Functions), so no start/finish writes.
    """
    wru = write_units(cost["item_bytes"]["task_max"])
    lines = {
        "step_functions": transitions * p["sfn_standard_transition"],
        "dynamodb_writes": 1 * wru * p["dynamodb_wru"],
        # the task record for listing; Step Functions keeps the execution history (90 days) itself
        "dynamodb_storage": storage_usd_per_task(cost, p),
        **_worker_once(cost, p, 0, io_latency_ms),
    }
    lines["lambda_requests"] += (
        cost["units_per_task"]["lambda_requests"].get("api", 0.0) * p["lambda_request"]
    )
    lines["lambda_gb_s"] += cost["units_per_task"]["lambda_gb_s"].get("api", 0.0) * p["lambda_gb_s_arm64"]
    lines["api_gateway"] = _ingress(cost, p)["api_gateway"]
    return lines


# -- everything ---------------------------------------------------------------------------------------
def price(
    cost: Mapping[str, Any],
    prices_doc: Mapping[str, Any] | None = None,
    *,
    tasks_per_day: float = 1_000_000,
    shards: int = 1,
    target_utilization: float = TARGET_UTILIZATION,
    io_latency_ms: float | None = None,
    waits: list[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """USD per million tasks by line and in total, for the four designs, with every assumption.

    ``io_latency_ms`` (a DynamoDB call's wait) defaults to the figure bench/cost.py assumed for
    taskplane's own handlers, so the alternatives' waits are priced alike.
    """
    if io_latency_ms is None:
        io_latency_ms = float(cost.get("latency_assumed_ms", {}).get("dynamodb", IO_LATENCY_MS))
    prices_doc = prices_doc if prices_doc is not None else load_prices()
    p = unit_prices(prices_doc)
    common: dict[str, Any] = {
        "tasks_per_day": tasks_per_day,
        "shards": shards,
        "io_latency_ms": io_latency_ms,
        "waits": waits,
    }
    designs = {
        "taskplane_on_demand": _rounded(per_million(taskplane_usd_per_task(cost, p, **common))),
        "taskplane_provisioned": _rounded(
            per_million(
                taskplane_usd_per_task(
                    cost, p, provisioned=True, target_utilization=target_utilization, **common
                )
            )
        ),
        "eventbridge_scheduler": _rounded(
            per_million(eventbridge_scheduler_usd_per_task(cost, p, io_latency_ms=io_latency_ms))
        ),
        "step_functions_standard": _rounded(
            per_million(step_functions_usd_per_task(cost, p, io_latency_ms=io_latency_ms))
        ),
    }
    sfn_high = step_functions_usd_per_task(
        cost, p, transitions=SFN_TRANSITIONS_PER_TASK + 1, io_latency_ms=io_latency_ms
    )
    # Each measured target's own units (bench/cost.py's by_target), the rest of the run as measured:
    # the headline is the first (an HTTP target, with its circuit breaker), echo beside it.
    by_target = {
        name: {
            "target": run.get("target"),
            "usd_per_million_on_demand": _rounded(
                per_million(taskplane_usd_per_task(_with_units(cost, run), p, **common))
            )["total"],
            # the duration sketch's WRU per task: (measured in the run, priced at tasks_per_day)
            "sketch_wru": [round(v, 4) for v in sketch_wru_per_task(_with_units(cost, run), tasks_per_day)],
        }
        for name, run in (cost.get("by_target") or {}).items()
    }
    return {
        "idle": idle_usd_per_month(cost, prices_doc, shards=1),
        "waits_measured": waits or [],
        "workload": cost.get("workload"),
        "tasks_measured": cost.get("tasks"),
        "tasks_per_day": tasks_per_day,
        "shards": shards,
        "target_utilization": target_utilization,
        "io_latency_ms": io_latency_ms,
        "sfn_transitions_per_task": SFN_TRANSITIONS_PER_TASK,
        "sfn_transitions_high": SFN_TRANSITIONS_PER_TASK + 1,
        "step_functions_standard_total_if_3_transitions": round(sum(sfn_high.values()) * 1e6, 4),
        "usd_per_million": designs,
        "target": cost.get("target", "echo"),
        "by_target": by_target,
        "goal_usd_per_million": GOAL_USD_PER_MILLION,
        "goal_met": designs["taskplane_on_demand"]["total"] <= GOAL_USD_PER_MILLION,
        "prices": {
            name: {k: v for k, v in entry.items() if k in ("usd", "per", "unit", "source", "verified")}
            for name, entry in prices_doc["prices"].items()
        },
        "prices_checked": prices_doc.get("checked"),
        "batch_scale": round(batch_scale(cost, waits, tasks_per_day / SECONDS_PER_DAY), 4),
        "assumptions": assumptions(
            cost,
            tasks_per_day=tasks_per_day,
            shards=shards,
            target_utilization=target_utilization,
            io_latency_ms=io_latency_ms,
            waits=waits,
        ),
    }


def _with_units(cost: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """``cost`` with one target's measured units per task (and item sizes) in place of the headline's."""
    out = json.loads(json.dumps(cost))
    out["units_per_task"] = json.loads(json.dumps(run["units_per_task"]))
    if "item_bytes" in run:
        out["item_bytes"] = dict(run["item_bytes"])
    return out


def assumptions(
    cost: Mapping[str, Any],
    *,
    tasks_per_day: float,
    shards: int,
    target_utilization: float,
    io_latency_ms: float,
    waits: list[Mapping[str, float]] | None = None,
) -> list[str]:
    tick = cost["tick"]
    scale = batch_scale(cost, waits, tasks_per_day / SECONDS_PER_DAY)
    batch_sqs, batch_wru = per_batch_units(cost)
    return [
        "us-east-1 list prices of bench/prices.json, first tier, no free tier, no Savings Plans or "
        "reserved capacity; DynamoDB Standard table class; task storage priced (below); the handlers' log "
        "and EMF bytes priced as CloudWatch Logs ingestion (taskplane only: the alternatives' workers would "
        "log too); data transfer, custom-metric fees (per metric, not per task) and X-Ray not priced.",
        f"Units per task are bench/cost.py's counts over {cost.get('tasks')} tasks ({cost.get('workload')}), "
        "computed from request and response sizes (moto's ConsumedCapacity is not used).",
        "Lambda GB-s (bench/cost.py): our handlers' measured CPU per task (the CPU inside moto "
        "subtracted, per thread) stretched by the memory's vCPU share (1,769 MB = 1 vCPU), plus the "
        "latency of each AWS call the handler waits on at bench/cost.py's stated figures (DynamoDB 6 ms, "
        "batch writes 12 ms, SQS 12 ms; modelled, moto has no network), a worker batch's records "
        "overlapping, times the configured memory. The line lambda_io_wait is then 0 (it is inside "
        f"lambda_gb_s); for the alternatives' unbatched worker it adds {io_latency_ms} ms per waited call.",
        f"Tick amortized: {shards} shard(s) x 86,400 s x duty {tick['duty']} x {tick['memory_mb']} MB x "
        "arm64 GB-s price + 1,440 invocations per shard per day, plus its lease/cursor writes "
        f"({tick.get('lease_wru_per_s', TICK_FIXED_WRU_PER_S)} WRU/s per shard, measured) and its window "
        f"Queries ({tick.get('queries_per_s', 10)}/s per shard at 0.5 RRU each, or the load's bytes read "
        f"when more: {tick.get('query_bytes_per_task', '?')} B per task, measured), over "
        f"{tasks_per_day:,.0f} tasks a day.",
        "Duration sketches (the control table's sketch# writes): a worker instance writes each "
        f"target's minute at most once per {SKETCH_FLUSH_EVERY_S} s, in "
        f"{cost['units_per_task'].get('sketch_writes_per_add', '?')} writes (its parts, measured); "
        "bench/cost.py's one worker process runs far more tasks per interval than an instance at this "
        f"load, so they are priced at the load: max({SKETCH_MIN_INSTANCES}, tasks/s / 10 x "
        f"{SKETCH_BATCH_S:g} s) instances writing, "
        f"{sketch_wru_per_task(cost, tasks_per_day)[1]:.4f} WRU per task (measured in the run: "
        f"{sketch_wru_per_task(cost, tasks_per_day)[0]:.4f}).",
        "Per-batch units at the load's batch size: bench/cost.py's worker batches are full (its "
        f"{cost['units_per_task']['lambda_requests'].get('worker', 0):.4f} invocations per task); "
        "bench/wheel_lateness.py's modelled mapping at this load hands the worker "
        f"{scale:.2f} times as many batches per record, so the per-batch SQS requests ({batch_sqs:.4f} "
        f"per task: send, receive, delete, hold), the worker's invocations and the breakers' end-of-batch "
        f"writes ({batch_wru:.4f} WRU per task) are priced {scale:.2f} times as measured.",
        f"Storage: each finished task's item ({cost['item_bytes']['task_max']} B + 100 B overhead) kept "
        f"{RETENTION_DAYS} days at the GB-month price; TTL deletes are free; wheel entries expire in minutes.",
        f"Provisioned: consumed units priced at WCU-hour/3,600 and RCU-hour/3,600 divided by a target "
        f"utilization of {target_utilization:.0%} (auto scaling tracking the load); peaks that auto "
        "scaling does not follow are throttled, not priced.",
        "EventBridge Scheduler: one one-time schedule per task (CreateSchedule, not charged: unverified "
        "here), one invocation ($1.00/M after the monthly 14M free, not deducted), deleted after "
        "completion; the worker Lambda invoked once per task (no batching) with the worker's measured "
        "CPU per task; state tracking as taskplane's: put + start + finish writes of "
        f"{write_units(cost['item_bytes']['task_max'])} WRU each (task item {cost['item_bytes']['task_max']} B).",
        f"Step Functions Standard: one execution per task, Wait -> Task (lambda:invoke), "
        f"{SFN_TRANSITIONS_PER_TASK} billed transitions (one per state executed; a count that includes "
        "the start as a transition gives 3, priced beside it); the worker Lambda once per task; the task "
        "record put once (history from the execution history).",
        "Both alternatives keep taskplane's ingress: API Gateway REST in batches of 100 and the api "
        "Lambda's measured share, so the comparison is about scheduling and dispatch.",
        "API Gateway REST at the first tier ($3.50/M up to 333M requests a month).",
    ]


def idle_before_issue_16(cost_before: Mapping[str, Any], prices_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The idle month of the design before issue 16, for the side-by-side: its tick ran 62 s of every
    minute per shard whatever the load (cost_before's measured lease writes and window reads), each
    run an X-Ray trace; the lanes' mappings polled as now."""
    p = unit_prices(prices_doc)
    tick = cost_before["tick"]
    seconds = DAYS_PER_MONTH_IDLE * SECONDS_PER_DAY
    minutes = DAYS_PER_MONTH_IDLE * 24 * 60
    receives = float(prices_doc["quotas"]["sqs_esm_idle_receives_per_min"]["value"])
    lines = {
        "tick": seconds * tick["duty"] * tick["memory_mb"] / 1024 * p["lambda_gb_s_arm64"]
        + minutes * p["lambda_request"]
        + seconds * tick["lease_wru_per_s"] * p["dynamodb_wru"]
        + seconds * tick["queries_per_s"] * 0.5 * p["dynamodb_rru"],
        "xray_traces": minutes * p.get("xray_trace_recorded", 0.0),
        "event_source_mapping_polling": LANES * minutes * receives * p["sqs_request"],
    }
    return {
        "usd_per_month": round(sum(lines.values()), 4),
        "lines": {k: round(v, 4) for k, v in lines.items()},
    }


def waits_of(wheel: Mapping[str, Any] | None, variant: str = "") -> list[dict[str, float]]:
    """The worker's measured waits per task in bench/wheel_lateness.py's results (``wheel``) at the
    loads it ran: ``a_wheel<variant>`` at 1,000 tasks due a second and ``a_wheel<variant>_at_1m_per_day``
    at about a million a day (``variant``: "" for the design as built, "_worker_256" for the same
    design with a 256 MB worker, ...)."""
    return [
        {
            "tasks_per_s": float(run["rate_per_s"]),
            "wait_gb_s_per_task": float(run["worker"]["wait_gb_s_per_task"]),
            **(
                {"records_per_invocation": float(run["worker"]["records_per_invocation"])}
                if "records_per_invocation" in run["worker"]
                else {}
            ),
        }
        for key in (f"a_wheel{variant}", f"a_wheel{variant}_at_1m_per_day")
        if (run := (wheel or {}).get(key)) and "wait_gb_s_per_task" in run.get("worker", {})
    ]


def load_wheel(results: Path = RESULTS) -> dict[str, Any] | None:
    path = results / "wheel_lateness_a.json"
    return dict(json.loads(path.read_text())) if path.exists() else None


def load_waits(results: Path = RESULTS, variant: str = "") -> list[dict[str, float]]:
    """``waits_of`` the results bench/wheel_lateness.py wrote under ``results``."""
    return waits_of(load_wheel(results), variant)


# -- directions (issue 16, second round) ---------------------------------------------------------------
#: What a claimed worker reads instead of getting the task back from its start write: one strongly
#: consistent GetItem (up to 4 KB: 1 RRU), so that a cancel that landed before the claim is seen.
CLAIM_READ_RRU = 1.0


def _variant(
    cost: Mapping[str, Any],
    *,
    worker_mb: int | None = None,
    tick_mb: int | None = None,
    claim_wru: float | None = None,
) -> dict[str, Any]:
    """``cost`` as it would be measured with one design change (see ``directions``)."""
    out = json.loads(json.dumps(cost))
    u = out["units_per_task"]
    if worker_mb is not None:
        was = out["memory_mb"]["worker"]
        cpu = u.get("lambda_gb_s_cpu", {}).get("worker", u["lambda_gb_s"]["worker"])
        io = u["lambda_gb_s"]["worker"] - cpu
        # CPU-bound seconds stretch as the share shrinks and are billed at fewer GB: the same GB-s;
        # the calls' latency does not stretch, so it is billed at the smaller memory.
        u["lambda_gb_s"]["worker"] = cpu + io * worker_mb / was
        out["memory_mb"]["worker"] = worker_mb
    if tick_mb is not None:
        out["tick"]["memory_mb"] = tick_mb
    if claim_wru is not None:
        # The start write on the task item (one write of the whole item) becomes a share of a claim
        # write on a small shared item, plus the read of the task the start write used to return.
        start = write_units(cost["item_bytes"]["task_max"])
        u["dynamodb_wru"] = u["dynamodb_wru"] - start + claim_wru
        u["dynamodb_rru"] = u["dynamodb_rru"] + CLAIM_READ_RRU
    return out


def _tick_128_risk(wheel: Mapping[str, Any] | None) -> str:
    """What a 128 MB tick risks, from the harness's as-deployed runs at 128 MB when it ran them."""
    text = (
        "one shard sends half as many tasks a second (its CPU share halves: more shards sooner); one "
        "shard at 1,000 due/s at that share (wheel_lateness_a.json a_wheel_tick_128) is the worst case"
    )
    runs = (wheel or {}).get("a_wheel_deployed_tick_128_runs") or []
    if not runs:
        return text + "; not run as deployed in the harness"
    worst = max(runs, key=lambda r: r["dispatch_lateness_ms"]["p99"])
    held = all(
        r["dispatch_lateness_ms"]["p99"] <= 20
        and r["start_lateness_ms"]["p99"] <= 20
        and r["start_lateness_ms"]["max"] <= 100
        for r in runs
    )
    charged = all(r.get("tick", {}).get("real_adapters_charged") for r in runs)
    d, st = worst["dispatch_lateness_ms"], worst["start_lateness_ms"]
    return text + (
        f"; as deployed at 1,000 due/s on the {worst['tick']['shards']} shards its share sizes "
        f"(a_wheel_deployed_tick_128_runs, the worst of {len(runs)}"
        + (", its real adapters' CPU charged" if charged else ", its real adapters' CPU NOT charged")
        + f"): dispatch p99 {d['p99']} ms, start p99 {st['p99']} / max {st['max']} ms: "
        + (
            "the goals hold"
            if held
            else "the goals (dispatch p99 <= 20, start p99 <= 20, max <= 100) do not hold"
        )
    )


def directions(
    cost: Mapping[str, Any],
    prices_doc: Mapping[str, Any] | None = None,
    wheel: Mapping[str, Any] | None = None,
    *,
    tasks_per_day: float = 1_000_000,
    shards: int = 1,
    cold: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """USD per million delayed tasks (on-demand) under each direction issue 16 asks to measure, from
    the measured units (``cost``) and the harness's measured waits and lateness (``wheel``,
    bench/wheel_lateness.py): a smaller worker or tick, a shorter lead, and claims batched (modelled:
    not built), alone and together. Each says whether its inputs were measured or modelled, what it
    would save and what it would risk; with ``cold`` (bench/cold_start.py's results) also how long a
    new instance of the worker and the tick spends setting up in its first invocation at that memory."""
    prices_doc = prices_doc if prices_doc is not None else load_prices()
    p = unit_prices(prices_doc)

    def first_call_ms(function: str, memory_mb: int, *, warm_up: bool = True) -> float | None:
        """How long a new instance sets up before its first task, beyond its imports (measured at one
        core, bench/cold_start.py). With the init-phase warm-up (taskplane/init_phase.py, as built):
        the tracer and the platform are made during init, at a full vCPU on demand whatever the
        memory, and what the first invocation still sets up runs at ``memory_mb``'s share of a vCPU.
        Without it (``warm_up=False``, or results from before it): all of it at the share."""
        handler = ((cold or {}).get("handlers") or {}).get(function) or {}
        if "platform_build_median_ms" not in handler:
            return None
        share = FULL_VCPU_MB / min(memory_mb, FULL_VCPU_MB)
        warm = handler.get("warm_up")
        if warm_up and warm:
            return round(warm["warm_up_median_ms"] + warm["first_call_median_ms"] * share)
        one_core = handler["platform_build_median_ms"] + handler.get("first_call_setup_median_ms", 0.0)
        return round(one_core * share)

    wheel_share = float(cost["units_per_task"].get("dynamodb_wru_by_table", {}).get("taskplane-wheel", 0.2))

    def lateness(variant: str) -> dict[str, Any] | None:
        run = (wheel or {}).get(f"a_wheel{variant}")
        if not run:
            return None
        return {
            "start_ms_at_1000_per_s": run["start_lateness_ms"],
            # the tick's own lateness in the same run (the machine's load shows here first)
            "dispatch_p99_ms_at_1000_per_s": run.get("dispatch_lateness_ms", {}).get("p99"),
            "early": run["early_starts"],
            "wait_ms_per_task_at_1m_per_day": ((wheel or {}).get(f"a_wheel{variant}_at_1m_per_day") or {})
            .get("worker", {})
            .get("wait_ms_per_task"),
        }

    #: (name, change, the harness variant whose waits it takes (None: no wait at all), basis, risk)
    specs: list[tuple[str, dict[str, Any], str | None, str, str]] = [
        ("as_built", {}, "", "measured", "the design on main"),
        (
            "lead_300ms",
            {},
            "_lead_300",
            "measured",
            "the lead covers the pickup's tail (modelled max 400 ms) less the 100 ms max-lateness goal: "
            "below 300 ms a slow pickup starts over 100 ms late, and at 300 ms there is no margin left for "
            "the tick's own delays (see its start lateness at 1,000/s); it saves little because most of "
            "the hold at a million a day is the lane batch's spread (GROUP_MS), not the lead",
        ),
        (
            "tick_128mb",
            {"tick_mb": 128},
            "",
            "modelled from the measured tick CPU",
            _tick_128_risk(wheel),
        ),
        (
            "worker_512mb",
            {"worker_mb": 512},
            "_worker_512",
            "measured (harness at 512 MB)",
            "the default until issue 16's third round: each wait billed at twice the GB; more CPU for "
            "targets' own work and large payloads (services/payload_budget.py lets four times as many "
            "bytes in at once)",
        ),
        (
            "worker_256mb",
            {"worker_mb": 256},
            "_worker_256",
            "measured (harness at 256 MB)",
            "the harness models the worker's CPU share, not a new instance: its clients and tracer are "
            "built in the init phase at a full vCPU (taskplane/init_phase.py; its set-up column); "
            "targets' own CPU runs at half the speed of 512 MB; payloads read from the bucket wait for "
            "room in its memory (services/payload_budget.py)",
        ),
        (
            "worker_128mb",
            {"worker_mb": 128},
            "_worker_128",
            "measured (harness at 128 MB)",
            "as worker_256mb at half its CPU, a target's own CPU 14 times slower than at one vCPU, and "
            "too little memory: ~70 MiB resident after init leaves ~58 MiB, less than one 5 MiB "
            "payload's peak (bench/worker_rss.py)",
        ),
        (
            "claims_batched",
            {"claim_wru": wheel_share},
            "",
            "modelled (not built)",
            "one conditional claim write per wheel item a lane message carries instead of one start write "
            "per task, RUNNING written only for attempts still running after N ms, and a consistent read "
            "of each claimed task: changes the at-most-once guard, cancel (must check the claim), the "
            "dead-worker watch (a SCHEDULED task with a claim is a started attempt) and every redelivery "
            "path; only as good as the sharing (one claim per wheel item at best; a single-task submit "
            "shares nothing)",
        ),
        (
            "claims_batched_split",
            {"claim_wru": 2 * wheel_share},
            "",
            "modelled (not built)",
            "as claims_batched with each wheel item split over two of the tick's lane batches "
            "(two claims per item)",
        ),
        (
            "claims_tick_128",
            {"claim_wru": wheel_share, "tick_mb": 128},
            "",
            "modelled + measured waits",
            "claims batched and a 128 MB tick, on the worker as built: every risk above together",
        ),
        (
            "claims_worker_256_tick_128",
            {"claim_wru": wheel_share, "worker_mb": 256, "tick_mb": 128},
            "_worker_256",
            "modelled + measured waits",
            "every risk above together",
        ),
        (
            "claims_worker_128_tick_128",
            {"claim_wru": wheel_share, "worker_mb": 128, "tick_mb": 128},
            "_worker_128",
            "modelled + measured waits",
            "every risk above together",
        ),
        (
            "bound_claims_tick_128_no_wait",
            {"claim_wru": wheel_share, "tick_mb": 128},
            None,
            "bound (not a design)",
            "what claims and a 128 MB tick would cost if holding deliveries until due cost nothing: the "
            "ceiling of what a cheaper hold (a smaller worker, the tick holding, a direct invoke) can add",
        ),
        (
            "bound_contract_tick_128_no_wait",
            {"tick_mb": 128},
            None,
            "bound (not a design)",
            "the floor of the contract's design (ARCHITECTURE.md: every move of a task is its own "
            "conditional write, the PENDING -> RUNNING write is the at-most-once guard): the three task "
            "writes as built, a 128 MB tick, and holding deliveries until due for free",
        ),
    ]
    base_total: float | None = None
    rows: dict[str, Any] = {}
    for name, change, variant, basis, risk in specs:
        # A hold that costs nothing still has the design's lane batches (their per-batch requests).
        waits = (
            waits_of(wheel, variant)
            if variant is not None
            else [{**w, "wait_gb_s_per_task": 0.0} for w in waits_of(wheel)]
        )
        if variant is not None and wheel is not None and not waits:
            continue  # the harness did not run that variant
        lines = per_million(
            taskplane_usd_per_task(
                _variant(cost, **change), p, tasks_per_day=tasks_per_day, shards=shards, waits=waits
            )
        )
        total = sum(lines.values())
        if base_total is None:
            base_total = total
        variant_cost = _variant(cost, **change)
        set_up = {
            "worker": first_call_ms("worker", variant_cost["memory_mb"]["worker"]),
            "tick": first_call_ms("tick", variant_cost["tick"]["memory_mb"]),
        }
        set_up_before = {
            "worker": first_call_ms("worker", variant_cost["memory_mb"]["worker"], warm_up=False),
            "tick": first_call_ms("tick", variant_cost["tick"]["memory_mb"], warm_up=False),
        }
        rows[name] = {
            "first_invocation_set_up_ms": set_up if any(v is not None for v in set_up.values()) else None,
            # the same set-up if the first invocation made the tracer and the platform (before init_phase)
            "first_invocation_set_up_without_warm_up_ms": (
                set_up_before if any(v is not None for v in set_up_before.values()) else None
            ),
            "total": round(total, 4),
            "saves": round(base_total - total, 4),
            "goal_met": total <= GOAL_USD_PER_MILLION,
            "lines": {
                k: round(v, 4)
                for k, v in lines.items()
                if k in ("dynamodb_writes", "dynamodb_reads", "worker_wait", "tick", "lambda_gb_s")
            },
            "change": change,
            "basis": basis,
            "risk": risk,
            "lateness": lateness(variant) if variant or name == "as_built" else None,
        }
    return {
        "tasks_per_day": tasks_per_day,
        "goal_usd_per_million": GOAL_USD_PER_MILLION,
        "wheel_item_share_wru": wheel_share,
        "directions": rows,
    }


def run(
    cost: Mapping[str, Any] | None = None,
    *,
    tasks_per_day: float = 1_000_000,
    shards: int = 1,
    write: bool = True,
    results: Path = RESULTS,
) -> dict[str, Any] | None:
    """Price bench/results/cost.json (or ``cost``) and write bench/results/pricing.json."""
    if cost is None:
        path = results / "cost.json"
        if not path.exists():
            return None
        cost = json.loads(path.read_text())
    wheel = load_wheel(results)
    result = price(cost, tasks_per_day=tasks_per_day, shards=shards, waits=waits_of(wheel))
    cold_path = results / "cold_start.json"
    cold = json.loads(cold_path.read_text()) if cold_path.exists() else None
    result["directions"] = directions(
        cost, wheel=wheel, tasks_per_day=tasks_per_day, shards=shards, cold=cold
    )
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "pricing.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--example", action="store_true", help="price the hand-made example; write nothing")
    parser.add_argument("--tasks-per-day", type=float, default=1_000_000)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    if args.example:
        result = run(EXAMPLE_COST, tasks_per_day=args.tasks_per_day, shards=args.shards, write=False)
    else:
        result = run(tasks_per_day=args.tasks_per_day, shards=args.shards)
        if result is None:
            raise SystemExit("bench/results/cost.json is missing: run bench/cost.py first")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
