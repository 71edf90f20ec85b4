"""`make bench`: run every benchmark, write bench/results/*.json and print a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_throughput
import workflow_bench


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    throughput = local_throughput.run(1000, 600)
    (results_dir / "local_throughput.json").write_text(json.dumps(throughput, indent=2) + "\n")

    table = Table(title="taskplane benchmarks (this machine, this run)")
    table.add_column("benchmark")
    table.add_column("figure", justify="right")
    table.add_column("how")
    table.add_row(
        "local throughput",
        f"{throughput['tasks_per_s']} tasks/s",
        f"{throughput['succeeded']}/{throughput['tasks']} echo tasks, lost {throughput['lost']}",
    )
    p = throughput["submit_to_start_ms"]
    table.add_row(
        "submit -> start (local)", f"p50 {p['p50']} ms / p99 {p['p99']} ms", "same run, backlog included"
    )

    compiled = workflow_bench.compile_bench()
    (results_dir / "workflow_compile.json").write_text(json.dumps(compiled, indent=2) + "\n")
    for row in compiled:
        table.add_row(
            f"workflow compile, {row['nodes']} nodes",
            f"{row['compile_ms']} ms, {row['asl_bytes']:,} B",
            f"ASL {row['quota_used_pct']}% of the 1 MB quota; parse + checks {row['parse_ms']} ms",
        )
    makespan = workflow_bench.makespan_bench()
    (results_dir / "workflow_makespan.json").write_text(json.dumps(makespan, indent=2) + "\n")
    m = makespan["summary"]
    table.add_row(
        "workflow makespan / critical path",
        f"median {m['taskplane_ratio_nominal']['median']} (levels {m['levels_ratio_nominal']['median']})",
        "20 non-series-parallel DAGs on taskplane dev; a level-by-level plan of the same DAGs in brackets",
    )
    table.add_row(
        "  the same, critical path of measured node times",
        f"median {m['taskplane_ratio_measured']['median']} (levels {m['levels_ratio_measured']['median']})",
        f"moto's cost per node on the path: median {m['taskplane_hop_ms']['median']} ms",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
