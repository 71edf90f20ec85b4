"""`make bench`: run every benchmark in order, write bench/results/*.json, print one table.

Order: cold start, cost, wheel lateness (a), workflow compile + makespan, local throughput, OTLP
export, then the arithmetic on their results: pricing, capacity, plots (docs/bench/*.png), report
(BENCHMARKS.md and bench/results/summary.json). A benchmark module that is not there (yet) is skipped with a message;
the steps after it use whatever results files exist.

    python bench/run.py                          # everything (about 30-40 minutes on 2 shared cores)
    python bench/run.py --only pricing,capacity,plots,report
    python bench/run.py --quick                  # smaller sizes; writes under bench/results/quick/

``--quick`` is a smoke run: its figures are not comparable with a full run's, so it writes its
results, plots and page under bench/results/quick/ (git-ignored) and leaves the committed ones alone.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STEPS = (
    "cold_start",
    "cost",
    "worker_rss",
    "wheel",
    "workflow",
    "local",
    "otlp",
    "retry_hub",
    "pricing",
    "capacity",
    "plots",
    "report",
)

#: Sizes per step: (full, quick).
SIZES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cold_start": ({"repeats": 10}, {"repeats": 3}),
    "cost": ({"tasks": 10_000}, {"tasks": 300}),
    "wheel": ({"seconds": 60, "rate": 1000}, {"seconds": 8, "rate": 200}),
    "workflow": (
        {"sizes": (10, 100, 1000), "repeat": 5, "dags": 20, "repeats": 2},
        {"sizes": (10, 100), "repeat": 2, "dags": 2, "repeats": 1},
    ),
    "local": (
        {"tasks": 10_000, "timeout_s": 1800, "fire_rate": 100, "fire_seconds": 20},
        {"tasks": 200, "timeout_s": 300, "fire_rate": 100, "fire_seconds": 3},
    ),
    "otlp": ({"tasks": 300, "rounds": 5, "repeats": 7}, {"tasks": 30, "rounds": 2, "repeats": 2}),
    "retry_hub": ({"tasks": 1000}, {"tasks": 100}),
}


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments it accepts (the benchmarks' signatures differ)."""
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in params})


#: Runs of bench/wheel_lateness.py a rerun of the wheel step keeps: the shards the 70% rule sized (at
#: 500 ms lane groups), the figures that made the rule 22%.
KEPT_WHEEL_RUNS = ("a_wheel_deployed_runs_sized_70pct",)


def _write(results: Path, name: str, data: Any) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / name).write_text(json.dumps(data, indent=2) + "\n")


def _load(results: Path, name: str) -> Any | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


# -- steps: each returns table rows [(benchmark, figure, how)] ------------------------------------------
Row = tuple[str, str, str]


def step_cold_start(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("cold_start")
    if mod is None or not hasattr(mod, "run"):
        return [("cold start", "skipped", "bench/cold_start.py is not there yet")]
    data = _call(mod.run, **size)
    _write(results, "cold_start.json", data)
    worst = max(data["handlers"].items(), key=lambda kv: kv[1]["median_ms"])
    return [
        (
            "handler import (slowest)",
            f"{worst[1]['median_ms']} ms ({worst[0]})",
            f"median of {size.get('repeats')} fresh interpreters; import boto3 {data['baseline_boto3_ms']['median_ms']} ms; goal {data.get('goal_ms', 300)} ms",
        )
    ]


def step_cost(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("cost")
    if mod is None or not hasattr(mod, "run"):
        return [("cost (units per task)", "skipped", "bench/cost.py is not there yet")]
    data = _call(mod.run, **size)
    if isinstance(data, dict):
        _write(results, "cost.json", data)
    data = _load(results, "cost.json") or {}
    u = data.get("units_per_task", {})
    return [
        (
            "billable units per delayed task",
            f"{u.get('dynamodb_wru', '?')} WRU, {u.get('dynamodb_rru', '?')} RRU, {u.get('sqs_requests', '?')} SQS",
            f"{data.get('tasks', '?')} tasks through the real handlers, botocore hooks",
        )
    ]


def step_worker_rss(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("worker_rss")
    if mod is None:
        return [("worker memory", "skipped", "bench/worker_rss.py is missing")]
    data = mod.run()
    _write(results, "worker_rss.json", data)
    worst = max(data["batches"], key=lambda b: b["estimate_deployed_peak_mib"] if b["memory_mb"] else 0)
    return [
        (
            "worker memory, batch of 10",
            f"init {data['init_rss_mib']} MiB; peak ~{worst['estimate_deployed_peak_mib']} MiB",
            f"{worst['payload_kib']:,} KiB payloads as a {worst['memory_mb']} MB worker (payload budget "
            f"{worst['payload_budget_mib']} MiB); moto's copies included",
        )
    ]


def step_wheel(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("wheel_lateness")
    if mod is None:
        return [("wheel lateness (a)", "skipped", "bench/wheel_lateness.py is missing")]
    seconds, rate = size["seconds"], size["rate"]
    result = mod.harness(seconds, rate)
    # Runs kept on purpose from an earlier design (the report shows them as what they were measured at)
    earlier = _load(results, "wheel_lateness_a.json") or {}
    result.update({k: earlier[k] for k in KEPT_WHEEL_RUNS if k in earlier})
    _write(results, "wheel_lateness_a.json", result)
    a = result["a_wheel"]
    w, st, rt = a["dispatch_lateness_ms"], a["start_lateness_ms"], a["retry_lateness_ms"]
    before = result["a_wheel_before"]["start_lateness_ms"]
    load = result["load_average"][0]
    return [
        (
            "start lateness (started_at - run_at)",
            f"p50 {st['p50']} / p99 {st['p99']} / max {st['max']} ms",
            f"{a['tasks']:,} tasks at {rate}/s, {a['early_starts']} early, lost {a['lost']}; before issue 16 "
            f"p99 {before['p99']} ms; load {load:.1f}",
        ),
        (
            "retry lateness",
            f"p99 {rt['p99']} / max {rt['max']} ms",
            f"{rt['n']} retries, backoffs 50 ms to 20 s (inline up to 1 s, else the wheel)",
        ),
        (
            "dispatch lateness, timing wheel",
            f"p50 {w['p50']} / p99 {w['p99']} / max {w['max']} ms",
            f"against each entry's send time (due - lead); worker wait {a['worker']['wait_ms_per_task']} ms/task",
        ),
    ]


def step_workflow(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("workflow_bench")
    if mod is None:
        return [("workflows", "skipped", "bench/workflow_bench.py is missing")]
    rows: list[Row] = []
    compiled = mod.compile_bench(sizes=size["sizes"], repeat=size["repeat"])
    _write(results, "workflow_compile.json", compiled)
    for row in compiled:
        rows.append(
            (
                f"workflow compile, {row['nodes']} nodes",
                f"{row['compile_ms']} ms, {row['asl_bytes']:,} B",
                f"ASL {row['quota_used_pct']}% of the 1 MB quota; parse + checks {row['parse_ms']} ms",
            )
        )
    makespan = mod.makespan_bench(dags=size["dags"], repeats=size["repeats"])
    _write(results, "workflow_makespan.json", makespan)
    m = makespan["summary"]
    rows.append(
        (
            "workflow makespan / critical path",
            f"max {m['taskplane_ratio_measured']['max']} (median {m['taskplane_ratio_measured']['median']})",
            f"{size['dags']} non-series-parallel DAGs on taskplane dev, measured node times; levels plan median {m['levels_ratio_measured']['median']}",
        )
    )
    return rows


def step_local(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("local_throughput")
    if mod is None:
        return [("local throughput", "skipped", "bench/local_throughput.py is missing")]
    data = _call(mod.compare, **size)
    _write(results, "local_throughput.json", data)
    moto, huey, fire = data["backends"]["moto"], data["huey"], data["fire_lateness"]
    share = (moto.get("profile") or {}).get("moto_share")
    return [
        (
            "local throughput (taskplane dev, SQLite)",
            f"{data['tasks_per_s']} tasks/s",
            f"{data['succeeded']}/{data['tasks']} echo tasks, lost {data['lost']}; "
            f"{data['local_vs_huey_ratio']} of Huey's {huey['tasks_per_s']} tasks/s in the same run",
        ),
        (
            "local throughput (taskplane dev --backend moto)",
            f"{moto['tasks_per_s']} tasks/s",
            f"{moto['succeeded']}/{moto['tasks']} echo tasks, lost {moto['lost']}"
            + (f"; {share:.0%} of the CPU inside moto" if share is not None else ""),
        ),
        *(
            (
                f"delayed-task fire lateness at {f['rate_per_s']}/s ({name})",
                f"p99 {f['fire_lateness_ms']['p99']} / max {f['fire_lateness_ms']['max']} ms",
                f"{f['tasks']} tasks, {f['early_starts']} early, lost {f['lost']}",
            )
            for name, f in fire.items()
        ),
    ]


def step_otlp(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("otlp")
    if mod is None:
        return [("OTLP export", "skipped", "bench/otlp.py is missing")]
    data = _call(mod.run, **size)
    _write(results, "otlp.json", data)
    echo = data["per_task"]["echo"]
    return [
        (
            "OTLP export per task",
            f"{echo['spans_per_task']} spans, {echo['points_per_task']} points, {echo['bytes_per_task']:.0f} B",
            f"{echo['tasks']} echo tasks through the api and worker handlers to a loopback collector; "
            f"{data['cpu_export_alone']['cpu_ms_per_task']} ms CPU per task for the export alone",
        )
    ]


def step_retry_hub(results: Path, size: dict[str, Any]) -> list[Row]:
    mod = _module("retry_hub")
    if mod is None:
        return [("retry hub", "skipped", "bench/retry_hub.py is missing")]
    data = _call(mod.run, **size)
    _write(results, "retry_hub.json", data)
    one, many, auto = (w["per_attempt"] for w in data["writes"])
    return [
        (
            "breaker window, per attempt",
            f"{one['breaker_writes']} write ({one['breaker_wru']} WRU), {one['breaker_reads']} read",
            f"{size.get('tasks')} attempts on moto; one ADD per attempt, the item at most "
            f"{data['writes'][0]['largest_breaker_item_bytes']} B",
        ),
        (
            "duration sketch, per attempt",
            f"{one['sketch_writes']} (1 target) / {many['sketch_writes']} (10 targets) writes",
            f"one ADD per target per batch of 10; auto timeout reads {auto['sketch_window_reads']} windows/attempt",
        ),
        (
            "sketch quantile error",
            f"worst {data['quantile_error']['worst_rel_error']:.2%}",
            f"p50-p99.9 of 4 distributions x {data['quantile_error']['samples']:,} durations; bound "
            f"{data['quantile_error']['alpha']:.0%}",
        ),
    ]


def step_pricing(results: Path, size: dict[str, Any]) -> list[Row]:
    import pricing

    cost = _load(results, "cost.json")
    if cost is None:
        return [("cost per million tasks", "skipped", "no cost.json (bench/cost.py)")]
    wheel = pricing.load_wheel(results)
    data = pricing.price(cost, waits=pricing.waits_of(wheel))
    data["directions"] = pricing.directions(cost, wheel=wheel, cold=_load(results, "cold_start.json"))
    _write(results, "pricing.json", data)
    d = data["usd_per_million"]
    return [
        (
            "USD per million delayed tasks",
            f"${d['taskplane_on_demand']['total']:.2f} on-demand, ${d['taskplane_provisioned']['total']:.2f} provisioned",
            f"EventBridge Scheduler ${d['eventbridge_scheduler']['total']:.2f}, Step Functions ${d['step_functions_standard']['total']:.2f}; goal $2.50",
        )
    ]


def step_capacity(results: Path, size: dict[str, Any]) -> list[Row]:
    import capacity
    import pricing

    cost = _load(results, "cost.json")
    if cost is None:
        return [("capacity model", "skipped", "no cost.json (bench/cost.py)")]
    data = capacity.model(cost, waits=pricing.load_waits(results))
    _write(results, "capacity.json", data)
    return [
        (
            f"capacity at {s['tasks_per_day']:,}/day",
            f"{s['wheel_shards']['needed']} shards, {s['task_buckets_needed']} buckets, ${s['total_usd_per_day']['on_demand']:,.0f}/day",
            f"first limit: {s['first_limit'] or 'none'}",
        )
        for s in data["scales"]
    ]


def step_plots(results: Path, size: dict[str, Any]) -> list[Row]:
    if _module("matplotlib") is None:
        return [("plots", "skipped", "matplotlib missing: pip install -e '.[bench]'")]
    import plots

    out = plots.OUT if results == plots.RESULTS else results / "plots"
    made = plots.run(results, out)
    done = [n for n, p in made.items() if p]
    return [("plots", f"{len(done)} of {len(made)}", ", ".join(done) or "no inputs")]


def step_report(results: Path, size: dict[str, Any]) -> list[Row]:
    import report

    if results == report.RESULTS:
        s = report.run()
        page = "BENCHMARKS.md"
    else:
        s = report.run(results, results / "plots", results / "BENCHMARKS.md")
        page = str(results / "BENCHMARKS.md")
    filled = sum(1 for m in s.values() if m["value"] is not None)
    return [("report", f"{filled} of {len(s)} figures", f"{page} and summary.json")]


RUNNERS: dict[str, Callable[[Path, dict[str, Any]], list[Row]]] = {
    "cold_start": step_cold_start,
    "cost": step_cost,
    "worker_rss": step_worker_rss,
    "wheel": step_wheel,
    "workflow": step_workflow,
    "local": step_local,
    "otlp": step_otlp,
    "retry_hub": step_retry_hub,
    "pricing": step_pricing,
    "capacity": step_capacity,
    "plots": step_plots,
    "report": step_report,
}


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(STEPS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; choose from {', '.join(STEPS)}")
    return [n for n in STEPS if n in names]


def main(argv: list[str] | None = None) -> int:
    """Run the steps; the exit status is 1 when any step failed or could not run (0 otherwise)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help=f"comma-separated steps: {','.join(STEPS)}")
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes; results under bench/results/quick/"
    )
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    results = HERE / "results" / "quick" if args.quick else HERE / "results"
    rows: list[tuple[str, str, str, str]] = []
    for name in parse_only(args.only):
        size = SIZES.get(name, ({}, {}))[1 if args.quick else 0]
        console.print(f"[bold]bench:[/bold] {name} {size or ''}")
        began = time.monotonic()
        try:
            out = RUNNERS[name](results, size)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            out = [(name, "failed", f"{type(exc).__name__}: {exc}")]
            console.print_exception(max_frames=8)
        took = f"{time.monotonic() - began:.0f} s"
        rows += [(*row, took) for row in out]
        for line in out:
            if line[1] in ("skipped", "failed"):
                console.print(f"  [yellow]{escape(line[0])}: {line[1]}[/yellow] ({escape(line[2])})")
    table = Table(
        title="taskplane benchmarks (this machine, this run)"
        + (" - QUICK, not comparable" if args.quick else "")
    )
    for col, justify in (("benchmark", "left"), ("figure", "right"), ("how", "left"), ("took", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    # A step that failed or was skipped produced no figure: `make bench` must not look green.
    broken = [f"{row[0]} ({row[1]})" for row in rows if row[1] in ("skipped", "failed")]
    if broken:
        console.print(
            f"[red]bench: {len(broken)} step(s) did not produce a result: {escape(', '.join(broken))}[/red]"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
