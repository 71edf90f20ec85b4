"""bench/report.py's summary.json keys, bench/plots.py skipping missing inputs, bench/run.py's --only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import plots
import pricing
import report
import run as bench_run

pytestmark = pytest.mark.unit

KEYS = {
    "usd_per_million_tasks",
    "idle_usd_per_month",
    "start_lateness_p99_ms",
    "start_lateness_max_ms",
    "retry_lateness_p99_ms",
    "dispatch_lateness_p99_ms",
    "handler_import_ms_max",
    "dag_makespan_ratio_max",
    "local_tasks_per_s",
    "local_vs_huey_ratio",
    "local_fire_p99_ms_at_100_per_s",
}


def test_summary_keys_with_nothing_run(tmp_path: Path) -> None:
    s = report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    assert set(s) >= KEYS
    assert all(m["value"] is None and m["note"] for m in s.values())
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert "not run" in (tmp_path / "BENCHMARKS.md").read_text()


def test_summary_takes_each_value_from_its_results_file(tmp_path: Path) -> None:
    (tmp_path / "pricing.json").write_text(json.dumps(pricing.price(pricing.EXAMPLE_COST)))
    run = {
        "tasks": 10,
        "rate_per_s": 1000,
        "lead_ms": 350,
        "early_starts": 0,
        "dispatch_lateness_ms": {"p50": 1, "p99": 7, "max": 9},
        "start_lateness_ms": {"n": 10, "p50": 2, "p99": 5, "max": 61},
        "retry_lateness_ms": {"n": 3, "p50": 0, "p99": 4, "max": 4},
        "retry_lateness_by_backoff_ms": {"50": {"n": 3, "p50": 0, "p99": 4, "max": 4}},
        "worker": {"memory_mb": 512, "wait_ms_per_task": 30.0, "invocations_per_task": 0.1},
    }
    pickup = {"fast": "f", "slow": "s", "p50_ms": 20, "p99_ms": 300, "max_ms": 400, "why": "w"}
    (tmp_path / "wheel_lateness_a.json").write_text(
        json.dumps(
            {
                "injected_latency_ms": {"dynamodb_call": 5, "sqs_batch": 10},
                "pickup_model": pickup,
                "load_average": [1.0, 1.0, 1.0],
                "load_average_after": [1.5, 1.0, 1.0],
                "a_wheel": run,
                "a_wheel_before": {**run, "start_lateness_ms": {"n": 10, "p50": 30, "p99": 310, "max": 400}},
            }
        )
    )
    (tmp_path / "cold_start.json").write_text(
        json.dumps(
            {
                "baseline_boto3_ms": {"median_ms": 90},
                "handlers": {"api": {"median_ms": 210}, "tick": {"median_ms": 120}},
            }
        )
    )
    s = report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    assert (
        s["usd_per_million_tasks"]["value"]
        == pricing.price(pricing.EXAMPLE_COST)["usd_per_million"]["taskplane_on_demand"]["total"]
    )
    assert s["dispatch_lateness_p99_ms"]["value"] == 7
    assert (s["start_lateness_p99_ms"]["value"], s["start_lateness_max_ms"]["value"]) == (5, 61)
    assert s["retry_lateness_p99_ms"]["value"] == 4
    assert s["idle_usd_per_month"]["value"] == pricing.price(pricing.EXAMPLE_COST)["idle"]["usd_per_month"]
    assert all("pickup" in s[k]["note"] for k in ("start_lateness_p99_ms", "retry_lateness_p99_ms"))
    assert s["handler_import_ms_max"]["value"] == 210
    assert s["dag_makespan_ratio_max"]["value"] is None
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| <= 300 ms import per handler | 210 | met |" in page
    assert "| start lateness max <= 100 ms, none early | 61 | met |" in page
    # the same harness on the design before: side by side
    assert "| `start_lateness_p99_ms` | 310 ms | 5 ms |" in page


def _wheel_run(dispatch_p99: float, start_max: float, **extra: object) -> dict[str, object]:
    return {
        "tasks": 10,
        "rate_per_s": 1000,
        "lead_ms": 350,
        "early_starts": 0,
        "lost": 0,
        "dispatch_lateness_ms": {"p50": 1, "p99": dispatch_p99, "max": 40},
        "start_lateness_ms": {"n": 10, "p50": 2, "p99": 5, "max": start_max},
        "retry_lateness_ms": {"n": 3, "p50": 0, "p99": 4, "max": 4},
        "worker": {"memory_mb": 256, "wait_ms_per_task": 30.0, "invocations_per_task": 0.1},
        **extra,
    }


@pytest.mark.parametrize(("p99", "verdict"), [(20, "met with no margin"), (27, "NOT met, by 7 ms")])
def test_dispatch_lateness_comes_from_the_as_deployed_run_with_the_others_beside_it(
    tmp_path: Path, p99: float, verdict: str
) -> None:
    deployed = _wheel_run(
        p99,
        80,
        tick={"shards": 3, "memory_mb": 256, "cpu_share": 0.1447},
        sizing={"tasks_per_s_per_shard": 394.3, "tick_memory_mb": 256, "busiest_shard_share": 1.026},
        load_average=[[2.1, 1.0, 1.0], [2.4, 1.0, 1.0]],
        entries_by_shard={"0": 3, "1": 3, "2": 4},
        dispatch_lateness_by_shard_ms={"0": {"p99": 18, "max": 30}, "1": {"p99": p99 + 1, "max": 40}},
    )
    (tmp_path / "wheel_lateness_a.json").write_text(
        json.dumps(
            {
                "injected_latency_ms": {"dynamodb_call": 5, "sqs_batch": 10},
                "pickup_model": {
                    "fast": "f",
                    "slow": "s",
                    "p50_ms": 20,
                    "p99_ms": 300,
                    "max_ms": 400,
                    "why": "w",
                },
                "load_average": [3.3, 1.0, 1.0],
                "a_wheel": _wheel_run(9, 61),
                "a_wheel_tick_256": _wheel_run(68, 177, tick={"shards": 1, "memory_mb": 256}),
                "a_wheel_deployed": deployed,
            }
        )
    )
    s = report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    assert s["dispatch_lateness_p99_ms"]["value"] == p99
    assert s["start_lateness_max_ms"]["value"] == 80  # the start figures come from the same run
    note = s["dispatch_lateness_p99_ms"]["note"]
    assert "3 shards" in note and "256 MB" in note and "Throttle" in note and "load average 2.1" in note
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| one shard at a full core (the harness's default) | 1 | 1 / 9 / 40 |" in page
    assert "| one shard at 256 MB's CPU share (Throttle) | 1 | 1 / 68 / 40 |" in page
    assert f"| as deployed: 3 shards at 256 MB each (Throttle) | 3 | 1 / {p99} / 40 |" in page
    assert f"the 20 ms goal is {verdict}" in page
    assert f"shard 1 alone {p99 + 1} ms, over it" in page or p99 > 20


def test_of_several_as_deployed_runs_the_summary_takes_the_one_with_the_worst_dispatch_p99(
    tmp_path: Path,
) -> None:
    sizing = {"tasks_per_s_per_shard": 394.3, "tick_memory_mb": 256, "busiest_shard_share": 1.026}
    tick = {"shards": 3, "memory_mb": 256, "cpu_share": 0.1447}
    runs = [_wheel_run(p99, start_max, tick=tick, sizing=sizing) for p99, start_max in ((20, 80), (21, 76))]
    (tmp_path / "wheel_lateness_a.json").write_text(
        json.dumps(
            {
                "injected_latency_ms": {"dynamodb_call": 5, "sqs_batch": 10},
                "pickup_model": {
                    "fast": "f",
                    "slow": "s",
                    "p50_ms": 20,
                    "p99_ms": 300,
                    "max_ms": 400,
                    "why": "w",
                },
                "load_average": [3.3, 1.0, 1.0],
                "a_wheel": _wheel_run(9, 61),
                "a_wheel_deployed": runs[0],
                "a_wheel_deployed_runs": runs,
            }
        )
    )
    s = report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    # the worse run as a whole (its start figures too), never the best of several
    assert (s["dispatch_lateness_p99_ms"]["value"], s["start_lateness_max_ms"]["value"]) == (21, 76)
    assert "of 2 as-deployed runs" in s["dispatch_lateness_p99_ms"]["note"]
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert page.count("| as deployed: 3 shards at 256 MB each (Throttle) | 3 |") == 2
    assert "(the worst of 2 runs): the 20 ms goal is NOT met, by 1 ms." in page


def test_the_deployed_shard_count_follows_the_capacity_models_rule(tmp_path: Path) -> None:
    import capacity
    import wheel_lateness

    def sized(per_shard: float, tick_mb: int | None = None) -> dict:
        (tmp_path / "cost.json").write_text(
            json.dumps({"tick": {"memory_mb": 256, "tasks_per_s_per_shard": per_shard}})
        )
        return wheel_lateness.deployed_shards(1000, tmp_path, tick_mb=tick_mb)

    # the busiest shard at most TICK_TARGET_UTILIZATION of the measured rate, as capacity.json's
    # shards_needed sizes them
    u = capacity.TICK_TARGET_UTILIZATION
    assert sized(1014.4)["shards"] == capacity.tick_shards(1000, 1014.4) > 1
    assert sized(1014.4)["target_utilization"] == u
    assert sized(1000 / u * 2)["shards"] == 1
    assert sized(394.3)["shards"] == capacity.tick_shards(1000, 394.3) > sized(1014.4)["shards"]
    # the ring's busiest shard must keep up too: more than 1000 / usable rate when the arcs are uneven
    assert sized(100.0)["shards"] == capacity.tick_shards(1000, 100.0) >= 15
    cost = {
        "tick": {"memory_mb": 256, "tasks_per_s_per_shard": 1014.4},
        "units_per_task": {"dynamodb_wru_by_table": {"taskplane-wheel": 0.2}},
    }
    assert capacity.shards_needed(cost, 1000, 1_000)["needed"] == sized(1014.4)["shards"]
    # another memory scales the measured rate by its vCPU share
    half = sized(1014.4, tick_mb=128)
    assert (half["tick_memory_mb"], half["tasks_per_s_per_shard"]) == (128, 507.2)
    assert half["shards"] == capacity.tick_shards(1000, 507.2)


def test_plots_skip_missing_inputs(tmp_path: Path) -> None:
    assert plots.run(tmp_path, tmp_path / "out") == dict.fromkeys(plots.PLOTS)


def test_only_keeps_the_order_and_refuses_unknown_steps() -> None:
    assert bench_run.parse_only("report,pricing") == ["pricing", "report"]
    assert bench_run.parse_only(None) == list(bench_run.STEPS)
    with pytest.raises(SystemExit):
        bench_run.parse_only("nope")


def test_a_failed_or_skipped_step_makes_the_run_fail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given one step that raises, one that cannot run and one that works (results under tmp_path)
    def broken(results: Path, size: dict[str, object]) -> list[tuple[str, str, str]]:
        raise RuntimeError("tzdata is shipped in the Lambda layer but is not installed here")

    monkeypatch.setattr(bench_run, "HERE", tmp_path)
    monkeypatch.setitem(bench_run.RUNNERS, "cold_start", broken)
    monkeypatch.setitem(bench_run.RUNNERS, "cost", lambda r, s: [("cost", "skipped", "no module")])
    monkeypatch.setitem(bench_run.RUNNERS, "pricing", lambda r, s: [("pricing", "$1", "ok")])
    # When each runs alone, Then only the working one exits 0
    assert bench_run.main(["--only", "cold_start"]) == 1
    assert bench_run.main(["--only", "cost"]) == 1
    assert bench_run.main(["--only", "pricing"]) == 0
    assert bench_run.main(["--only", "pricing,cold_start"]) == 1


def _local_run(backend: str, rate: float, lost: int = 0) -> dict[str, object]:
    return {
        "backend": backend,
        "tasks": 10_000,
        "succeeded": 10_000 - lost,
        "lost": lost,
        "tasks_per_s": rate,
        "cpu_ms_per_task": 1.0,
    }


def _fire(p99: float) -> dict[str, object]:
    return {
        "tasks": 2000,
        "rate_per_s": 100,
        "achieved_submit_rate_per_s": 99.8,
        "early_starts": 0,
        "lost": 0,
        "fire_lateness_ms": {"p50": 1.0, "p99": p99, "max": 30.0},
    }


def test_the_local_figures_come_from_both_backends_and_huey_in_one_run(tmp_path: Path) -> None:
    # Given a local_throughput.json of issue 17: both backends, Huey and the fire lateness
    sqlite, moto = _local_run("sqlite", 800.0), _local_run("moto", 34.0)
    huey = {
        "tasks": 10_000,
        "succeeded": 10_000,
        "lost": 0,
        "tasks_per_s": 1000.0,
        "prefilled_drain": {"tasks_per_s": 1700.0, "lost": 0},
    }
    (tmp_path / "local_throughput.json").write_text(
        json.dumps(
            {
                **sqlite,
                "backends": {"sqlite": sqlite, "moto": moto},
                "huey": huey,
                "local_vs_huey_ratio": 0.8,
                "local_vs_huey_drain_ratio": 0.47,
                "fire_lateness": {"sqlite": _fire(4.0), "moto": _fire(900.0)},
            }
        )
    )
    # When the report is made
    s = report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    # Then summary.json has the three local figures, each note naming what stands beside it
    assert (
        s["local_tasks_per_s"]["value"] == 800.0
        and "--backend moto: 34.0 tasks/s" in s["local_tasks_per_s"]["note"]
    )
    assert s["local_vs_huey_ratio"]["value"] == 0.8 and "1700.0" in s["local_vs_huey_ratio"]["note"]
    assert s["local_fire_p99_ms_at_100_per_s"]["value"] == 4.0
    assert "on --backend moto: p99 900.0 ms" in s["local_fire_p99_ms_at_100_per_s"]["note"]
    # And the page judges the goals
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "same tasks, same run | 0.80 | met |" in page
    assert "at 100 a second, none early | 4.00 | met |" in page
    assert "| taskplane dev --backend moto | 34.0 | 0 | 1.0 |" in page


def test_the_directions_section_names_the_lowest_design_and_keeps_bounds_apart() -> None:
    def row(total: float, saves: float) -> dict:
        lines = {"dynamodb_writes": 1.0, "dynamodb_reads": 0.1, "worker_wait": 0.5, "tick": 0.3}
        return {
            "total": total,
            "saves": saves,
            "goal_met": total <= 2.5,
            "lines": lines,
            "basis": "b",
            "risk": "r",
        }

    found = {
        "tasks_per_day": 1_000_000,
        "goal_usd_per_million": 2.5,
        "wheel_item_share_wru": 0.21,
        "directions": {
            "as_built": row(3.7, 0.0),
            "worker_256mb": row(3.3, 0.4),
            "bound_claims_tick_128_no_wait": row(2.4, 1.3),
        },
    }
    text = "\n".join(report._directions({"directions": found}))
    assert "| worker at 256 MB | b | **3.30** | 0.40 |" in text
    # a bound under the goal is not a design that meets it
    assert "None of them meets $2.50, alone or together: the lowest is worker at 256 MB, $3.30." in text
    assert "bound: claims + tick 128 MB + a hold that costs nothing: $2.40" in text
    assert report._directions(None) == [] and report._directions({}) == []


TIME_REPORT = """\tCommand being timed: "make test"
\tUser time (seconds): 301.50
\tSystem time (seconds): 20.25
\tElapsed (wall clock) time (h:mm:ss or m:ss): 4:05.31
\tMaximum resident set size (kbytes): 524288
\tExit status: 0
"""
PYTEST_OUT = """........ [100%]
1650 passed, 3 skipped in 240.12s (0:04:00)
.. [100%]
2 passed in 3.10s
"""


def test_make_test_figures_come_from_time_and_pytest_reports(tmp_path: Path) -> None:
    import make_test

    # Given /usr/bin/time -v's report and pytest's output of one make test
    figures = make_test.parse_time(TIME_REPORT)
    counts = make_test.parse_pytest(PYTEST_OUT)
    # Then wall time, CPU (user + system) and the suite's counts are read from them
    assert figures == {
        "wall_s": 245.3,
        "user_s": 301.5,
        "sys_s": 20.2,
        "cpu_s": 321.8,
        "max_rss_mb": 512,
        "exit_status": 0,
    }
    assert counts["runs"] == [{"passed": 1650, "skipped": 3}, {"passed": 2}]
    # And the page shows both runs side by side with their ratios
    runs = [
        make_test.row("before", "aaa", TIME_REPORT, PYTEST_OUT, [[1.0], [2.0]]),
        make_test.row("after", "bbb", TIME_REPORT.replace("4:05.31", "3:00.00"), PYTEST_OUT, None),
    ]
    (tmp_path / "make_test.json").write_text(
        json.dumps({"runs": runs, "wall_ratio": 0.734, "cpu_ratio": 1.0, "note": "back to back"})
    )
    page = report.render(tmp_path, tmp_path / "plots")
    assert "| before | `aaa` | 245.3 | 321.8 (301.5 + 20.2) | 1650 + 2 | 1.0, 2.0 |" in page
    assert "| after | `bbb` | 180.0 |" in page
    assert "After / before: wall 0.734x, CPU 1.0x. back to back." in page
    with pytest.raises(ValueError, match="in the time report"):
        make_test.parse_time("nothing")


def test_as_deployed_variants_are_listed_beside_the_runs_as_built(tmp_path: Path) -> None:
    def run(p99: float, rate: int, wait: float) -> dict[str, object]:
        out = _wheel_run(
            p99,
            90,
            tick={"shards": 3, "memory_mb": 256, "cpu_share": 0.1447},
            sizing={"tasks_per_s_per_shard": 686.2, "tick_memory_mb": 256, "busiest_shard_share": 1.026},
            load_average=[[0.5, 1.0, 1.0], [0.7, 1.0, 1.0]],
        )
        out["rate_per_s"] = rate
        out["worker"] = {"memory_mb": 256, "wait_ms_per_task": wait, "records_per_invocation": 6.8}
        return out

    as_built = run(43, 1000, 39.2)
    wheel = {
        "injected_latency_ms": {"dynamodb_call": 5, "sqs_batch": 10},
        "pickup_model": {"fast": "f", "slow": "s", "p50_ms": 20, "p99_ms": 300, "max_ms": 400, "why": "w"},
        "load_average": [0.1, 1.0, 1.0],
        "a_wheel": _wheel_run(5, 61),
        "a_wheel_deployed": as_built,
        "a_wheel_deployed_runs": [as_built],
        "a_wheel_deployed_tick_128_runs": [run(55, 1000, 38.0)],
        "a_wheel_deployed_rate_12_runs": [run(3, 12, 114.1)],
        "a_wheel_deployed_group_1000_rate_12_runs": [run(3, 12, 101.5), run(4, 12, 102.5)],
    }
    (tmp_path / "wheel_lateness_a.json").write_text(json.dumps(wheel))
    report.run(tmp_path, tmp_path / "plots", tmp_path / "BENCHMARKS.md")
    page = (tmp_path / "BENCHMARKS.md").read_text()
    section = page[page.index("## As deployed, variants") :]
    assert (
        "| as built | 1,000 | 3 | 1 / 43 / 40 | 2 / 5 / 90 | 4 | 0 | 0 | 39.2 | 6.8 | 0.5, 0.7 |" in section
    )
    assert "| rate 12 | 12 | 3 | 1 / 3 / 40 |" in section
    assert section.count("| group 1000 rate 12 | 12 |") == 2 and "| 101.5 |" in section
    assert "tick 128" not in section.split("## ", 2)[1]  # the 128 MB runs have their own table


def test_the_fire_burst_section_shows_each_burst_before_and_now_side_by_side() -> None:
    def run(p99: int, beside: int) -> dict:
        lateness = {"n": 20, "p50": 0.0, "p99": p99, "max": p99, "min": 0}
        return {
            "fire_burst": {
                "fire_start_lateness_ms": lateness,
                "early": 0,
                "tasks_beside_start_lateness_ms": {**lateness, "p99": beside, "max": beside},
            }
        }

    burst = {
        "rate_per_s": 200,
        "tick_mb": 256,
        "fire_cpu_ms": 2.7,
        "note": "one shard",
        "load_average": [0.5, 0.4, 0.3],
        "runs": {"before": [run(1000, 650)], "now": [run(180, 30)]},
    }
    # Given two bursts measured (20 and 200 fires)
    lines = report._fire_burst({"a_fire_bursts": {"20": burst, "200": burst}})
    rows = [line for line in lines if line.startswith("| 20") or line.startswith("| 200")]
    # Then each burst has its before and its now row, with the fires' and the tasks' lateness
    assert len(rows) == 4
    assert rows[0].startswith("| 20 | before") and "0.0 / 1000 / 1000" in rows[0] and "650" in rows[0]
    assert rows[1].startswith("| 20 | now") and "0.0 / 180 / 180" in rows[1] and rows[1].endswith("30 / 30 |")
    # And nothing is shown without a measurement
    assert report._fire_burst({}) == [] and report._fire_burst(None) == []
