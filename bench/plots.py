"""PNG plots of the benchmark results into docs/bench/ (matplotlib, Agg backend: no display needed).

Each plot reads its results file and is skipped (``None``) when that file is missing:

- ``cost_per_million.png``  bench/results/pricing.json: USD per million tasks stacked by line, for
  taskplane (DynamoDB on-demand, provisioned), EventBridge Scheduler and Step Functions Standard;
- ``dispatch_lateness.png`` bench/results/wheel_lateness_a.json: p50 / p99 / max lateness of the wheel
  beside a 1 s table poller, SQS DelaySeconds and EventBridge Scheduler's documented window;
- ``cold_start.png``        bench/results/cold_start.json: import time per handler beside ``import
  boto3`` and the 300 ms goal;
- ``capacity.png``          bench/results/capacity.json: cost per day and wheel shards by scale;
- ``local_profile.png``     bench/results/local_throughput.json: where `taskplane dev`'s busy time goes.

    python bench/plots.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE.parent / "docs" / "bench"

DESIGN_LABELS = {
    "taskplane_on_demand": "taskplane\n(on-demand)",
    "taskplane_provisioned": "taskplane\n(provisioned)",
    "eventbridge_scheduler": "EventBridge\nScheduler",
    "step_functions_standard": "Step Functions\nStandard",
}


def _load(results: Path, name: str) -> Any | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def cost_plot(results: Path = RESULTS, out: Path = OUT) -> Path | None:
    pricing = _load(results, "pricing.json")
    if pricing is None:
        return None
    plt = _pyplot()
    designs = pricing["usd_per_million"]
    names = [d for d in DESIGN_LABELS if d in designs]
    lines = sorted({line for d in names for line in designs[d]["lines"]})
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13.5, 4.8), gridspec_kw={"width_ratios": [4, 3]})
    # one colour per line, the same in both panels (the default cycle repeats after ten)
    palette = plt.get_cmap("tab20").colors
    color = {line: palette[i % len(palette)] for i, line in enumerate(lines)}
    for axis, shown in ((ax, names), (zoom, [n for n in names if n != "step_functions_standard"])):
        bottom = [0.0] * len(shown)
        for line in lines:
            values = [designs[d]["lines"].get(line, 0.0) for d in shown]
            if not any(values):
                continue
            axis.bar([DESIGN_LABELS[d] for d in shown], values, bottom=bottom, label=line, color=color[line])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        for i, d in enumerate(shown):
            axis.text(i, bottom[i], f"${designs[d]['total']:.2f}", ha="center", va="bottom", fontsize=9)
        axis.axhline(pricing["goal_usd_per_million"], color="red", linestyle="--", linewidth=1)
        axis.set_ylabel("USD per million delayed tasks")
    ax.set_title(f"Cost per million tasks at {pricing['tasks_per_day']:,.0f} tasks/day")
    zoom.set_title(f"without Step Functions (goal ${pricing['goal_usd_per_million']:.2f} dashed)")
    handles, labels = ax.get_legend_handles_labels()
    zoom.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out, "cost_per_million.png")


def lateness_plot(results: Path = RESULTS, out: Path = OUT) -> Path | None:
    data = _load(results, "wheel_lateness_a.json")
    if data is None or "a_wheel" not in data:
        return None
    plt = _pyplot()
    rows = []
    if "start_lateness_ms" in data["a_wheel"]:
        rows.append(("start, lead + wait (now)", data["a_wheel"]["start_lateness_ms"]))
    if "a_wheel_before" in data:
        rows.append(("start, before issue 16", data["a_wheel_before"]["start_lateness_ms"]))
    rows.append(("timing wheel (dispatch)", data["a_wheel"]["dispatch_lateness_ms"]))
    if "a_table_poller_1s" in data:
        rows.append(("table poller, 1 s (on queue)", data["a_table_poller_1s"]["on_queue_lateness_ms"]))
    if "a_sqs_delay_seconds" in data:
        rows.append(("SQS DelaySeconds (on queue)", data["a_sqs_delay_seconds"]["on_queue_lateness_ms"]))
    window = (data.get("a_eventbridge_scheduler") or {}).get("documented_window_ms")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for k, stat in enumerate(("p50", "p99", "max")):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        ax.bar(xs, [max(r[1].get(stat, 0), 0.5) for r in rows], width, label=stat)
    if window:
        ax.axhline(window, color="grey", linestyle=":", linewidth=1)
        ax.text(
            len(rows) - 0.5,
            window,
            "EventBridge Scheduler: documented window 60 s",
            ha="right",
            va="bottom",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("lateness after the due time, ms (log)")
    ax.set_title(
        f"Start and dispatch lateness, {data['a_wheel'].get('tasks', '?'):,} tasks (modelled AWS latency)"
    )
    ax.legend()
    return _save(fig, out, "dispatch_lateness.png")


def cold_start_plot(results: Path = RESULTS, out: Path = OUT) -> Path | None:
    data = _load(results, "cold_start.json")
    if data is None or "handlers" not in data:
        return None
    plt = _pyplot()
    names = list(data["handlers"])
    values = [data["handlers"][n]["median_ms"] for n in names]
    labels = [*names, "import boto3"]
    values.append(data["baseline_boto3_ms"]["median_ms"])
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = ["tab:blue"] * len(names) + ["tab:grey"]
    ax.bar(labels, values, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=9)
    goal = data.get("goal_ms", 300)
    ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"goal {goal} ms")
    ax.set_ylabel("median import time, ms")
    ax.set_title("Handler import time in a fresh interpreter")
    ax.legend()
    return _save(fig, out, "cold_start.png")


def capacity_plot(results: Path = RESULTS, out: Path = OUT) -> Path | None:
    data = _load(results, "capacity.json")
    if data is None:
        return None
    plt = _pyplot()
    scales = data["scales"]
    xs = [f"{s['tasks_per_day']:,.0f}" for s in scales]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("on_demand", "taskplane on-demand"),
        ("provisioned", "taskplane provisioned"),
        ("eventbridge_scheduler", "EventBridge Scheduler"),
        ("step_functions_standard", "Step Functions"),
    ):
        ax.plot(xs, [s["total_usd_per_day"][key] for s in scales], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("tasks per day")
    ax.set_ylabel("USD per day (log)")
    ax.set_title("Cost per day")
    ax.legend(fontsize=8)
    ax2.bar(xs, [s["wheel_shards"]["needed"] for s in scales], label="wheel shards")
    ax2.plot(
        xs, [s["task_buckets_needed"] for s in scales], color="tab:orange", marker="o", label="task buckets"
    )
    ax2.set_yscale("log")
    ax2.set_xlabel("tasks per day")
    ax2.set_title(f"Shards and buckets needed (peak {data['peak_factor']}x mean)")
    ax2.legend(fontsize=8)
    return _save(fig, out, "capacity.png")


def profile_plot(results: Path = RESULTS, out: Path = OUT) -> Path | None:
    data = _load(results, "local_throughput.json")
    # Where the CPU goes is the question on the moto backend (on SQLite there is no moto or botocore).
    data = (data or {}).get("backends", {}).get("moto", data)
    if data is None or "profile" not in data:
        return None
    plt = _pyplot()
    prof = data["profile"]
    parts = [(k.removesuffix("_share"), prof[k]) for k in prof if k.endswith("_share") and prof[k]]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.pie([v for _, v in parts], labels=[f"{k} {v:.0%}" for k, v in parts], startangle=90)
    ax.set_title(f"taskplane dev --backend moto: CPU by code ({data.get('tasks_per_s', '?')} tasks/s)")
    return _save(fig, out, "local_profile.png")


PLOTS = {
    "cost_per_million.png": cost_plot,
    "dispatch_lateness.png": lateness_plot,
    "cold_start.png": cold_start_plot,
    "capacity.png": capacity_plot,
    "local_profile.png": profile_plot,
}


def run(results: Path = RESULTS, out: Path = OUT) -> dict[str, str | None]:
    """Every plot whose input exists; ``{file name: path relative to the repository or None}``."""
    made: dict[str, str | None] = {}
    for name, plot in PLOTS.items():
        path = plot(results, out)
        made[name] = (
            str(path.relative_to(HERE.parent))
            if path is not None and path.is_relative_to(HERE.parent)
            else (str(path) if path else None)
        )
    return made


if __name__ == "__main__":
    for name, path in run().items():
        print(f"{name}: {path or 'skipped (no input)'}")
