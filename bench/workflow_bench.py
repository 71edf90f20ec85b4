"""Workflow benchmarks: the compiler's cost and output size, and how close runs get to the critical path.

1. **Compile**: parse + graph checks, and ASL compilation, for random DAGs of 10, 100 and 1,000 nodes
   (up to three needs each, a payload and a compensation on every node); ASL size against Step
   Functions' 1 MB definition quota.
2. **Makespan**: 20 random DAGs of 10-30 nodes that are *not* series-parallel (each has an "N":
   a->c, a->d, b->d with nothing else between them, which nested Parallel states cannot run as soon
   as possible), every node a builtin ``sleep`` of 20-200 ms, run on the local runtime (``taskplane
   dev`` in this process on its default backend: the run ledger and the stores in SQLite, the
   compiled ASL executed by moto's Step Functions). Each DAG runs twice: compiled by taskplane (chains and
   callback gates), and as a level-by-level plan of the same nodes (one Parallel state per
   topological level, the next level starting when the slowest node of the previous one ends).

   For each run: makespan = last node finished - first node started (from the run ledger), and
   makespan / critical path, where the critical path is the longest path through the DAG weighted by
   the nodes' sleeps (``nominal``) or by the nodes' measured times in that run (``measured``:
   start of the attempt to its recorded outcome, so it includes the ledger writes of each node).
   ``plan`` is the level plan's makespan computed from the sleeps alone (no runtime cost at all).

   moto's Step Functions is slower than AWS at what a hop between two nodes costs (each state is a
   few ms of Python; on ``--backend moto`` each DynamoDB call of the ledger a few more), and that cost
   is in every figure here, once per node on the critical path; ``hop_ms`` reports it: (makespan -
   nominal critical path) / nodes on it.

    python bench/workflow_bench.py               # both
    python bench/workflow_bench.py --only compile
    python bench/workflow_bench.py --dags 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import networkx as nx

RESULTS = Path(__file__).resolve().parent / "results"
FN = "arn:aws:lambda:us-east-1:123456789012:function:taskplane-step"


# -- random DAGs -------------------------------------------------------------------------------------


def random_dag(n: int, rng: random.Random, *, max_needs: int = 3, window: int = 8) -> dict[int, list[int]]:
    """Node i needs 0-``max_needs`` of the ``window`` nodes before it (node 0 needs nothing)."""
    return {
        i: sorted(rng.sample(range(max(0, i - window), i), k=min(i, rng.randint(0, max_needs))))
        for i in range(n)
    }


def to_graph(needs: dict[int, list[int]]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(needs)
    graph.add_edges_from((need, node) for node, ns in needs.items() for need in ns)
    return graph


def has_n(graph: nx.DiGraph) -> bool:
    """Whether the order has an induced "N" (a<c, a<d, b<d, all else incomparable): the one shape
    that makes a partial order not series-parallel (Valdes, Tarjan, Lawler 1982)."""
    hasse = nx.transitive_reduction(graph)
    reach = {v: nx.descendants(graph, v) for v in graph}

    def comparable(x: int, y: int) -> bool:
        return y in reach[x] or x in reach[y]

    for d in hasse:
        below = list(hasse.predecessors(d))
        for a in below:
            for b in below:
                if a == b or comparable(a, b):
                    continue
                for c in hasse.successors(a):
                    if c != d and not comparable(c, d) and not comparable(b, c):
                        return True
    return False


def non_series_parallel_dags(count: int, seed: int) -> list[dict[int, list[int]]]:
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        needs = random_dag(rng.randint(10, 30), rng)
        if has_n(to_graph(needs)) and nx.is_weakly_connected(to_graph(needs)):
            found.append(needs)
    return found


def definition(
    name: str, needs: dict[int, list[int]], sleeps: dict[int, int], *, compensate: bool = False
) -> dict:
    nodes = []
    for i, ns in needs.items():
        node: dict[str, Any] = {
            "id": f"n{i:04d}",
            "needs": [f"n{j:04d}" for j in ns],
            "target": {"type": "builtin", "name": "sleep"},
            "payload": {"ms": sleeps[i]},
        }
        if compensate:
            node["compensate"] = {"type": "lambda", "function": "undo-" + node["id"]}
        nodes.append(node)
    return {
        "name": name,
        "timeout_s": 600,
        "defaults": {"timeout_s": 30, "retry": {"max_attempts": 1}},
        "nodes": nodes,
    }


def longest_path(graph: nx.DiGraph, weight: dict[Any, float]) -> tuple[float, int]:
    """(length, nodes on it) of the heaviest path."""
    best: dict[Any, tuple[float, int]] = {}
    for v in nx.topological_sort(graph):
        before = max((best[u] for u in graph.predecessors(v)), default=(0.0, 0))
        best[v] = (before[0] + weight[v], before[1] + 1)
    return max(best.values())


# -- 1. compile --------------------------------------------------------------------------------------


def compile_bench(
    sizes: tuple[int, ...] = (10, 100, 1000), repeat: int = 5, seed: int = 11
) -> list[dict[str, Any]]:
    from taskplane.domain.asl import MAX_DEFINITION_BYTES, compile_asl, layout, to_json
    from taskplane.domain.workflow import parse_workflow

    rng = random.Random(seed)
    rows = []
    for n in sizes:
        needs = random_dag(n, rng, window=20)
        body = definition(f"compile-{n}", needs, {i: 100 for i in needs}, compensate=True)
        parse_ms, compile_ms = [], []
        for _ in range(repeat):
            began = time.perf_counter()
            wf = parse_workflow(body, name=body["name"])
            parsed = time.perf_counter()
            text = to_json(compile_asl(wf, FN, version=1))
            parse_ms.append((parsed - began) * 1000)
            compile_ms.append((time.perf_counter() - parsed) * 1000)
        size = len(text.encode())
        rows.append(
            {
                "nodes": n,
                "edges": len(wf.edges),
                "branches": len(layout(wf).roots) + 1,
                "gated_nodes": len(layout(wf).gated),
                "parse_ms": round(statistics.median(parse_ms), 1),
                "compile_ms": round(statistics.median(compile_ms), 1),
                "asl_bytes": size,
                "asl_bytes_per_node": round(size / n),
                "quota_used_pct": round(100 * size / MAX_DEFINITION_BYTES, 1),
            }
        )
    return rows


# -- 2. makespan -------------------------------------------------------------------------------------


def levels_asl(workflow: Any, function_arn: str, *, version: int | None = None) -> dict[str, Any]:
    """The baseline: one Parallel state per topological level (each level waits for the one before)."""
    from taskplane.domain.asl import node_state

    levels = [sorted(level) for level in nx.topological_generations(workflow.graph)]
    states: dict[str, Any] = {}
    for i, level in enumerate(levels):
        states[f"level-{i}"] = {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": n, "States": {n: node_state(workflow.by_id[n], function_arn, None)}}
                for n in level
            ],
            "ResultPath": None,
            "Next": f"level-{i + 1}" if i + 1 < len(levels) else "taskplane.succeeded",
        }
    states["taskplane.succeeded"] = {
        "Type": "Task",
        "Resource": function_arn,
        "Parameters": {"action": "succeeded", "run.$": "$.run"},
        "ResultPath": None,
        "End": True,
    }
    return {"Comment": f"level-by-level baseline of {workflow.name}", "StartAt": "level-0", "States": states}


def _ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _run(client: Any, name: str, timeout_s: float = 120) -> dict[str, Any]:
    cpu = time.process_time()
    run = client.request("POST", f"/v1/workflows/{name}/runs", body={"input": {}})[1]
    deadline = time.monotonic() + timeout_s
    while True:
        time.sleep(0.5)  # slow polling: the poll itself runs in the same process as the run
        run = client.request("GET", f"/v1/runs/{run['run_id']}")[1]
        if run["state"] != "RUNNING" or time.monotonic() > deadline:
            # CPU of the whole process (moto, the step function, the API) while the run went on.
            return {**run, "cpu_ms": (time.process_time() - cpu) * 1000}


def _measure(run: dict[str, Any], graph: nx.DiGraph, sleeps: dict[int, int]) -> dict[str, Any]:
    assert run["state"] == "SUCCEEDED", run
    start = {int(n["id"][1:]): _ms(n["started_at"]) for n in run["nodes"]}
    end = {int(n["id"][1:]): _ms(n["finished_at"]) for n in run["nodes"]}
    makespan = max(end.values()) - min(start.values())
    nominal, hops = longest_path(graph, sleeps)
    measured, _ = longest_path(graph, {v: end[v] - start[v] for v in graph})
    return {
        "makespan_ms": round(makespan, 1),
        "ratio_nominal": round(makespan / nominal, 3),
        "ratio_measured": round(makespan / measured, 3),
        "hop_ms": round((makespan - nominal) / hops, 1),
        "run_ms": round(_ms(run["finished_at"]) - _ms(run["created_at"]), 1),
        "cpu_ms_per_node": round(run["cpu_ms"] / graph.number_of_nodes(), 1),
    }


def makespan_bench(dags: int = 20, seed: int = 4, repeats: int = 2) -> dict[str, Any]:
    from taskplane.client import Client
    from taskplane.local.runtime import LocalRuntime
    from taskplane.services import workflows as service

    load_before = os.getloadavg()
    shapes = non_series_parallel_dags(dags, seed)
    rng = random.Random(seed + 1)
    runtime = LocalRuntime(port=0).start()
    for poller in runtime.pollers:
        # The idle lane pollers re-poll every 20 ms (150 receives/s, ~25% of a core on this machine);
        # their waiter wakes at once on a send, so a longer idle wait costs tasks nothing and keeps
        # the pollers from competing with the runs for the interpreter.
        poller._idle = 0.25
    rows = []
    try:
        client = Client(runtime.url, runtime.api_key, timeout_s=60)
        for i, needs in enumerate(shapes):
            sleeps = {v: rng.randint(20, 200) for v in needs}
            graph = to_graph(needs)
            body = definition(f"dag{i:02d}", needs, sleeps)
            client.request("PUT", f"/v1/workflows/dag{i:02d}", body=body)
            # The baseline goes through the same API, compiled level by level instead.
            compile_asl, gated = service.compile_asl, service.gated
            service.compile_asl, service.gated = levels_asl, lambda wf: frozenset()
            try:
                client.request(
                    "PUT", f"/v1/workflows/dag{i:02d}-levels", body={**body, "name": f"dag{i:02d}-levels"}
                )
            finally:
                service.compile_asl, service.gated = compile_asl, gated
            if i == 0:  # warm-up: the first executions in the process pay for imports
                _run(client, f"dag{i:02d}")
                _run(client, f"dag{i:02d}-levels")
            # Interleaved, best of ``repeats``: other load on the machine only ever makes a run slower.
            tries: dict[str, list[dict[str, Any]]] = {"asap": [], "levels": []}
            for _ in range(repeats):
                tries["asap"].append(_measure(_run(client, f"dag{i:02d}"), graph, sleeps))
                tries["levels"].append(_measure(_run(client, f"dag{i:02d}-levels"), graph, sleeps))
            asap = min(tries["asap"], key=lambda m: m["makespan_ms"])
            levels = min(tries["levels"], key=lambda m: m["makespan_ms"])
            nominal, hops = longest_path(graph, sleeps)
            plan = sum(max(sleeps[v] for v in level) for level in nx.topological_generations(graph))
            row = {
                "dag": i,
                "nodes": len(needs),
                "edges": graph.number_of_edges(),
                "levels": len(list(nx.topological_generations(graph))),
                "critical_path_ms": nominal,
                "critical_path_nodes": hops,
                "levels_plan_ratio": round(plan / nominal, 3),
                "asap": asap,
                "levels_run": levels,
            }
            rows.append(row)
            print(
                f"dag{i:02d} {row['nodes']:>2} nodes, cp {nominal:>4} ms over {hops:>2} nodes | "
                f"taskplane {asap['ratio_nominal']:.3f} (measured {asap['ratio_measured']:.3f}, hop {asap['hop_ms']} ms) | "
                f"levels {levels['ratio_nominal']:.3f} (plan {row['levels_plan_ratio']:.3f})",
                file=sys.stderr,
                flush=True,
            )
    finally:
        runtime.stop()

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
            "min": round(min(values), 3),
        }

    return {
        "dags": rows,
        "summary": {
            "taskplane_ratio_nominal": summary([r["asap"]["ratio_nominal"] for r in rows]),
            "taskplane_ratio_measured": summary([r["asap"]["ratio_measured"] for r in rows]),
            "taskplane_hop_ms": summary([r["asap"]["hop_ms"] for r in rows]),
            "levels_ratio_nominal": summary([r["levels_run"]["ratio_nominal"] for r in rows]),
            "levels_ratio_measured": summary([r["levels_run"]["ratio_measured"] for r in rows]),
            "levels_plan_ratio": summary([r["levels_plan_ratio"] for r in rows]),
            "levels_makespan_over_taskplane": summary(
                [r["levels_run"]["makespan_ms"] / r["asap"]["makespan_ms"] for r in rows]
            ),
            "taskplane_faster_than_levels": sum(
                r["asap"]["makespan_ms"] < r["levels_run"]["makespan_ms"] for r in rows
            ),
            "taskplane_within_1_05_measured": sum(r["asap"]["ratio_measured"] <= 1.05 for r in rows),
            "taskplane_within_1_05_nominal": sum(r["asap"]["ratio_nominal"] <= 1.05 for r in rows),
            "taskplane_cpu_ms_per_node": summary([r["asap"]["cpu_ms_per_node"] for r in rows]),
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "note": (
            "makespan = last node finished - first node started (run ledger); nominal = critical path of the "
            "sleeps; measured = critical path of the nodes' measured times in the same run; plan = level plan "
            "from the sleeps alone. taskplane dev in this process on its default backend: the run ledger and stores "
            "in SQLite, moto's Step Functions executing the compiled ASL."
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["compile", "makespan"])
    parser.add_argument("--dags", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs per DAG and plan; the fastest counts")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.only in (None, "compile"):
        rows = compile_bench()
        (RESULTS / "workflow_compile.json").write_text(json.dumps(rows, indent=2) + "\n")
        print(json.dumps(rows, indent=2))
    if args.only in (None, "makespan"):
        result = makespan_bench(args.dags, args.seed, args.repeats)
        (RESULTS / "workflow_makespan.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
