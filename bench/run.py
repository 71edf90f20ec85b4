"""`make bench`: run every benchmark, write bench/results/*.json and print a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_throughput


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
    Console().print(table)


if __name__ == "__main__":
    main()
