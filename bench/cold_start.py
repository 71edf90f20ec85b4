"""Cold start: how long importing each Lambda function's handler module takes in a fresh interpreter.

For each of ``functions/{api,worker,tick,step}/handler.py``, ``repeats`` fresh ``python -S -c``
processes import the module the way the Lambda runtime does, and time it inside the child
(``time.perf_counter`` around ``importlib.import_module("handler")``) and from outside (the whole
process's wall time, interpreter start-up included). A bare ``import boto3`` is the baseline: no
Python Lambda that talks to AWS starts faster.

What the child sees, to match a deployed function:

- ``sys.path``: the function's folder (``LAMBDA_TASK_ROOT``), ``layers/core/python`` (the code layer,
  ``/opt/python`` in Lambda) and a *layer-like site*: symlinks to only the distributions the
  dependency layer ships (``infra/capabilities/layers.py``: pyproject's dependencies minus ``rich``,
  plus ``tzdata``, and what they require), not the dev venv. This matters: X-Ray's ``patch_all``
  imports every library it can patch that is importable (requests, httpx, ... are in the dev venv
  but not in the layer).
- Environment: the Lambda runtime's own variables (``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_FUNCTION_NAME``,
  the X-Ray daemon address, ...), the Powertools variables every function gets
  (``infra/capabilities/function.py``: ``powertools_env``) and the platform settings
  (``PlatformSettings.to_env``). Tracing is on, as with ``Tracing.ACTIVE``: Powertools enables its
  Tracer because ``LAMBDA_TASK_ROOT`` is set and ``POWERTOOLS_TRACE_DISABLED`` is not.
- Bytecode caches are warm (one discarded run first). Lambda's dependency layer is built with
  ``pip --no-compile``, so a real cold start also compiles; that cost is not in these figures.

Anything the handlers defer to their first invocation (the Tracer and its X-Ray patching) is
measured too, as ``first_call_setup_ms``: the first request pays it instead of the import.

Each handler is measured twice: as pytest, moto and ``taskplane dev`` import it (no
``AWS_LAMBDA_INITIALIZATION_TYPE``: the import alone, the figure of the 300 ms goal; the first
invocation then makes the tracer and the platform, ``first_call_setup_ms`` + ``platform_build_ms``),
and as Lambda's init phase imports it (the variable set: ``taskplane/init_phase.py`` makes them during
the import, ``warm_up.init_median_ms``; what the first invocation still does is
``warm_up.first_call_median_ms``). On demand the init phase runs at a full vCPU and an invocation at
the memory's share: bench/pricing.py scales each part by its own.

    python bench/cold_start.py               # 10 runs each; writes bench/results/cold_start.json
    python bench/cold_start.py --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LAYER = ROOT / "layers" / "core" / "python"
FUNCTIONS = ("api", "worker", "tick", "step")
GOAL_MS = 300
#: Set by Lambda during a new instance's init phase (taskplane/init_phase.py warms up when it is).
INIT_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
#: The name suffix of a handler's second measure, imported as Lambda's init imports it.
WARM = "+init"
#: Modules whose presence after the import is reported (the ones worth keeping out of a cold start).
WATCHED = ("aws_xray_sdk", "networkx", "yaml", "croniter", "pydantic", "requests", "httpx")

sys.path.insert(0, str(LAYER))
from taskplane.observability import NAMESPACE  # noqa: E402
from taskplane.settings import PlatformSettings  # noqa: E402

# -- the layer-like site ---------------------------------------------------------------------------


def layer_distributions() -> list[str]:
    """The dependency layer's distributions: pyproject's dependencies as the layer installs them
    (without ``rich``, with ``tzdata``), and everything they require."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [Requirement(d) for d in deps if Requirement(d).name != "rich"] + [Requirement("tzdata")]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        extras = tuple(sorted(req.extras)) or ("",)
        if (key := f"{name}[{','.join(extras)}]") in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise RuntimeError(
                f"{name} is shipped in the Lambda layer but is not installed here: "
                "pip install -e '.[bench]' (make bench does)"
            ) from None
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return sorted({k.split("[")[0] for k in seen})


def make_layer_site(into: Path) -> list[str]:
    """Symlink each layer distribution's top-level files and packages (and its metadata) into ``into``."""
    names = layer_distributions()
    for name in names:
        dist = md.distribution(name)
        base = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source, target = base / top, into / top
            if top.startswith("..") or top == "__pycache__" or target.exists() or not source.exists():
                continue
            target.symlink_to(source)
    return names


# -- the environment -------------------------------------------------------------------------------


def powertools_env(log_level: str = "INFO") -> dict[str, str]:
    """What ``infra/capabilities/function.py: powertools_env`` gives every function (copied: importing
    infra starts the CDK's Node process)."""
    return {
        "POWERTOOLS_SERVICE_NAME": "taskplane",
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": log_level,
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    }


def lambda_env(function: str) -> dict[str, str]:
    """A deployed function's environment: the runtime's variables, Powertools', the platform's."""
    prefix, region = "taskplane-dev", "us-east-1"
    fn_dir = ROOT / "functions" / function
    runtime = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"{prefix}-{function}",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{prefix}-{function}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(fn_dir),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        # The role's credentials (fake: nothing is called); without them boto3 would ask the EC2
        # metadata endpoint while making clients.
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE00",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_SESSION_TOKEN": "example",
        # Tracing.ACTIVE: the runtime tells the X-Ray SDK where its daemon listens.
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
    }
    queue = f"https://sqs.{region}.amazonaws.com/123456789012/{prefix}"
    platform = PlatformSettings(
        tasks_table=f"{prefix}-tasks",
        idempotency_table=f"{prefix}-idempotency",
        control_table=f"{prefix}-control",
        queue_urls={lane: f"{queue}-{lane}" for lane in ("high", "default", "low")},
        dlq_url=f"{queue}-dlq",
        wheel_table=f"{prefix}-wheel",
        schedules_table=f"{prefix}-schedules",
        workflows_table=f"{prefix}-workflows",
        runs_table=f"{prefix}-runs",
        step_function_arn=f"arn:aws:lambda:{region}:123456789012:function:{prefix}-step",
    ).to_env()
    return {**runtime, **powertools_env(), **platform}


# -- one child -------------------------------------------------------------------------------------

CHILD = """
import sys, time
sys.path[:0] = {path!r}
t0 = time.perf_counter()
import importlib
module = importlib.import_module({module!r})
t1 = time.perf_counter()
loaded = [m for m in {watched!r} if m in sys.modules]
modules = len(sys.modules)
sys.stderr.write("{marker}\\n")  # in a -X importtime report, what follows is first-call work
# Work the module defers to its first invocation (a lazily made tracer), if it defers any.
setup = getattr(sys.modules.get("taskplane.observability"), "tracer", None)
setup = getattr(setup, "setup", None)
if setup is not None:
    setup()
deferred = setup is not None
t2 = time.perf_counter()
# What every first invocation does next, before its own work: build the platform (settings, clients).
if {build!r}:
    importlib.import_module("taskplane.wiring").platform()
t3 = time.perf_counter()
import json
print(json.dumps({{
    "import_ms": (t1 - t0) * 1000,
    "setup_ms": (t2 - t1) * 1000,
    "build_ms": (t3 - t2) * 1000,
    "modules": modules,
    "loaded": loaded,
    "deferred": deferred,
}}))
"""


def child(module: str, path: list[str], env: dict[str, str], *, importtime: bool = False) -> dict[str, Any]:
    code = CHILD.format(path=path, module=module, watched=WATCHED, build=module == "handler", marker=MARKER)
    # -S: no site-packages of the venv (the layer-like site is on ``path`` instead), as in Lambda.
    cmd = [sys.executable, "-S", *(["-X", "importtime"] if importtime else []), "-c", code]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=path[0], capture_output=True, text=True, check=False)
    wall_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_ms"] = wall_ms
    if importtime:
        result["importtime"] = done.stderr
    return result


MARKER = "-- imported --"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def top_imports(report: str, n: int = 8, skip: str = "handler") -> dict[str, list[tuple[str, float]]]:
    """The costliest imports in a ``-X importtime`` report: by cumulative time (outermost first, each
    listed module's own imports not listed again), and by self time."""
    rows = []
    for line in report.splitlines():
        if line == MARKER:
            break
        if m := _LINE.match(line):
            rows.append((int(m.group(1)) / 1000, int(m.group(2)) / 1000, len(m.group(3)) // 2, m.group(4)))
    cumulative: list[tuple[str, float]] = []
    chosen: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: -rows[i][1]):
        if len(chosen) == n:
            break
        if rows[i][3] == skip or any(_inside(rows, i, j) for j in chosen):
            continue
        chosen.append(i)
        cumulative.append((rows[i][3], round(rows[i][1], 1)))
    by_self = sorted(((r[3], round(r[0], 1)) for r in rows), key=lambda r: -r[1])[:n]
    return {"cumulative": cumulative, "self": by_self}


def _inside(rows: list[tuple[float, float, int, str]], i: int, j: int) -> bool:
    """Row ``i`` is imported (directly or not) by row ``j``: it comes before ``j`` in the report,
    deeper, with no row at ``j``'s depth or shallower between them."""
    if i >= j or rows[i][2] <= rows[j][2]:
        return False
    return all(rows[k][2] > rows[j][2] for k in range(i + 1, j))


Target = tuple[str, list[str], dict[str, str]]  # module, sys.path, environment


def summarize(module: str, runs: list[dict[str, Any]], traced: dict[str, Any]) -> dict[str, Any]:
    imports = sorted(r["import_ms"] for r in runs)
    top = top_imports(traced["importtime"], skip=module)
    return {
        "median_ms": round(statistics.median(imports), 1),
        "p90_ms": round(imports[min(len(imports) - 1, round(0.9 * (len(imports) - 1)))], 1),
        "runs": [round(r["import_ms"], 1) for r in runs],
        "wall_median_ms": round(statistics.median(r["wall_ms"] for r in runs), 1),
        "first_call_setup_median_ms": round(statistics.median(r["setup_ms"] for r in runs), 1),
        "import_plus_setup_median_ms": round(
            statistics.median(r["import_ms"] + r["setup_ms"] for r in runs), 1
        ),
        "platform_build_median_ms": round(statistics.median(r["build_ms"] for r in runs), 1),
        "import_to_first_call_median_ms": round(
            statistics.median(r["import_ms"] + r["setup_ms"] + r["build_ms"] for r in runs), 1
        ),
        "deferred_tracer": runs[-1]["deferred"],
        "modules_loaded": runs[-1]["modules"],
        "heavy_modules_loaded": runs[-1]["loaded"],
        "top_imports": top["cumulative"],
        "top_self": top["self"],
    }


def measure(targets: dict[str, Target], repeats: int) -> dict[str, dict[str, Any]]:
    """``repeats`` fresh imports of every target, taken in turns (round ``i`` imports each target
    once), so a neighbour's burst of CPU on this small machine lands on all of them alike."""
    for module, path, env in targets.values():
        child(module, path, env)  # warm the bytecode caches
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for _ in range(repeats):
        for name, (module, path, env) in targets.items():
            runs[name].append(child(module, path, env))
    return {
        name: summarize(module, runs[name], child(module, path, env, importtime=True))
        for name, (module, path, env) in targets.items()
    }


def run(repeats: int = 10) -> dict[str, Any]:
    """Median import time of every handler module and of ``import boto3``, in fresh interpreters."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="taskplane-layer-site-") as tmp:
        site = Path(tmp)
        dists = make_layer_site(site)
        targets: dict[str, Target] = {}
        for name in FUNCTIONS:
            path = [str(ROOT / "functions" / name), str(LAYER), str(site)]
            env = lambda_env(name)
            # as imported outside Lambda's init (the import alone; the first call builds)
            targets[name] = ("handler", path, {k: v for k, v in env.items() if k != INIT_VARIABLE})
            # as Lambda's init imports it: the warm-up builds the tracer and the platform
            targets[f"{name}{WARM}"] = ("handler", path, env)
        targets["boto3"] = ("boto3", [str(ROOT / "functions" / "api"), str(site)], lambda_env("api"))
        measured = measure(targets, repeats)
    baseline = measured.pop("boto3")
    warm = {name: measured.pop(f"{name}{WARM}") for name in FUNCTIONS}
    handlers = measured
    for name, h in handlers.items():
        w = warm[name]
        init = w["median_ms"]
        after = round(w["first_call_setup_median_ms"] + w["platform_build_median_ms"], 1)
        h["warm_up"] = {
            "init_median_ms": init,
            "init_runs": w["runs"],
            # what the init phase does beyond the import: the tracer and the platform
            "warm_up_median_ms": round(max(0.0, init - h["median_ms"]), 1),
            "first_call_median_ms": after,
            "without_warm_up_first_call_median_ms": round(
                h["first_call_setup_median_ms"] + h["platform_build_median_ms"], 1
            ),
        }
    for h in handlers.values():
        # Each round imports everything once, so a round's pair shares the machine's state that moment.
        h["vs_boto3_median"] = round(
            statistics.median(a / b for a, b in zip(h["runs"], baseline["runs"], strict=True)), 2
        )
    deferred = all(h["deferred_tracer"] for h in handlers.values())
    env = lambda_env("<name>")
    shown = {
        k: env[k]
        for k in sorted(env)
        if k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_", "_AWS")) and not k.endswith(("_KEY", "_TOKEN"))
    }
    return {
        "baseline_boto3_ms": {k: baseline[k] for k in ("median_ms", "p90_ms", "runs", "wall_median_ms")},
        "handlers": handlers,
        "max_ms": max(h["median_ms"] for h in handlers.values()),
        "init_max_ms": max(h["warm_up"]["init_median_ms"] for h in handlers.values()),
        "goal_ms": GOAL_MS,
        "repeats": repeats,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "python": sys.version.split()[0],
        "layer_distributions": dists,
        "env": shown,
        "note": (
            f"median of {repeats} fresh `python -S -c` processes each, taken in turns across the targets "
            "(one warm-up run each discarded, "
            "bytecode caches warm); import_ms = time.perf_counter around importlib.import_module('handler') "
            "inside the child; wall = whole process. sys.path = function dir, layers/core/python, and a site "
            "holding only the dependency layer's distributions. Environment as deployed, tracing ON "
            "(LAMBDA_TASK_ROOT set, Powertools' POWERTOOLS_* from infra, X-Ray daemon address). "
            + (
                "The Powertools Tracer (which imports aws_xray_sdk and patches the libraries X-Ray can "
                "trace) is created on the first invocation, not at import: first_call_setup_ms is that "
                "cost, paid by the first request of each Lambda environment; import_plus_setup is the sum. "
                if deferred
                else "The Powertools Tracer (aws_xray_sdk import and patching) is made at import time. "
            )
            + "vs_boto3: median over rounds of handler import / boto3 import in the same round (steadier "
            "than the ms when a neighbour's job shares the CPU). platform_build_ms: wiring.platform() (settings from the env, boto3 clients; no AWS call), "
            "which every first invocation did before and still does; import_to_first_call = import + "
            "setup + build, what a first request waits for before the handler's own work. top_imports: "
            "costliest imports by cumulative ms (one -X importtime run, a listed module's own imports "
            "not listed again); top_self: by self ms. warm_up: the same handler imported as Lambda's "
            f"init phase imports it ({INIT_VARIABLE} set, as every deployed function's init): "
            "init_median_ms is that import with taskplane/init_phase.py's warm-up (tracer and "
            "platform made during it), warm_up_median_ms its excess over the plain import, "
            "first_call_median_ms what the first invocation still sets up after it. The import "
            "figures (median_ms, the 300 ms goal) are the plain import's."
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "cold_start.json")
    args = parser.parse_args(argv)
    result = run(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
