"""Render BENCHMARKS.md (repository root) and bench/results/summary.json from the results files.

Reads whatever of bench/results/*.json exists (a missing file becomes "not run" in the page and
``null`` with a note in the summary) and links the plots of bench/plots.py under docs/bench/.

    python bench/report.py
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PLOTS = ROOT / "docs" / "bench"

#: The goals (issues 7 and 16), as (summary key, goal text, test on the value).
GOALS = {
    "usd_per_million_tasks": (
        "<= $2.50 per million delayed tasks, end to end, on-demand",
        lambda v: v <= 2.50,
    ),
    "idle_usd_per_month": ("<= $1.00 a month for an idle environment", lambda v: v <= 1.00),
    "start_lateness_p99_ms": ("start lateness p99 <= 20 ms at 1,000 due/s", lambda v: v <= 20),
    "start_lateness_max_ms": ("start lateness max <= 100 ms, none early", lambda v: v <= 100),
    "retry_lateness_p99_ms": (
        "retry lateness p99 <= 50 ms, backoffs 50 ms to beyond 15 minutes",
        lambda v: v <= 50,
    ),
    "dispatch_lateness_p99_ms": ("dispatch lateness p99 <= 20 ms", lambda v: v <= 20),
    "handler_import_ms_max": ("<= 300 ms import per handler", lambda v: v <= 300),
    "local_tasks_per_s": ("10,000 immediate tasks through taskplane dev, none lost", None),
    "local_vs_huey_ratio": (
        ">= 0.5: taskplane dev (SQLite) at least half of Huey on SQLite, same tasks, same run",
        lambda v: v >= 0.5,
    ),
    "local_fire_p99_ms_at_100_per_s": (
        "delayed tasks on taskplane dev fire p99 <= 50 ms at 100 a second, none early",
        lambda v: v <= 50,
    ),
    "dag_makespan_ratio_max": (
        "workflow makespan / critical path <= 1.10 on 20 random DAGs",
        lambda v: v <= 1.10,
    ),
}
#: What each summary value is measured in.
UNITS = {
    "usd_per_million_tasks": " USD",
    "idle_usd_per_month": " USD",
    "start_lateness_p99_ms": " ms",
    "start_lateness_max_ms": " ms",
    "retry_lateness_p99_ms": " ms",
    "dispatch_lateness_p99_ms": " ms",
    "handler_import_ms_max": " ms",
    "dag_makespan_ratio_max": "",
    "local_tasks_per_s": " tasks/s",
    "local_vs_huey_ratio": "",
    "local_fire_p99_ms_at_100_per_s": " ms",
}


def _load(results: Path, name: str) -> Any | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def _metric(value: Any, note: str) -> dict[str, Any]:
    return {"value": value, "note": note}


def summary(results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """The headline figures, each ``{"value", "note"}``; a missing input gives value None."""
    pricing = _load(results, "pricing.json")
    wheel = _load(results, "wheel_lateness_a.json") or _load(results, "wheel_lateness.json")
    cold = _load(results, "cold_start.json")
    makespan = _load(results, "workflow_makespan.json")
    local = _load(results, "local_throughput.json")
    out: dict[str, dict[str, Any]] = {}
    if pricing:
        on_demand = pricing["usd_per_million"]["taskplane_on_demand"]["total"]
        provisioned = pricing["usd_per_million"]["taskplane_provisioned"]["total"]
        capacity = _load(results, "capacity.json")
        at_scale = ""
        if capacity:
            big = capacity["scales"][1]
            per_m = 1e6 / big["tasks_per_day"]
            at_scale = (
                f"; at {big['tasks_per_day']:,} tasks/day (capacity model): "
                f"{big['total_usd_per_day']['on_demand'] * per_m:.2f} on-demand, "
                f"{big['total_usd_per_day']['provisioned'] * per_m:.2f} provisioned"
            )
        echo = (pricing.get("by_target") or {}).get("echo", {}).get("usd_per_million_on_demand")
        beside = f" (the builtin echo target, no breaker: {echo:.2f})" if echo is not None else ""
        out["usd_per_million_tasks"] = _metric(
            on_demand,
            f"an {pricing.get('target', 'echo')} target's{beside} "
            f"billable units per delayed task (bench/cost.py) on the real handlers, priced by bench/pricing.py "
            f"at us-east-1 list prices (bench/prices.json, checked {pricing.get('prices_checked')}): DynamoDB "
            f"on-demand, 30 days of history stored, the tick amortized over {pricing['tasks_per_day']:,.0f} "
            f"tasks/day on {pricing['shards']} shard(s); with provisioned capacity at 70% utilization "
            f"{provisioned:.2f}{at_scale}",
        )
    else:
        out["usd_per_million_tasks"] = _metric(
            None, "bench/results/pricing.json missing (needs bench/cost.py)"
        )
    if pricing and "idle" in pricing:
        idle = pricing["idle"]
        out["idle_usd_per_month"] = _metric(
            idle["usd_per_month"],
            "bench/pricing.py idle_usd_per_month: one environment (1 shard) with no task due, a month: "
            + ", ".join(f"{k} ${v:.2f}" for k, v in idle["lines"].items() if v)
            + f" (the rule's check measured by bench/cost.py); its monitoring beside it, "
            f"${idle['monitoring_usd_per_month']:.2f} at list price ("
            + ", ".join(f"{k} ${v:.2f}" for k, v in idle["monitoring_lines"].items())
            + "), free within an account's free tier (10 alarm metrics, 3 dashboards)",
        )
    else:
        out["idle_usd_per_month"] = _metric(None, "bench/results/pricing.json missing (needs bench/cost.py)")
    if wheel and "a_wheel" in wheel:
        # The design as deployed for 1,000 due/s (a_wheel_deployed: the shards capacity.json sizes
        # for it, each tick at its memory's CPU share) when it ran; else the one full-core shard.
        deployed = _worst_deployed(wheel)
        a = deployed or wheel["a_wheel"]
        rerun = wheel.get("a_wheel_rerun") or {}
        # the design as built, run again by itself when the harness's first pass met a loaded machine
        load = (
            deployed["load_average"][0]
            if deployed and "load_average" in deployed
            else rerun.get("load_average_before") or wheel.get("load_average")
        )
        harness = (
            f"bench/wheel_lateness.py (a): the real tick over in-memory adapters with injected AWS latency "
            f"(DynamoDB {wheel['injected_latency_ms']['dynamodb_call']} ms/call, SQS "
            f"{wheel['injected_latency_ms']['sqs_batch']} ms/batch), {a['tasks']:,} tasks due at "
            f"{a['rate_per_s']:,}/s" + (f", load average {load[0]:.1f} on 2 cores" if load else "")
        )
        if deployed:
            harness += _deployed_note(deployed, len(wheel.get("a_wheel_deployed_runs") or [deployed]))
        pickup = wheel.get("pickup_model", {})
        model = (
            f"; the event source mapping's pickup modelled ({pickup.get('fast')}, {pickup.get('slow')}: "
            f"p50 {pickup.get('p50_ms')} ms, p99 {pickup.get('p99_ms')} ms, max {pickup.get('max_ms')} ms) "
            f"and the worker modelled from its measured CPU at {a['worker']['memory_mb']} MB"
        )
        out["dispatch_lateness_p99_ms"] = _metric(
            a["dispatch_lateness_ms"]["p99"],
            harness + f"; time the tick sent an entry - when it should leave (its due time less the "
            f"{a['lead_ms']} ms lead)",
        )
        if "start_lateness_ms" in a:
            start = a["start_lateness_ms"]
            out["start_lateness_p99_ms"] = _metric(
                start["p99"], harness + model + f"; started_at - run_at, {a['early_starts']} early"
            )
            out["start_lateness_max_ms"] = _metric(
                start["max"], harness + model + f"; started_at - run_at, {a['early_starts']} early"
            )
            backoffs = ", ".join(f"{int(b):,}" for b in a.get("retry_lateness_by_backoff_ms", {}))
            out["retry_lateness_p99_ms"] = _metric(
                a["retry_lateness_ms"]["p99"],
                harness
                + model
                + f"; a retry's started_at - its next_attempt_at, {a['retry_lateness_ms']['n']} "
                f"retries with backoffs of {backoffs} ms (up to 1 s they wait in the worker, longer ones "
                "go through the wheel: beyond 15 minutes the same path, checked on a simulated clock in "
                "tests/integration/test_wheel.py)",
            )
    else:
        out["dispatch_lateness_p99_ms"] = _metric(None, "bench/results/wheel_lateness_a.json missing")
    for key in ("start_lateness_p99_ms", "start_lateness_max_ms", "retry_lateness_p99_ms"):
        out.setdefault(
            key, _metric(None, "bench/results/wheel_lateness_a.json missing (or from before issue 16)")
        )
    if cold and "handlers" in cold:
        out["handler_import_ms_max"] = _metric(
            max(h["median_ms"] for h in cold["handlers"].values()),
            f"bench/cold_start.py: median of {cold.get('repeats', '?')} fresh interpreters per handler, the "
            f"slowest handler; import boto3 alone {cold['baseline_boto3_ms']['median_ms']} ms"
            + (
                f"; Lambda's init phase, which also makes the tracer and the platform "
                f"(taskplane/init_phase.py), {cold['init_max_ms']} ms at most (at a full vCPU on demand)"
                if "init_max_ms" in cold
                else ""
            )
            + (
                f"; load average {cold['load_average']['before'][0]:.1f} on 2 cores"
                if cold.get("load_average")
                else ""
            ),
        )
    else:
        out["handler_import_ms_max"] = _metric(None, "bench/results/cold_start.json missing")
    if makespan and "summary" in makespan:
        ms = makespan["summary"]
        load = ms.get("load_average_before_after")
        out["dag_makespan_ratio_max"] = _metric(
            ms["taskplane_ratio_measured"]["max"],
            f"bench/workflow_bench.py: makespan / critical path of the nodes' measured times, worst of "
            f"{len(makespan.get('dags', []))} non-series-parallel DAGs on taskplane dev (SQLite stores, moto's Step Functions); the ratio "
            f"against the nominal sleeps is {ms['taskplane_ratio_nominal']['max']}"
            + (
                f"; median {ms['taskplane_ratio_measured']['median']}, a hop {ms['taskplane_hop_ms']['median']} ms "
                f"(median), {ms['taskplane_cpu_ms_per_node']['median']} ms of CPU per node"
                if "taskplane_hop_ms" in ms and "taskplane_cpu_ms_per_node" in ms
                else ""
            )
            + (f"; load average {load[0]} before, {load[1]} after (2 cores)" if load else ""),
        )
    else:
        out["dag_makespan_ratio_max"] = _metric(None, "bench/results/workflow_makespan.json missing")
    if local and "backends" in local:
        m, huey = local["backends"]["moto"], local["huey"]
        moto_share = (m.get("profile") or {}).get("moto_share")
        out["local_tasks_per_s"] = _metric(
            local["tasks_per_s"],
            f"bench/local_throughput.py: {local['succeeded']}/{local['tasks']} echo tasks through taskplane dev "
            f"on its default SQLite backend, lost {local['lost']}; the same run on --backend moto: "
            f"{m['tasks_per_s']} tasks/s ({m['succeeded']}/{m['tasks']}, lost {m['lost']}"
            + (f", {moto_share:.0%} of the CPU inside moto" if moto_share is not None else "")
            + f"); Huey on SQLite: {huey['tasks_per_s']} tasks/s end to end ({huey['succeeded']}/{huey['tasks']})",
        )
        out["local_vs_huey_ratio"] = _metric(
            local["local_vs_huey_ratio"],
            f"bench/local_throughput.py: taskplane dev (SQLite) {local['tasks_per_s']} tasks/s / Huey "
            f"{huey['tasks_per_s']} tasks/s, both first submission to last finish in the same run; against "
            f"Huey's consumer alone on a prefilled queue ({huey['prefilled_drain']['tasks_per_s']} tasks/s): "
            f"{local.get('local_vs_huey_drain_ratio')}",
        )
        fire = local["fire_lateness"]
        f, fm = fire["sqlite"], fire["moto"]
        out["local_fire_p99_ms_at_100_per_s"] = _metric(
            f["fire_lateness_ms"]["p99"],
            f"bench/local_throughput.py: {f['tasks']} delayed echo tasks submitted at {f['rate_per_s']}/s "
            f"(achieved {f['achieved_submit_rate_per_s']}/s) to taskplane dev (SQLite), started_at - run_at: "
            f"p50 {f['fire_lateness_ms']['p50']} / max {f['fire_lateness_ms']['max']} ms, {f['early_starts']} "
            f"early, lost {f['lost']}; on --backend moto: p99 {fm['fire_lateness_ms']['p99']} ms (submits "
            f"achieved {fm['achieved_submit_rate_per_s']}/s, {fm['early_starts']} early, lost {fm['lost']})",
        )
    elif local:
        moto = (local.get("profile") or {}).get("moto_share")
        out["local_tasks_per_s"] = _metric(
            local["tasks_per_s"],
            f"bench/local_throughput.py: {local['succeeded']}/{local['tasks']} echo tasks through taskplane dev "
            f"(in-process moto), lost {local['lost']}"
            + (f", {moto:.0%} of the process's CPU inside moto" if moto is not None else ""),
        )
    else:
        out["local_tasks_per_s"] = _metric(None, "bench/results/local_throughput.json missing")
    for key in ("local_vs_huey_ratio", "local_fire_p99_ms_at_100_per_s"):
        out.setdefault(
            key, _metric(None, "bench/results/local_throughput.json missing (or from before issue 17)")
        )
    return out


# -- BENCHMARKS.md ------------------------------------------------------------------------------------
def _cost_story(cost: Mapping[str, Any] | None, pricing: Mapping[str, Any]) -> list[str]:
    """Where a delayed task's units go, request by request, and the floor of the design."""
    if not cost:
        return []
    calls = cost["calls"]
    fn = cost.get("calls_by_function", {})
    u = cost["units_per_task"]
    wru_price = pricing["prices"]["dynamodb_wru"]["usd"]
    rows = [
        "What one delayed task costs, request by request (measured over "
        f"{cost['succeeded']:,} tasks; units per task):",
        "",
        "| request | who | per task | billable units per task |",
        "| --- | --- | ---: | ---: |",
    ]
    requests = cost.get("requests") or [
        {"function": ", ".join(f for f, ops in fn.items() if op in ops), "request": op, "by_time": False, **c}
        for op, c in calls.items()
    ]
    for r in requests:
        units = []
        if r["wru"]:
            units.append(f"{r['wru']:.3f} WRU")
        if r["rru"]:
            units.append(f"{r['rru']:.3f} RRU")
        if r["sqs"]:
            units.append(f"{r['sqs']:.3f} SQS requests")
        shown = ", ".join(units) or "-"
        if r["by_time"]:
            shown += " (by time: priced per shard-second)"
        rows.append(f"| {r['request']} | {r['function']} | {r['per_task']:.3f} | {shown} |")
    tick = cost["tick"]
    rows += [
        "",
        f"The tick's own lease writes and window reads ({tick.get('lease_wru_per_s')} WRU/s and "
        f"{tick.get('query_rru_per_s')} RRU/s per shard in this run) are priced by time, not per task. "
        f"Task item {cost['item_bytes']['task_max']} B with its history (one WRU per write up to 1 KB: a "
        "payload a few hundred bytes larger makes the start and finish writes 2 WRU each); wheel entry "
        f"{cost['item_bytes']['wheel_entry_max']} B; no secondary index, so no index writes.",
        "",
        _floor(u, pricing, wru_price),
        "",
        *_targets(cost, pricing),
    ]
    return rows


def _targets(cost: Mapping[str, Any], pricing: Mapping[str, Any]) -> list[str]:
    """The measured targets side by side: the headline's (HTTP, with its circuit breaker) and echo."""
    runs = cost.get("by_target") or {}
    if not runs:
        return []
    priced = pricing.get("by_target") or {}
    rows = [
        "Each target measured in its own run (`cost.json` `by_target`); the headline prices the first, "
        "what users run: an HTTP target has a circuit breaker (one read and one counting write per "
        "delivery batch, in the control table), echo has none; both have a duration sketch, written "
        "per target and worker instance at most every 30 s (one write per part of 96 buckets its "
        "durations fall in): this run's one fast worker process writes it far less often per task than "
        "instances at a day's load, so the USD are priced with the sketch's writes at that load "
        "(`pricing.py` `sketch_wru_per_task`, beside the measured figure):",
        "",
        "| target | WRU | of which control table | of which sketch: measured / at the day's load | RRU | SQS "
        "| worker GB-s | log bytes | USD/M on-demand |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        u = run["units_per_task"]
        control = sum(v for t, v in (u.get("dynamodb_wru_by_table") or {}).items() if t.endswith("control"))
        usd = (priced.get(name) or {}).get("usd_per_million_on_demand")
        sketch = (priced.get(name) or {}).get("sketch_wru")
        sketch_text = f"{sketch[0]:.3f} / {sketch[1]:.3f}" if sketch else "-"
        rows.append(
            f"| {name}: {run.get('target', '')} | {u['dynamodb_wru']:.3f} | {control:.3f} | {sketch_text} | "
            f"{u['dynamodb_rru']:.4f} | {u['sqs_requests']:.3f} | {u['lambda_gb_s'].get('worker', 0):.6f} | "
            f"{u.get('log_bytes', 0):.1f} | {'-' if usd is None else f'{usd:.2f}'} |"
        )
    return [*rows, ""]


def _floor(u: Mapping[str, Any], pricing: Mapping[str, Any], wru_price: float) -> str:
    """The writes a delayed task cannot do without, and what precise starts add on top."""
    by_table = u.get("dynamodb_wru_by_table") or {}
    wheel = sum(v for t, v in by_table.items() if t.endswith("wheel"))
    tasks = sum(v for t, v in by_table.items() if t.endswith("tasks"))
    lines = pricing["usd_per_million"]["taskplane_on_demand"]["lines"]
    text = (
        f"The floor: a delayed task is written three times in the tasks table (its record at submission, "
        f"its start, its finish: {tasks:.2f} WRU measured) and shares a wheel item with the tasks of its "
        f"batch due in the same second ({wheel:.2f} WRU per task measured): {u['dynamodb_wru']:.2f} WRU, "
        f"{u['dynamodb_wru'] * wru_price:.2f} USD per million on-demand before anything else. The start "
        "write is the guard that no attempt runs twice and the finish write is the history. What a "
        "precise start adds on top, at this load: the worker's wait for the due time "
        f"({lines.get('worker_wait', 0):.2f} USD per million) and the tick, running while anything is due "
        f"soon ({lines.get('tick', 0):.2f})."
    )
    return text


def _worker_memory(rss: Mapping[str, Any] | None, results: Path | None = None) -> list[str]:
    """bench/worker_rss.py: the worker's resident set after init and a batch's peak, by memory size."""
    if not rss:
        return []
    lines = [
        "## Worker memory",
        "",
        f"`bench/worker_rss.py`: the worker resident after Lambda's init (tracer and platform built, no "
        f"moto): **{rss['init_rss_mib']} MiB**. A batch of 10 records for an HTTP target, its peak over "
        "the resident set before it (under moto, whose copies of what the worker reads are in it: an "
        "upper figure), and the deployed estimate (init + batch) beside the memory sizes. Payloads over "
        "64 KiB are read from the bucket and sent inline; as a 256 MB worker they wait for room in its "
        "memory (`services/payload_budget.py`):",
        "",
        "| payload per record | worker | payload budget | batch adds | estimate | headroom at 128 / 256 / 512 MB |",
        "| ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for b in rss["batches"]:
        head = b["headroom_mib"]
        lines.append(
            f"| {b['payload_kib']:,} KiB | {'as ' + str(b['memory_mb']) + ' MB' if b['memory_mb'] else 'no budget'} | "
            f"{'-' if b['payload_budget_mib'] is None else str(b['payload_budget_mib']) + ' MiB'} | "
            f"{b['batch_adds_mib']} MiB | {b['estimate_deployed_peak_mib']} MiB | "
            f"{head['128']} / {head['256']} / {head['512']} MiB |"
        )
    answers = rss.get("answers") or []
    if answers:
        lines += [
            "",
            "Results up to 6 MiB are kept (in the bucket). A batch of 10 records whose HTTP target answers "
            "JSON records (small payloads), as a 256 MB worker: an answer over 256 KiB is checked as JSON "
            "without being built and stored as its text (`domain/results.py`), one check at a time. moto "
            "keeps every object it is sent in memory and copies each request, so the bucket's writes are "
            "measured as they are and made empty (the worker's own share); a deployed worker lies between:",
            "",
            "| answer per record | bucket writes | batch adds | estimate | headroom at 256 / 512 MB |",
            "| ---: | --- | ---: | ---: | --- |",
        ]
        before = _load(results, "worker_rss_answers_before.json") if results is not None else None
        for b in answers:
            head = b["headroom_mib"]
            was = (before or {}).get("batch_adds_mib", {}).get(b.get("bucket_writes", ""))
            lines.append(
                f"| {b['answer_kib']:,} KiB | {b.get('bucket_writes', 'moto (in memory)')} | "
                f"{b['batch_adds_mib']} MiB{f' (before: {was} MiB)' if was is not None else ''} | "
                f"{b['estimate_deployed_peak_mib']} MiB | {head['256']} / {head['512']} MiB |"
            )
    return [
        *lines,
        "",
        f"(load average {rss['load_average'][0]:.1f}; memory figures do not depend on it)",
        "",
    ]


#: How each direction of bench/pricing.py ``directions`` is named on the page.
DIRECTION_LABELS = {
    "as_built": "as built (main)",
    "lead_300ms": "lead 300 ms instead of 350",
    "tick_128mb": "tick at 128 MB",
    "worker_512mb": "worker at 512 MB (the default before)",
    "worker_256mb": "worker at 256 MB",
    "worker_128mb": "worker at 128 MB",
    "claims_batched": "claims batched, one per wheel item; lazy RUNNING",
    "claims_batched_split": "claims batched, two per wheel item",
    "claims_tick_128": "claims + tick 128 MB",
    "claims_worker_256_tick_128": "claims + worker 256 MB + tick 128 MB",
    "claims_worker_128_tick_128": "claims + worker 128 MB + tick 128 MB",
    "bound_claims_tick_128_no_wait": "bound: claims + tick 128 MB + a hold that costs nothing",
    "bound_contract_tick_128_no_wait": "bound: the contract's three task writes + tick 128 MB + a hold that costs nothing",
}


def _directions(pricing: Mapping[str, Any] | None) -> list[str]:
    """Issue 16's unmet goal: what each direction would cost, measured or modelled, and its risk."""
    found = (pricing or {}).get("directions")
    if not found or not found.get("directions"):
        return []
    rows = found["directions"]
    lines = [
        "## The $2.50 goal on-demand: each direction priced",
        "",
        f"USD per million delayed tasks on DynamoDB on-demand at {found['tasks_per_day']:,.0f} a day "
        "(`bench/pricing.py` `directions`): the measured units of `cost.json` with one change each. "
        "A smaller worker or a shorter lead is priced from the harness run with that change "
        "(`wheel_lateness_a.json`: its waits and its start lateness at 1,000 due/s); a smaller tick from "
        "its measured CPU; batched claims are modelled, not built: the start write (1 WRU) becomes a "
        f"share of one claim write per wheel item ({found['wheel_item_share_wru']:.2f} WRU per task "
        "measured) plus a consistent read of the task (1 RRU). The start lateness is one run of the "
        "harness per variant on a shared machine: compare the p99s; a max is one task's tail and moves "
        "with the machine's load, which shows first in the tick's own dispatch lateness beside it. A new "
        "instance's set-up is the making of its tracer and platform (boto3 clients; `cold_start.json`, "
        "measured at one core on a shared machine, so an upper figure): built in the init phase "
        "(`taskplane/init_phase.py`), which on demand runs at a full vCPU, plus what the first "
        "invocation still sets up at the memory's share of a vCPU; in brackets the same if the first "
        "invocation made them all at the memory's share (before the init-phase warm-up). A task that a "
        "new instance picks up starts that much later, beyond the lead (imports are not in it: they "
        "run in the init phase at a full vCPU either way).",
        "",
        "| direction | basis | USD/M | saves | writes | reads | worker wait | tick | start p50/p99/max at "
        "1,000/s | wait per task at 1M/day | a new instance's set-up, worker / tick | risk |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for name, row in rows.items():
        ln = row["lines"]
        late = row.get("lateness") or {}
        start = late.get("start_ms_at_1000_per_s")
        shown = f"{start['p50']} / {start['p99']} / {start['max']} ms" if start else "as built"
        if start and late.get("dispatch_p99_ms_at_1000_per_s") is not None:
            shown += f" (tick's dispatch p99 {late['dispatch_p99_ms_at_1000_per_s']} ms)"
        wait = late.get("wait_ms_per_task_at_1m_per_day")
        set_up = row.get("first_invocation_set_up_ms") or {}
        before = row.get("first_invocation_set_up_without_warm_up_ms") or {}
        set_up_shown = " / ".join(
            "-"
            if set_up.get(f) is None
            else f"{set_up[f]:,} ms"
            + (f" ({before[f]:,} ms)" if before.get(f) is not None and before[f] != set_up[f] else "")
            for f in ("worker", "tick")
        )
        lines.append(
            f"| {DIRECTION_LABELS.get(name, name)} | {row['basis']} | **{row['total']:.2f}** | "
            f"{row['saves']:.2f} | {ln['dynamodb_writes']:.2f} | {ln['dynamodb_reads']:.2f} | "
            f"{ln['worker_wait']:.2f} | {ln['tick']:.2f} | {shown} | "
            f"{'-' if wait is None else f'{wait} ms'} | {set_up_shown if set_up else '-'} | {row['risk']} |"
        )
    designs = {n: r for n, r in rows.items() if not n.startswith("bound")}
    best_name, best = min(designs.items(), key=lambda kv: kv[1]["total"])
    met = [DIRECTION_LABELS.get(n, n) for n, r in designs.items() if r["goal_met"]]
    bounds = [
        f"{DIRECTION_LABELS.get(n, n)}: ${r['total']:.2f}" for n, r in rows.items() if n.startswith("bound")
    ]
    lines += [
        "",
        (
            f"Met by: {', '.join(met)}."
            if met
            else f"None of them meets ${found['goal_usd_per_million']:.2f}, alone or together: the lowest is "
            f"{DIRECTION_LABELS.get(best_name, best_name)}, ${best['total']:.2f}."
        )
        + (f" For scale, {'; '.join(bounds)}." if bounds else ""),
        "",
    ]
    return lines


def _worst_deployed(wheel: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Of the as-deployed runs recorded (``a_wheel_deployed_runs``, else the one ``a_wheel_deployed``),
    the one with the highest dispatch p99: the summary reports it, not the best of several."""
    runs = wheel.get("a_wheel_deployed_runs") or (
        [wheel["a_wheel_deployed"]] if "a_wheel_deployed" in wheel else []
    )
    return max(runs, key=lambda r: r["dispatch_lateness_ms"]["p99"]) if runs else None


def _deployed_note(run: Mapping[str, Any], runs: int = 1) -> str:
    """How the as-deployed run was sized and throttled, for the summary's notes."""
    size, tick = run["sizing"], run["tick"]
    return (
        (f"; of {runs} as-deployed runs, the one with the highest dispatch p99" if runs > 1 else "")
        + f"; as deployed: {tick['shards']} shards (as capacity.json sizes them: {size['tasks_per_s_per_shard']} "
        f"tasks/s per shard at {size['tick_memory_mb']} MB measured"
        + (
            f", the busiest at most {size['target_utilization']:.0%} of it"
            if "target_utilization" in size
            else ""
        )
        + f", the ring's busiest shard {size['busiest_shard_share']}x "
        f"the mean), entries placed by the ring (shard_for); each shard's own tick at "
        f"{tick['memory_mb']} MB, its CPU share ({tick['cpu_share']} of a vCPU) emulated by Throttle"
        + (
            f", charged its real adapters' CPU (bench/cost.py's {cpu['real_cpu_ms_per_task']} ms per task, "
            f"of which our code spent {cpu['own_cpu_ms_per_entry']} ms here and the rest was charged per entry)"
            if tick.get("real_adapters_charged") and (cpu := (tick.get("cpu_by_shard") or {}).get("0"))
            else ""
        )
    )


def _tick_cpu_before_after(
    results: Path, wheel: Mapping[str, Any], capacity: Mapping[str, Any] | None, usd_now: Any
) -> list[str]:
    """The tick's CPU per task and what follows from it, before the tick's CPU round of issue 16
    (``tick_cpu_before.json``: main's figures then) and now."""
    before = _load(results, "tick_cpu_before.json")
    cost = _load(results, "cost.json")
    if not before or not cost or not capacity:
        return []

    def worst(runs: list[Mapping[str, Any]]) -> str:
        if not runs:
            return "not run"
        run = max(runs, key=lambda r: r["dispatch_lateness_ms"]["p99"])
        d, st = run["dispatch_lateness_ms"], run["start_lateness_ms"]
        shards = run.get("tick", {}).get("shards", 1)
        return (
            f"{shards} shard(s): dispatch p99 {d['p99']} / max {d['max']} ms, start p99 {st['p99']} / max "
            f"{st['max']} ms (worst of {len(runs)})"
        )

    def one(run: Mapping[str, Any] | None) -> str:
        return worst([run]) if run else "not run"

    b, t = before["cost_tick"], cost["tick"]
    shards_now = {str(x["tasks_per_day"]): x["wheel_shards"]["needed"] for x in capacity["scales"]}
    shards_then = {k: v["needed"] for k, v in before["capacity_wheel_shards"].items()}
    rows = [
        f"The tick's CPU, before its CPU round (main at {before['commit'][:9]}) and now: a window read "
        "leaves out the items a tick already took (undecoded; with many taken, sort keys first and only "
        "the spans of new items read whole), and the tick works out each entry's key once.",
        "",
        "| figure | before | now |",
        "| --- | --- | --- |",
        f"| tick CPU per task (bench/cost.py, real adapters, moto excluded) | {b['cpu_ms_per_task']} ms | "
        f"{t['cpu_ms_per_task']} ms |",
        f"| tasks/s one shard dispatches at {t['memory_mb']} MB | {b['tasks_per_s_per_shard']} | "
        f"{t['tasks_per_s_per_shard']} |",
        f"| tick window Queries per second held (RRU per task) | {b['queries_per_s']} ({b['query_rru_per_task']}) "
        f"| {t.get('queries_per_s')} ({t.get('query_rru_per_task')}) |",
        "| wheel shards needed at 100M / 1B tasks a day | "
        f"{shards_then.get('100000000')} / {shards_then.get('1000000000')} | "
        f"{shards_now.get('100000000')} / {shards_now.get('1000000000')} |",
        f"| as deployed, 1,000 due/s, 256 MB | {worst(before['a_wheel_deployed_runs'])} | "
        f"{worst(wheel.get('a_wheel_deployed_runs') or [])} |",
        f"| one shard at 256 MB's share | {one(before.get('a_wheel_tick_256'))} | "
        f"{one(wheel.get('a_wheel_tick_256'))} |",
        f"| one shard at 128 MB's share | {one(before.get('a_wheel_tick_128'))} | "
        f"{one(wheel.get('a_wheel_tick_128'))} |",
        f"| as deployed at 128 MB (shards by its share) | not run | "
        f"{worst(wheel.get('a_wheel_deployed_tick_128_runs') or [])} |",
        f"| `usd_per_million_tasks` | {before['summary']['usd_per_million_tasks']} | {usd_now} |",
        "",
    ]
    return rows


def _dispatch_by_sizing(wheel: Mapping[str, Any]) -> list[str]:
    """The tick's dispatch lateness at 1,000 due/s on one full-core shard, one throttled shard and as
    deployed, side by side (the summary takes the deployed one)."""
    rows = [
        "Dispatch lateness at 1,000 due/s by how the tick is sized (time the tick sent an entry - its "
        "due time less the lead; the summary's `dispatch_lateness_p99_ms`, start and retry figures come "
        "from the as-deployed run with the highest dispatch p99 when it ran):",
        "",
        "| tick | shards | dispatch p50 / p99 / max ms | start p50 / p99 / max ms | early | lost | load average |",
        "| --- | ---: | --- | --- | ---: | ---: | --- |",
    ]
    deployed_runs = wheel.get("a_wheel_deployed_runs") or (
        [wheel["a_wheel_deployed"]] if "a_wheel_deployed" in wheel else []
    )
    for label, key, run in (
        ("one shard at a full core (the harness's default)", "a_wheel", wheel.get("a_wheel")),
        ("one shard at 256 MB's CPU share (Throttle)", "a_wheel_tick_256", wheel.get("a_wheel_tick_256")),
        *(("as deployed", "a_wheel_deployed", r) for r in deployed_runs),
        *(("as deployed", "a_wheel_deployed", r) for r in wheel.get("a_wheel_deployed_tick_128_runs") or []),
        *(
            (
                "as deployed by the rule before (70% of a shard's rate; 500 ms lane groups)",
                "a_wheel_deployed_70pct",
                r,
            )
            for r in wheel.get("a_wheel_deployed_runs_sized_70pct") or []
        ),
    ):
        if not run:
            continue
        d, st = run["dispatch_lateness_ms"], run["start_lateness_ms"]
        shards = run.get("tick", {}).get("shards", 1)
        if key == "a_wheel_deployed" and "sizing" in run:
            label = f"as deployed: {shards} shards at {run['sizing']['tick_memory_mb']} MB each (Throttle)"
        load = run.get("load_average")
        load_text = (
            f"{load[0][0]:.1f}, {load[1][0]:.1f}"
            if load
            else f"{wheel.get('load_average', [0])[0]:.1f} (harness start)"
        )
        rows.append(
            f"| {label} | {shards} | {d['p50']} / {d['p99']} / {d['max']} | {st['p50']} / {st['p99']} / "
            f"{st['max']} | {run.get('early_starts', 0)} | {run.get('lost', 0)} | {load_text} |"
        )
    deployed = _worst_deployed(wheel)
    if deployed:
        p99 = deployed["dispatch_lateness_ms"]["p99"]
        by_shard = deployed.get("dispatch_lateness_by_shard_ms") or {}
        over = [f"shard {s} alone {v['p99']} ms" for s, v in by_shard.items() if v.get("p99", 0) > 20]
        worst = f"the worst of {len(deployed_runs)} runs" if len(deployed_runs) > 1 else "one run"
        verdict = (
            f"As deployed the dispatch p99 is {p99} ms ({worst}): the 20 ms goal is met"
            + (" with no margin (p99 equals the goal)" if p99 == 20 else "")
            + (f"; {', '.join(over)}, over it" if over else "")
            + "."
            if p99 <= 20
            else f"As deployed the dispatch p99 is {p99} ms ({worst}): the 20 ms goal is NOT met, by "
            f"{p99 - 20:g} ms."
        )
        rows += ["", verdict]
        if by_shard:
            rows += [
                "By shard, that run: "
                + "; ".join(
                    f"shard {s}: {deployed['entries_by_shard'][s]:,} entries, dispatch p99 {v.get('p99')} / "
                    f"max {v.get('max')} ms"
                    for s, v in by_shard.items()
                )
                + "."
            ]
    return [*rows, ""]


def _charged_before_after(results: Path, wheel: Mapping[str, Any]) -> list[str]:
    """The harness before its throttled tick was charged its real adapters' CPU
    (``wheel_lateness_a_uncharged.json``) and now, side by side, with the CPU per entry it now spends."""
    before = _load(results, "wheel_lateness_a_uncharged.json")
    runs = wheel.get("a_wheel_deployed_runs") or []
    if not before or not runs or not runs[0].get("tick", {}).get("cpu_by_shard"):
        return []

    def worst(runs: list[Mapping[str, Any]] | None) -> str:
        if not runs:
            return "not run"
        run = max(runs, key=lambda r: r["dispatch_lateness_ms"]["p99"])
        d, st = run["dispatch_lateness_ms"], run["start_lateness_ms"]
        loads = ", ".join(f"{r['load_average'][0][0]:.1f}" for r in runs if r.get("load_average"))
        return (
            f"{run.get('tick', {}).get('shards', 1)} shard(s): dispatch p50 {d['p50']} / p99 {d['p99']} / max "
            f"{d['max']} ms, start p99 {st['p99']} / max {st['max']} ms, retry p99 "
            f"{run['retry_lateness_ms'].get('p99')} ms, early {run.get('early_starts', 0)}, lost "
            f"{run.get('lost', 0)} (worst of {len(runs)}" + (f"; load {loads}" if loads else "") + ")"
        )

    def one(run: Mapping[str, Any] | None) -> str:
        return worst([run]) if run else "not run"

    def cpu(runs: list[Mapping[str, Any]] | None) -> str:
        shards = [c for r in runs or [] for c in (r.get("tick", {}).get("cpu_by_shard") or {}).values()]
        if not shards:
            return "-"
        mean = {
            k: sum(c[k] for c in shards) / len(shards)
            for k in ("own_cpu_ms_per_entry", "charged_read_ms_per_entry", "charged_send_ms_per_entry")
        }
        return (
            f"{mean['own_cpu_ms_per_entry']:.3f} own + {mean['charged_read_ms_per_entry']:.3f} charged at "
            f"reads + {mean['charged_send_ms_per_entry']:.3f} at sends = "
            f"{sum(mean.values()):.3f} ms (real: {shards[0]['real_cpu_ms_per_task']} ms)"
        )

    tick_128 = wheel.get("a_wheel_deployed_tick_128_runs")
    return [
        "The harness before its throttled tick was charged its real adapters' CPU "
        "(`wheel_lateness_a_uncharged.json`: the fakes' in-memory calls cost it nothing, and each of its "
        "threads had a share of its own) and now (bench/wheel_lateness.py, `Throttle`: the real tick's CPU "
        "per task from bench/cost.py, less what the harness's tick spends in our code in the same run, "
        "charged per entry at the calls that carry it, on one quota for all the tick's threads):",
        "",
        "| at 1,000 due/s | before (not charged) | now (charged) |",
        "| --- | --- | --- |",
        f"| as deployed, 256 MB | {worst(before.get('a_wheel_deployed_runs'))} | {worst(runs)} |",
        f"| as deployed, 128 MB (shards by its share) | {worst(before.get('a_wheel_deployed_tick_128_runs'))} "
        f"| {worst(tick_128)} |",
        f"| one shard at 256 MB's share | {one(before.get('a_wheel_tick_256'))} | "
        f"{one(wheel.get('a_wheel_tick_256'))} |",
        f"| one shard at 128 MB's share | {one(before.get('a_wheel_tick_128'))} | "
        f"{one(wheel.get('a_wheel_tick_128'))} |",
        f"| tick CPU per entry (full-core ms), as deployed at 256 MB | not measured | {cpu(runs)} |",
        f"| tick CPU per entry (full-core ms), as deployed at 128 MB | not measured | {cpu(tick_128)} |",
        "",
    ]


def _deployed_variants(wheel: Mapping[str, Any]) -> list[str]:
    """Every as-deployed run kept apart by ``bench/wheel_lateness.py --only deployed`` with a variant
    (``a_wheel_deployed_<variant>_runs``: another rate, GROUP_MS, lead or shard count) beside the runs
    of the design as built at the same rate, one row per run."""
    import re

    keys = sorted(
        k
        for k in wheel
        if re.fullmatch(r"a_wheel_deployed_.+_runs", k) and k != "a_wheel_deployed_tick_128_runs"
    )
    if not keys:
        return []
    rows = [
        "## As deployed, variants (lane grouping, lead, shard count)",
        "",
        "Runs of `bench/wheel_lateness.py --only deployed` with one setting changed (the harness as "
        "above: shards by capacity.json unless set, each tick at 256 MB's CPU share and charged its "
        "real adapters' CPU). `group` is how long after a batch's first entry others may share its lane "
        "batch (the product's is `GROUP_MS` in domain/wheel.py); the worker's wait is its billed wait for due times per "
        "task (what `worker_wait` prices at a million a day, 12 due/s).",
        "",
        "| run | rate/s | shards | dispatch p50 / p99 / max ms | start p50 / p99 / max ms | retry p99 ms "
        "| early | lost | worker wait ms per task | records per invocation | load average |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    labelled = [("as built", r) for r in wheel.get("a_wheel_deployed_runs") or []]
    labelled += [
        (k[len("a_wheel_deployed_") : -len("_runs")].replace("_", " "), r) for k in keys for r in wheel[k]
    ]
    for label, run in labelled:
        d, st, w = run["dispatch_lateness_ms"], run["start_lateness_ms"], run["worker"]
        load = run.get("load_average")
        rows.append(
            f"| {label} | {run['rate_per_s']:,} | {run.get('tick', {}).get('shards', 1)} | {d['p50']} / {d['p99']} / "
            f"{d['max']} | {st['p50']} / {st['p99']} / {st['max']} | {run['retry_lateness_ms'].get('p99', '-')} "
            f"| {run.get('early_starts', 0)} | {run.get('lost', 0)} | {w['wait_ms_per_task']} | "
            f"{w['records_per_invocation']} | "
            + (f"{load[0][0]:.1f}, {load[1][0]:.1f}" if load else "-")
            + " |"
        )
    return [*rows, ""]


def _before_after(results: Path, s: Mapping[str, Any]) -> list[str]:
    """The headline figures before issue 16 (the committed results of that design, and the same
    harness run on it) beside today's."""
    import pricing as pricing_mod

    before = _load(results, "summary_before.json") or {}
    wheel = _load(results, "wheel_lateness_a.json") or {}
    old = wheel.get("a_wheel_before") or {}
    cost_before = _load(results, "cost_before.json")
    values: dict[str, Any] = {k: (v or {}).get("value") for k, v in before.items()}
    if cost_before:
        values["idle_usd_per_month"] = pricing_mod.idle_before_issue_16(
            cost_before, pricing_mod.load_prices()
        )["usd_per_month"]
    if old:
        values["start_lateness_p99_ms"] = old["start_lateness_ms"]["p99"]
        values["start_lateness_max_ms"] = old["start_lateness_ms"]["max"]
        values["retry_lateness_p99_ms"] = old["retry_lateness_ms"]["p99"]
    rows = [
        "",
        "## Before and after (issue 16)",
        "",
        "Before: the committed results of the design issue 16 started from (`bench/results/*_before.json`),",
        "and that design run through today's harness (the tick sending at the due time, workers starting",
        "what they receive at once, retries up to 15 minutes on the lanes' whole-second DelaySeconds).",
        "",
        "| figure | before | after | goal |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, (text, _) in GOALS.items():
        if key in (
            "local_tasks_per_s",
            "local_vs_huey_ratio",
            "local_fire_p99_ms_at_100_per_s",
            "dag_makespan_ratio_max",
        ):
            continue
        rows.append(
            f"| `{key}` | {_fmt(values.get(key), UNITS[key])} | {_fmt(s[key]['value'], UNITS[key])} | {text} |"
        )
    rows.append("")
    return rows


def _starts(wheel: Mapping[str, Any] | None) -> list[str]:
    """Start and retry lateness, and what waiting for due times costs, by design and load."""
    if not wheel or "a_wheel" not in wheel or "start_lateness_ms" not in wheel["a_wheel"]:
        return []
    rows = [
        "## Starts and retries (started_at - run_at)",
        "",
        "The modelled-AWS harness (`bench/wheel_lateness.py` part a): the real tick over in-memory adapters",
        f"with injected latency; the event source mapping's pickup modelled as {wheel['pickup_model']['fast']},",
        f"{wheel['pickup_model']['slow']} (p50 {wheel['pickup_model']['p50_ms']} ms, p99 "
        f"{wheel['pickup_model']['p99_ms']} ms, max {wheel['pickup_model']['max_ms']} ms): "
        f"{wheel['pickup_model']['why']}. The worker is modelled from its measured CPU at its memory's share "
        "of a vCPU (one interpreter: a record waking while another holds the CPU waits up to Python's 5 ms "
        "switch interval). A tick at a Lambda memory (as deployed) runs at that memory's CPU share, one "
        "quota for all its threads, and is charged the CPU its real adapters (botocore) would spend: "
        "bench/cost.py's real tick CPU per task less what its own code spent in the same run, per entry "
        "at the calls that carry it (see 'Dispatch lateness'). Load average "
        + ", ".join(
            f"{x:.1f}" for x in wheel.get("load_average", [])[:1] + wheel.get("load_average_after", [])[:1]
        )
        + " (before, after) on 2 shared cores."
        + (
            f" The design as built ({', '.join(k for k in ('a_wheel', 'a_wheel_at_1m_per_day'))}) was run "
            f"again by itself at load {wheel['a_wheel_rerun']['load_average_before'][0]:.1f}: "
            f"{wheel['a_wheel_rerun']['note']}; the first pass: start p99 "
            f"{wheel['a_wheel_rerun']['first_pass']['a_wheel']['start_lateness_ms']['p99']} / max "
            f"{wheel['a_wheel_rerun']['first_pass']['a_wheel']['start_lateness_ms']['max']} ms, dispatch p99 "
            f"{wheel['a_wheel_rerun']['first_pass']['a_wheel']['dispatch_lateness_ms']['p99']} ms."
            if wheel.get("a_wheel_rerun")
            else ""
        ),
        "",
        "| design, load | start p50 / p99 / max ms | early | retry p50 / p99 / max ms | worker wait ms per task | worker invocations per task |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for label, key in (
        ("lead + wait (now)", "a_wheel"),
        ("lead + wait (now), ~1M/day", "a_wheel_at_1m_per_day"),
        ("lead + wait (now), as deployed (shards by capacity.json, tick throttled)", "a_wheel_deployed"),
        ("before issue 16", "a_wheel_before"),
        ("DelaySeconds only, each task sent alone", "a_delayseconds_direct"),
        ("DelaySeconds only, batches of 100", "a_delayseconds_direct_batched"),
        ("DelaySeconds only, batches of 100, ~1M/day", "a_delayseconds_direct_at_1m_per_day"),
    ):
        run = wheel.get(key)
        if not run:
            continue
        rate = run.get("rate_per_s") or (run.get("tasks", 0) // 60)
        label = f"{label}, {rate:,} due/s" if "1M/day" not in label else f"{label} ({rate:,} due/s)"
        st = run["start_lateness_ms"]
        rt = run.get("retry_lateness_ms") or {}
        retry = f"{rt['p50']} / {rt['p99']} / {rt['max']}" if rt.get("n") else "-"
        w = run["worker"]
        rows.append(
            f"| {label} | {st['p50']} / {st['p99']} / {st['max']} | {run.get('early_starts', 0)} | {retry} | "
            f"{w.get('wait_ms_per_task', 0):.1f} | {w.get('invocations_per_task', 0):.3f} |"
        )
    by_backoff = wheel["a_wheel"].get("retry_lateness_by_backoff_ms") or {}
    if by_backoff:
        rows += [
            "",
            "Retries by backoff (now, 1,000 due/s): "
            + "; ".join(
                f"{int(b):,} ms: p99 {v['p99']} ms (n={v['n']})" for b, v in by_backoff.items() if v.get("n")
            )
            + ".",
        ]
    rows += [""]
    return rows


def _fire_burst(wheel: Mapping[str, Any] | None) -> list[str]:
    """Schedule fires due at one instant: their start lateness and that of the tasks due beside them,
    the fires as before and as now, side by side."""
    bursts = (wheel or {}).get("a_fire_bursts")
    if not bursts:
        return []
    first = next(iter(bursts.values()))
    rows = [
        "## Schedule fires in a burst (started_at - fire_at)",
        "",
        "`python bench/wheel_lateness.py --only fires --rate R --fires N`: N schedule fires due at one instant, "
        f"amid {first['rate_per_s']:,} tasks due a second (a shard's share of 1,000 as deployed), on one shard "
        f"({first['note']}); the tick at {first['tick_mb']} MB (its CPU share emulated, its real adapters' "
        f"CPU charged, and each fire's {first['fire_cpu_ms']} ms of CPU: bench/tick_reads.py's real fire "
        "over moto, moto excluded), the pickup and the worker modelled as above. Load average "
        + ", ".join(f"{b['load_average'][0]:.1f}" for b in bursts.values())
        + ".",
        "",
        "| fires | design | run | fire start p50 / p99 / max ms | early | tasks due beside them "
        "(-0.5 s to +2 s): start p50 / p99 / max ms |",
        "| ---: | --- | ---: | --- | ---: | --- |",
    ]
    for fires, burst in bursts.items():
        for name, label in (
            ("before", "before: when due, on the tick's loop"),
            ("now", "now: a lead ahead, on their own threads"),
        ):
            for i, run in enumerate(burst["runs"].get(name, []), 1):
                f = run["fire_burst"]["fire_start_lateness_ms"]
                b = run["fire_burst"]["tasks_beside_start_lateness_ms"]
                rows.append(
                    f"| {int(fires):,} | {label} | {i} | {f['p50']} / {f['p99']} / {f['max']} | "
                    f"{run['fire_burst']['early']} | {b['p50']} / {b['p99']} / {b['max']} |"
                )
    return [*rows, ""]


def _idle(pricing: Mapping[str, Any] | None) -> list[str]:
    if not pricing or "idle" not in pricing:
        return []
    idle = pricing["idle"]
    rows = ["## Idle environment, a month", "", "| line | USD a month |", "| --- | ---: |"]
    rows += [f"| {k} | {v:.4f} |" for k, v in idle["lines"].items()]
    rows += [f"| **platform** | **{idle['usd_per_month']:.2f}** |"]
    rows += [f"| {k} (monitoring) | {v:.2f} |" for k, v in idle["monitoring_lines"].items()]
    rows += ["", *[f"- {a}" for a in idle["assumptions"]], ""]
    return rows


def _make_test(pairs: list[Mapping[str, Any]]) -> list[str]:
    """`make test` before and after issue 17's default backend (bench/make_test.py), a table a pair."""
    lines = ["## make test (issue 17: no slower on 2 cores)", ""]
    if not pairs:
        return [*lines, "Not run (bench/make_test.py).", ""]
    for made in pairs:
        lines += [
            "| tree | commit | wall s | CPU s (user + sys) | tests passed | load average before, after |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for r in made["runs"]:
            passed = " + ".join(str(run.get("passed", 0)) for run in r["runs"]) or "?"
            load = r.get("load_average_before_after")
            shown = ", ".join(str(x[0]) for x in load) if load else "-"
            lines.append(
                f"| {r['tree']} | `{r['commit']}` | {r['wall_s']} | {r['cpu_s']} ({r['user_s']} + {r['sys_s']}) | "
                f"{passed} | {shown} |"
            )
        lines += [
            "",
            f"After / before: wall {made['wall_ratio']}x, CPU {made['cpu_ratio']}x. {made['note']}.",
            "",
        ]
    return lines


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "not run"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _plot(name: str, alt: str, plots: Path) -> list[str]:
    if (plots / name).exists():
        return [f"![{alt}](docs/bench/{name})", ""]
    return [f"*(plot `{name}` not made: its input is missing)*", ""]


def render(results: Path = RESULTS, plots: Path = PLOTS) -> str:
    s = summary(results)
    pricing = _load(results, "pricing.json")
    capacity = _load(results, "capacity.json")
    wheel = _load(results, "wheel_lateness_a.json")
    cold = _load(results, "cold_start.json")
    local = _load(results, "local_throughput.json")
    compile_rows = _load(results, "workflow_compile.json")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/report.py` from `bench/results/*.json` (`make bench` runs everything and",
        "rewrites this page). Figures are measurements on the machine that ran them (a shared 2-core box",
        "for the committed results), except prices and the capacity model, which are arithmetic on the",
        "measured units with published prices and quotas. No benchmark is a timed test.",
        "",
        "## Headline figures",
        "",
        "| figure | value | how it was measured |",
        "| --- | --- | --- |",
    ]
    for key, metric in s.items():
        lines.append(f"| `{key}` | {_fmt(metric['value'], UNITS[key])} | {metric['note']} |")
    lines += ["", "## Goals (issues 7 and 16)", "", "| goal | result | met |", "| --- | --- | --- |"]
    for key, (text, test) in GOALS.items():
        value = s[key]["value"]
        if key == "local_tasks_per_s":
            met = None if local is None else (local["tasks"] >= 10_000 and local["lost"] == 0)
            shown = (
                "not run" if local is None else f"{local['succeeded']}/{local['tasks']}, lost {local['lost']}"
            )
        else:
            met = None if value is None or test is None else test(value)
            shown = _fmt(value)
        lines.append(f"| {text} | {shown} | {'not run' if met is None else ('met' if met else 'not met')} |")
    lines += _before_after(results, s)
    lines += _starts(wheel)
    lines += _fire_burst(wheel)
    lines += _idle(pricing)
    lines += [
        "",
        "## What each benchmark measures and how to rerun it",
        "",
        "| benchmark | measures | rerun | results |",
        "| --- | --- | --- | --- |",
        "| cold start | import time of each handler module in a fresh interpreter (median of 10) beside "
        "`import boto3` | `python bench/cold_start.py` | `cold_start.json` |",
        "| cost | every AWS request of 10,000 delayed tasks through the real handlers (botocore hooks), as "
        "billable units per task | `python bench/cost.py` | `cost.json` |",
        "| wheel lateness (a) | the modelled-AWS harness: start and retry lateness (the real tick, modelled "
        "pickup and worker), the worker's waits, at 1,000 and ~12 due/s, beside the design before, "
        "DelaySeconds only, a 1 s table poller and SQS DelaySeconds; schedule fires in a burst, before and now "
        "| `python bench/wheel_lateness.py --only a` (the bursts alone: `--only fires --rate 200 --fires N`) "
        "| `wheel_lateness_a.json` |",
        "| workflows | ASL compile time and size; makespan / critical path on taskplane dev | "
        "`python bench/workflow_bench.py` | `workflow_compile.json`, `workflow_makespan.json` |",
        "| local throughput | tasks/s through `taskplane dev` and where its CPU goes (moto, botocore, the rest) | "
        "`python bench/local_throughput.py` | `local_throughput.json` |",
        "| pricing | USD per million tasks by line: taskplane (on-demand, provisioned), EventBridge Scheduler, "
        "Step Functions | `python bench/pricing.py` | `pricing.json` |",
        "| capacity | shards, partitions, concurrency, quotas and cost per day at 1M / 100M / 1B tasks a day | "
        "`python bench/capacity.py` | `capacity.json` |",
        "",
        "Everything: `make bench` (`python bench/run.py`; `--only cost,pricing` for some, `--quick` for a",
        "smaller smoke run whose figures are not comparable). Plots: `python bench/plots.py`; this page:",
        "`python bench/report.py`.",
        "",
        "## Cost per million delayed tasks",
        "",
    ]
    if pricing:
        designs = pricing["usd_per_million"]
        all_lines = sorted({ln for d in designs.values() for ln in d["lines"]})
        lines.append("| line | " + " | ".join(designs) + " |")
        lines.append("| --- |" + " ---: |" * len(designs))
        for ln in all_lines:
            lines.append(
                f"| {ln} | " + " | ".join(f"{d['lines'].get(ln, 0):.4f}" for d in designs.values()) + " |"
            )
        lines.append("| **total** | " + " | ".join(f"**{d['total']:.2f}**" for d in designs.values()) + " |")
        lines += [
            "",
            f"At {pricing['tasks_per_day']:,.0f} tasks a day on {pricing['shards']} shard(s); Step Functions "
            f"with {pricing['sfn_transitions_per_task']} transitions per task "
            f"({pricing['step_functions_standard_total_if_3_transitions']:.2f} USD if the start counted too). "
            "Lambda GB-s include the modelled wait on AWS calls (see the assumptions); worker_wait is the "
            "worker's billed wait for due times at this load, measured by bench/wheel_lateness.py.",
            "",
            *_cost_story(_load(results, "cost.json"), pricing),
            *_directions(pricing),
            *_plot("cost_per_million.png", "cost per million tasks by line", plots),
            "Prices (us-east-1, `bench/prices.json`):",
            "",
            "| price | USD | per | source | verified |",
            "| --- | ---: | --- | --- | --- |",
        ]
        for name, p in pricing["prices"].items():
            lines.append(
                f"| {name} | {p['usd']} | {p['per']:,} {p['unit']} | {p['source']} | {p['verified']} |"
            )
        lines += ["", "Assumptions:", ""] + [f"- {a}" for a in pricing["assumptions"]] + [""]
    else:
        lines += ["Not run: `bench/results/cost.json` (bench/cost.py) is missing.", ""]
    lines += ["## Dispatch lateness", ""]
    if wheel and "a_wheel" in wheel:
        lines += _dispatch_by_sizing(wheel)
        lines += _charged_before_after(results, wheel)
        lines += _tick_cpu_before_after(results, wheel, capacity, s["usd_per_million_tasks"]["value"])
        lines += ["| design | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: |"]
        for label, key, field in (
            ("timing wheel, dispatch (one shard, full core)", "a_wheel", "dispatch_lateness_ms"),
            ("timing wheel, on queue (one shard, full core)", "a_wheel", "on_queue_lateness_ms"),
            ("timing wheel, dispatch (as deployed)", "a_wheel_deployed", "dispatch_lateness_ms"),
            ("timing wheel, on queue (as deployed)", "a_wheel_deployed", "on_queue_lateness_ms"),
            ("table poller every 1 s, on queue", "a_table_poller_1s", "on_queue_lateness_ms"),
            ("SQS DelaySeconds, on queue", "a_sqs_delay_seconds", "on_queue_lateness_ms"),
        ):
            st = (wheel.get(key) or {}).get(field)
            if st:
                lines.append(f"| {label} | {st['p50']} | {st['p99']} | {st['max']} |")
        window = (wheel.get("a_eventbridge_scheduler") or {}).get("documented_window_ms")
        if window:
            lines.append(f"| EventBridge Scheduler (documented window) | | | {window:,} |")
        lines += ["", *_plot("dispatch_lateness.png", "dispatch lateness", plots)]
        lines += _deployed_variants(wheel)
    else:
        lines += ["Not run.", ""]
    lines += ["## Cold start", ""]
    if cold and "handlers" in cold:
        warm = all("warm_up" in h for h in cold["handlers"].values())
        if warm:
            lines += [
                "Medians at one core. *Import*: the module alone, as pytest, moto and `taskplane dev` "
                "import it (the 300 ms goal). *Init*: as Lambda's init phase imports it, which also "
                "makes the tracer and the platform (`taskplane/init_phase.py`; on demand at a full vCPU). "
                "*First call*: what a new instance's first invocation then still sets up (at the memory's "
                "share of a vCPU), with the warm-up and without it.",
                "",
                "| handler | import ms | init ms (with warm-up) | first call ms, with warm-up | "
                "first call ms, without |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {n} | {h['median_ms']} | {h['warm_up']['init_median_ms']} | "
                f"{h['warm_up']['first_call_median_ms']} | {h['warm_up']['without_warm_up_first_call_median_ms']} |"
                for n, h in cold["handlers"].items()
            ]
            lines += [f"| `import boto3` alone | {cold['baseline_boto3_ms']['median_ms']} | | | |", ""]
        else:
            lines += ["| handler | median import ms |", "| --- | ---: |"]
            lines += [f"| {n} | {h['median_ms']} |" for n, h in cold["handlers"].items()]
            lines += [f"| `import boto3` alone | {cold['baseline_boto3_ms']['median_ms']} |", ""]
        lines += _plot("cold_start.png", "handler import times", plots)
    else:
        lines += ["Not run (bench/cold_start.py).", ""]
    lines += _worker_memory(_load(results, "worker_rss.json"), results)
    lines += ["## Workflows", ""]
    if compile_rows:
        lines += ["| nodes | compile ms | ASL bytes | % of 1 MB |", "| ---: | ---: | ---: | ---: |"]
        lines += [
            f"| {r['nodes']} | {r['compile_ms']} | {r['asl_bytes']:,} | {r['quota_used_pct']} |"
            for r in compile_rows
        ]
        lines.append("")
    if s["dag_makespan_ratio_max"]["value"] is not None:
        lines += [
            f"Makespan / critical path (worst): {s['dag_makespan_ratio_max']['value']}. "
            + s["dag_makespan_ratio_max"]["note"],
            "",
        ]
    lines += _make_test([_load(results, p.name) for p in sorted(results.glob("make_test*.json"))])
    lines += ["## Local throughput", ""]
    if local and "backends" in local:
        b, huey, fire = local["backends"], local["huey"], local["fire_lateness"]
        lines += [
            "The same echo tasks, side by side in one run (`bench/local_throughput.py`):",
            "",
            "| runtime | tasks/s | lost | CPU ms per task |",
            "| --- | ---: | ---: | ---: |",
            f"| taskplane dev, SQLite backend (default) | {b['sqlite']['tasks_per_s']} | {b['sqlite']['lost']} | "
            f"{b['sqlite']['cpu_ms_per_task']} |",
            f"| taskplane dev --backend moto | {b['moto']['tasks_per_s']} | {b['moto']['lost']} | "
            f"{b['moto']['cpu_ms_per_task']} |",
            f"| Huey on SQLite, end to end | {huey['tasks_per_s']} | {huey['lost']} | |",
            f"| Huey on SQLite, prefilled queue drained | {huey['prefilled_drain']['tasks_per_s']} | "
            f"{huey['prefilled_drain']['lost']} | |",
            "",
            "Delayed tasks at 100 a second, started_at - run_at:",
            "",
            "| backend | p50 | p99 | max | early | lost |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {name} | {f['fire_lateness_ms']['p50']} ms | {f['fire_lateness_ms']['p99']} ms | "
                f"{f['fire_lateness_ms']['max']} ms | {f['early_starts']} | {f['lost']} |"
                for name, f in fire.items()
            ),
            "",
            s["local_tasks_per_s"]["note"] + ".",
            "",
        ]
        lines += _plot("local_profile.png", "local runtime profile", plots)
    elif local:
        lines += [s["local_tasks_per_s"]["note"] + f": **{local['tasks_per_s']} tasks/s**.", ""]
        lines += _plot("local_profile.png", "local runtime profile", plots)
    else:
        lines += ["Not run.", ""]
    lines += ["## Capacity model", ""]
    if capacity:
        lines += [
            "| tasks/day | peak/s | wheel shards | task buckets | worker concurrency | DynamoDB $/day "
            "(on-demand / provisioned) | total $/day (on-demand) | first limit hit | how the design passes it |",
            "| ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
        ]
        for sc in capacity["scales"]:
            first = (
                sc["first_limit"]
                or f"none (nearest: {sc['nearest_limit']['limit']}, {sc['nearest_limit']['ratio']:.0%})"
            )
            lines.append(
                f"| {sc['tasks_per_day']:,} | {sc['peak_tasks_per_s']:,.0f} | {sc['wheel_shards']['needed']} | "
                f"{sc['task_buckets_needed']} | {sc['worker_concurrency_peak']:,.0f} | "
                f"{sc['dynamodb_usd_per_day']['on_demand']:,.2f} / {sc['dynamodb_usd_per_day']['provisioned']:,.2f} | "
                f"{sc['total_usd_per_day']['on_demand']:,.2f} | {first} | {sc['first_limit_remedy'] or '-'} |"
            )
        lines += [""]
        reshard = [sc for sc in capacity["scales"] if "reshard" in sc]
        if reshard:
            r = reshard[0]["reshard"]
            lines += [
                "Wheel shards change online (a deploy of `wheel_shards`): shards sit on a consistent hash "
                "ring, so the busiest takes "
                + ", ".join(
                    f"{sc['wheel_shards']['hottest_share']:.2f}x the mean at {sc['wheel_shards']['needed']}"
                    for sc in reshard
                )
                + f" (counted in the shards above); one more shard re-homes 1/(n+1) of new entries, doubling "
                f"re-homes {r['moves_doubling']:.0%}; writers follow within {r['applies_within_s']} s; entries "
                f"already written never move: a removed shard drains for {r['drain_days']:.0f} days at "
                f"${r['drain_usd_per_removed_shard_month']:.2f} a month (its tick's check a minute); at most "
                f"{r['ticking_shards_max']} shards on the ring and draining together.",
                "",
            ]
        for sc in capacity["scales"]:
            if sc["limits_hit"]:
                lines.append(
                    f"At {sc['tasks_per_day']:,} a day every limit hit, in the order the load reaches them:"
                )
                lines.append("")
                lines += [
                    f"- {row['limit']}: {row['ratio']:.1f}x -> {row['remedy']}"
                    for row in sc["limits"]
                    if row["hit"]
                ]
                lines.append("")
        lines += _plot("capacity.png", "capacity model", plots)
        lines += ["Assumptions:", ""] + [f"- {a}" for a in capacity["assumptions"]] + [""]
    else:
        lines += ["Not run: needs `bench/results/cost.json`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def run(results: Path = RESULTS, plots: Path = PLOTS, page: Path = ROOT / "BENCHMARKS.md") -> dict[str, Any]:
    s = summary(results)
    results.mkdir(exist_ok=True)
    (results / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    page.write_text(render(results, plots))
    return s


def _check(s: Mapping[str, Any]) -> None:
    for key, metric in s.items():
        print(f"{key}: {metric['value']}")


if __name__ == "__main__":
    _check(run())
