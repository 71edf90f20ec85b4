"""`make test` before and after: wall time and CPU seconds of the whole suite, back to back.

The machine is shared, so wall time alone says little: each run is measured with ``/usr/bin/time -v``
(wall clock, user and system CPU seconds of make and every process under it) and the load average
is taken before and after. The "before" tree is a detached git worktree of a given commit (made and
installed first if missing: its install is not timed); the "after" tree is this one. Both run
``make test`` (its own ``.venv``, two pytest workers) one right after the other.

    python bench/make_test.py --before c96ba44                 # runs both (20-40 minutes)
    python bench/make_test.py --before c96ba44 --before-tree ../pre-sqlite   # an existing worktree
    python bench/make_test.py --parse TIME_A OUT_A TIME_B OUT_B --before c96ba44   # from saved logs

``--parse`` builds the same results from the ``/usr/bin/time -v -o TIME make test > OUT 2>&1`` files
of runs made by hand. Writes ``bench/results/make_test.json`` (or ``--out``: every
``make_test*.json`` is a table in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def parse_time(text: str) -> dict[str, float]:
    """Wall, user and system seconds and peak RSS from ``/usr/bin/time -v``'s report."""

    def field(label: str) -> str:
        found = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.MULTILINE)
        if found is None:
            raise ValueError(f"no '{label}' in the time report")
        return found.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
    return {
        "wall_s": round(wall, 1),
        "user_s": round(user, 1),
        "sys_s": round(system, 1),
        "cpu_s": round(user + system, 1),
        "max_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024),
        "exit_status": int(field("Exit status")),
    }


def parse_pytest(text: str) -> dict[str, Any]:
    """The suite's counts (the main run, then the IAM check's) from pytest's summary lines."""
    runs = []
    for line in re.findall(r"^=*\s*(\d+ (?:passed|failed).*) in [\d.]+s.*$", text, re.MULTILINE):
        counts = {
            kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", line)
        }
        runs.append(counts)
    durations = [float(s) for s in re.findall(r" in ([\d.]+)s(?: \([\d:]+\))? =*$", text, re.MULTILINE)]
    return {"runs": runs, "pytest_seconds": durations}


def measure(tree: Path) -> tuple[str, str, list[float], list[float]]:
    """``/usr/bin/time -v make test`` in ``tree``: (time's report, make's output, load before, after)."""
    import tempfile

    before = list(os.getloadavg())
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run(
            ["/usr/bin/time", "-v", "-o", report.name, "make", "test"],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        kept = Path(tempfile.gettempdir()) / f"make-test-{tree.name}.out"
        kept.write_text(done.stdout)  # the whole output, for a look at what took long
        return report.read(), done.stdout, before, list(os.getloadavg())


def row(
    label: str, commit: str, time_text: str, out_text: str, load: list[list[float]] | None
) -> dict[str, Any]:
    return {
        "tree": label,
        "commit": commit,
        **parse_time(time_text),
        **parse_pytest(out_text),
        "load_average_before_after": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the commit to compare with (a main commit)")
    parser.add_argument("--parse", nargs=4, metavar=("TIME_BEFORE", "OUT_BEFORE", "TIME_AFTER", "OUT_AFTER"))
    parser.add_argument("--after", default="HEAD", help="the commit this tree is at (for the record)")
    parser.add_argument("--before-tree", type=Path, help="a worktree already at --before (else one is made)")
    parser.add_argument("--note", default="", help="how the runs were made, kept with the results")
    parser.add_argument(
        "--out", default="make_test.json", help="the results file (bench/results/make_test*.json)"
    )
    args = parser.parse_args()

    def rev(commit: str, cwd: Path = ROOT) -> str:
        return subprocess.run(
            ["git", "rev-parse", "--short", commit], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()

    before_commit, after_commit = rev(args.before), rev(args.after)
    if args.parse:
        time_a, out_a, time_b, out_b = (Path(p).read_text() for p in args.parse)
        runs = [
            row("before", before_commit, time_a, out_a, None),
            row("after", after_commit, time_b, out_b, None),
        ]
    else:
        tree = args.before_tree or ROOT.parent / f"make-test-{before_commit}"
        if not tree.exists():
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.before], cwd=ROOT, check=True
            )
        if rev("HEAD", tree) != before_commit:
            raise SystemExit(f"{tree} is not at {before_commit}")
        subprocess.run(["make", "install"], cwd=tree, check=True)  # not timed
        subprocess.run(["make", "install"], cwd=ROOT, check=True)
        runs = []
        for label, where, commit in (("before", tree, before_commit), ("after", ROOT, after_commit)):
            time_text, out_text, load_a, load_b = measure(where)
            runs.append(
                row(
                    label,
                    commit,
                    time_text,
                    out_text,
                    [[round(x, 2) for x in load_a], [round(x, 2) for x in load_b]],
                )
            )
    before, after = runs
    result = {
        "runs": runs,
        "wall_ratio": round(after["wall_s"] / before["wall_s"], 3),
        "cpu_ratio": round(after["cpu_s"] / before["cpu_s"], 3),
        "note": args.note
        or "make test (two pytest workers, then the IAM check) under /usr/bin/time -v, before then after, back to back",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
