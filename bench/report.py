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

#: The goals of issue 7, as (summary key, goal text, test on the value).
GOALS = {
    "usd_per_million_tasks": ("<= $2.50 per million delayed tasks, end to end", lambda v: v <= 2.50),
    "handler_import_ms_max": ("<= 300 ms import per handler", lambda v: v <= 300),
    "local_tasks_per_s": ("10,000 immediate tasks through taskplane dev, none lost", None),
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
        out["usd_per_million_tasks"] = _metric(
            on_demand,
            f"bench/cost.py's billable units per delayed task on the real handlers, priced by bench/pricing.py "
            f"at us-east-1 list prices (bench/prices.json, checked {pricing.get('prices_checked')}): DynamoDB "
            f"on-demand, 30 days of history stored, the tick amortized over {pricing['tasks_per_day']:,.0f} "
            f"tasks/day on {pricing['shards']} shard(s); with provisioned capacity at 70% utilization "
            f"{provisioned:.2f}{at_scale}",
        )
    else:
        out["usd_per_million_tasks"] = _metric(
            None, "bench/results/pricing.json missing (needs bench/cost.py)"
        )
    if wheel and "a_wheel" in wheel:
        out["dispatch_lateness_p99_ms"] = _metric(
            wheel["a_wheel"]["dispatch_lateness_ms"]["p99"],
            f"bench/wheel_lateness.py (a): the real tick over in-memory adapters with injected AWS latency "
            f"(DynamoDB {wheel['injected_latency_ms']['dynamodb_call']} ms/call, SQS "
            f"{wheel['injected_latency_ms']['sqs_batch']} ms/batch), {wheel['a_wheel']['tasks']:,} tasks; "
            "dispatch time - due time",
        )
    else:
        out["dispatch_lateness_p99_ms"] = _metric(None, "bench/results/wheel_lateness_a.json missing")
    if cold and "handlers" in cold:
        out["handler_import_ms_max"] = _metric(
            max(h["median_ms"] for h in cold["handlers"].values()),
            f"bench/cold_start.py: median of {cold.get('repeats', '?')} fresh interpreters per handler, the "
            f"slowest handler; import boto3 alone {cold['baseline_boto3_ms']['median_ms']} ms",
        )
    else:
        out["handler_import_ms_max"] = _metric(None, "bench/results/cold_start.json missing")
    if makespan and "summary" in makespan:
        out["dag_makespan_ratio_max"] = _metric(
            makespan["summary"]["taskplane_ratio_measured"]["max"],
            f"bench/workflow_bench.py: makespan / critical path of the nodes' measured times, worst of "
            f"{len(makespan.get('dags', []))} non-series-parallel DAGs on taskplane dev (moto); the ratio "
            f"against the nominal sleeps is {makespan['summary']['taskplane_ratio_nominal']['max']}",
        )
    else:
        out["dag_makespan_ratio_max"] = _metric(None, "bench/results/workflow_makespan.json missing")
    if local:
        moto = (local.get("profile") or {}).get("moto_share")
        out["local_tasks_per_s"] = _metric(
            local["tasks_per_s"],
            f"bench/local_throughput.py: {local['succeeded']}/{local['tasks']} echo tasks through taskplane dev "
            f"(in-process moto), lost {local['lost']}"
            + (f", {moto:.0%} of the process's CPU inside moto" if moto is not None else ""),
        )
    else:
        out["local_tasks_per_s"] = _metric(None, "bench/results/local_throughput.json missing")
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
        f"The floor: a delayed task is written four times (its record and its wheel entry at submission, "
        f"its start and its finish): {u['dynamodb_wru']:.2f} WRU measured, "
        f"{u['dynamodb_wru'] * wru_price:.2f} USD per million on-demand before anything else, which is "
        "the whole $2.50 goal. The start write is the guard that no attempt runs twice and the finish "
        "write is the history, so the goal is met only where writes cost less: provisioned capacity "
        "(the table's steady load at 70% utilization) brings the same four writes to "
        f"{pricing['usd_per_million']['taskplane_provisioned']['lines']['dynamodb_writes']:.2f} USD.",
        "",
    ]
    return rows


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
    units = {
        "usd_per_million_tasks": " USD",
        "dispatch_lateness_p99_ms": " ms",
        "handler_import_ms_max": " ms",
        "dag_makespan_ratio_max": "",
        "local_tasks_per_s": " tasks/s",
    }
    for key, metric in s.items():
        lines.append(f"| `{key}` | {_fmt(metric['value'], units[key])} | {metric['note']} |")
    lines += ["", "## Goals (issue 7)", "", "| goal | result | met |", "| --- | --- | --- |"]
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
        "| wheel lateness (a) | dispatch lateness of the real tick with injected AWS latency, beside a 1 s "
        "table poller and SQS DelaySeconds | `python bench/wheel_lateness.py --only a` | `wheel_lateness_a.json` |",
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
            "Lambda GB-s include the modelled wait on AWS calls (see the assumptions).",
            "",
            *_cost_story(_load(results, "cost.json"), pricing),
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
        lines += ["| design | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: |"]
        for label, key, field in (
            ("timing wheel, dispatch", "a_wheel", "dispatch_lateness_ms"),
            ("timing wheel, on queue", "a_wheel", "on_queue_lateness_ms"),
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
    else:
        lines += ["Not run.", ""]
    lines += ["## Cold start", ""]
    if cold and "handlers" in cold:
        lines += ["| handler | median import ms |", "| --- | ---: |"]
        lines += [f"| {n} | {h['median_ms']} |" for n, h in cold["handlers"].items()]
        lines += [f"| `import boto3` alone | {cold['baseline_boto3_ms']['median_ms']} |", ""]
        lines += _plot("cold_start.png", "handler import times", plots)
    else:
        lines += ["Not run (bench/cold_start.py).", ""]
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
    lines += ["## Local throughput", ""]
    if local:
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
