"""OTLP export: what it sends per task, what it costs per task, per flush and at a cold start.

Four measurements, written to ``bench/results/otlp.json``:

* ``per_task``: N immediate tasks (echo) through the real api and worker handlers on in-process moto
  (one API event per task, worker batches of 10 as the event source mapping would hand them), OTLP
  on, exported to a loopback receiver that runs in *another* process and decodes everything: spans,
  metric data points, export requests and bytes per task. The same again for tasks that fail twice
  and succeed on attempt 3.
* ``cpu``: the CPU the export adds per task. (a) On moto: the same workload with OTLP off and on, in
  alternating rounds, this process's CPU time per task (moto's own CPU is in both and cancels in the
  median of the differences, but makes it noisy). (b) The export alone: the tracing and metric calls
  a task's life makes (root, dispatch, attempt, six counters, a duration) with the flushes an api
  invocation (one per task) and a worker invocation (one per ten tasks) make, no AWS at all.
* ``flush``: the wall time of the end-of-invocation flush to the loopback receiver (one task's
  spans and metrics; a batch of ten), against a ``SimpleSpanProcessor`` (one export request per span
  as it ends), and what a collector that refuses connections or never answers costs.
* ``cold_start``: in fresh ``python -S`` interpreters with only the dependency layer's distributions
  (bench/cold_start.py's layer-like site) and a deployed function's environment: the handler's
  import with and without ``TASKPLANE_OTLP_ENDPOINT``, and the first invocation's platform build
  with and without it (where the OpenTelemetry SDK is imported when the endpoint is set).

    python bench/otlp.py                 # about 3 minutes
    python bench/otlp.py --tasks 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path[:0] = [str(ROOT / "layers" / "core" / "python"), str(ROOT / "tests"), str(HERE)]


# -- a receiver in its own process ----------------------------------------------------------------
@contextmanager
def receiver_process() -> Any:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "otlp_receiver.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    try:
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as answer:
        return json.loads(answer.read())


def diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {
        "spans": after["spans"] - before["spans"],
        "points": after["points"] - before["points"],
        "requests": sum(after["requests"].values()) - sum(before["requests"].values()),
        "trace_requests": after["requests"]["/v1/traces"] - before["requests"]["/v1/traces"],
        "metric_requests": after["requests"]["/v1/metrics"] - before["requests"]["/v1/metrics"],
        "bytes": sum(after["bytes"].values()) - sum(before["bytes"].values()),
    }


# -- the platform on moto ---------------------------------------------------------------------------
@contextmanager
def platform_on_moto() -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ[name] = value
    import boto3
    from moto import mock_aws

    from taskplane.local import moto_patches
    from taskplane.local.resources import create_resources

    moto_patches.apply()
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        yield session, create_resources(session)


class Workload:
    """The api handler for each task, then the worker handler over the lane in batches of 10."""

    def __init__(self, session: Any, settings: Any) -> None:
        from conftest import api_event

        from taskplane.local.context import LocalContext
        from taskplane.local.handlers import load_handler
        from taskplane.local.poller import to_record

        self.session, self.settings = session, settings
        self.api = load_handler("api").lambda_handler
        self.worker = load_handler("worker").lambda_handler
        self.api_event, self.context, self.to_record = api_event, LocalContext, to_record
        self.sqs = session.client("sqs")
        self.lanes = [
            (
                url,
                self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ],
            )
            for url in settings.queue_urls.values()
        ]

    def use(self, endpoint: str, ratio: float = 1.0) -> None:
        from taskplane import wiring

        settings = self.settings.model_copy(update={"otlp_endpoint": endpoint, "otlp_sample_ratio": ratio})
        wiring.use(wiring.build(settings, session=self.session))

    def run(self, tasks: int, body: dict[str, Any], tenants: int = 1) -> None:
        lanes = ("high", "default", "low")
        for i in range(tasks):
            sent = {**body, "priority": lanes[i % 3]} if tenants > 1 else body
            event = self.api_event("POST", "/v1/tasks", sent, tenant=f"tenant-{i % tenants}")
            answer = self.api(event, self.context("taskplane-api"))
            assert answer["statusCode"] == 201, answer
        for url, arn in self.lanes:
            idle = 0
            while idle < 3:
                messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    idle += 1
                    continue
                idle = 0
                event = {"Records": [self.to_record(m, arn) for m in messages]}
                answer = self.worker(event, self.context("taskplane-worker"))
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
                for m in messages:
                    if m["MessageId"] not in failed:
                        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


ECHO = {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}}
FLAKY = {
    "target": {"type": "builtin", "name": "fail"},
    "payload": {"times": 2},
    "retry": {"max_attempts": 3, "base_delay_ms": 0, "max_delay_ms": 0},
}


def per_task(work: Workload, url: str, tasks: int) -> dict[str, Any]:
    from taskplane import wiring

    out: dict[str, Any] = {}
    # One tenant; then many series: 20 tenants over 3 lanes. Delta (the default) sends what each
    # invocation changed; cumulative repeats every series the environment has seen in every export.
    scenarios = (
        ("echo", ECHO, 1, ""),
        ("two_retries", FLAKY, 1, ""),
        ("echo_20_tenants_delta", ECHO, 20, ""),
        ("echo_20_tenants_cumulative", ECHO, 20, "cumulative"),
    )
    for name, body, tenants, temporality in scenarios:
        os.environ["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] = temporality
        work.use(url)
        before = stats(url)
        work.run(tasks, body, tenants=tenants)
        wiring.platform().telemetry.flush()
        got = diff(stats(url), before)
        out[name] = {"tasks": tasks, **{f"{k}_per_task": round(v / tasks, 2) for k, v in got.items()}}
    os.environ.pop("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", None)
    out["span_names"] = stats(url)["span_names"]
    return out


def cpu_on_moto(work: Workload, url: str, tasks: int, rounds: int) -> dict[str, Any]:
    per_round: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for mode in ("off", "on"):
            work.use(url if mode == "on" else "")
            began = time.process_time()
            work.run(tasks, ECHO)
            per_round[mode].append((time.process_time() - began) * 1000 / tasks)
    deltas = [on - off for on, off in zip(per_round["on"], per_round["off"], strict=True)]
    return {
        "tasks_per_round": tasks,
        "rounds": rounds,
        "cpu_ms_per_task_off": [round(x, 2) for x in per_round["off"]],
        "cpu_ms_per_task_on": [round(x, 2) for x in per_round["on"]],
        "added_cpu_ms_per_task_median": round(statistics.median(deltas), 3),
    }


# -- the export alone ----------------------------------------------------------------------------------
def cpu_export_alone(url: str, tasks: int) -> dict[str, Any]:
    """CPU of a task's OTLP calls without any AWS call: api invocation (root, dispatch, two counters,
    flush) then a worker invocation per ten tasks (attempt span, four counters, a duration, flush)."""
    from taskplane.adapters.queues import LaneMessage
    from taskplane.domain.models import TaskSubmit, new_task
    from taskplane.observability import MetricsBuffer
    from taskplane.otlp import OtlpExport

    export = OtlpExport(url)
    metrics = MetricsBuffer(sink=export)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    submit = TaskSubmit.model_validate(ECHO)
    dims = {"tenant": "acme", "target_type": "builtin", "lane": "default", "attempt": 1}

    def life(i: int, messages: list[Any]) -> None:
        task = new_task(submit, task_id=f"01J{i:023d}", tenant="acme", now_ms=1_700_000_000_000)
        began = time.time_ns()
        export.tasks_created([task], began)
        sent, ended = export.dispatch([LaneMessage(tenant="acme", task_id=task.task_id, attempt=1)])
        ended([None])
        metrics.count("submitted", **dims)
        metrics.count("dispatched", **dims)
        metrics.flush()  # the api invocation ends
        messages.append((task, sent[0]))

    def run(batch: list[Any]) -> None:
        for task, message in batch:
            with export.delivered(message), export.attempt("task.run", "acme", task.task_id, 1) as note:
                metrics.count("started", **dims)
                metrics.duration_ms(1.0, **{k: v for k, v in dims.items()})
                metrics.count("succeeded", **dims)
                note.outcome("succeeded")
        metrics.flush()  # the worker invocation ends

    for i in range(50):  # warm-up: instruments, connections
        life(i, [])
    before = stats(url)
    began = time.process_time()
    pending: list[Any] = []
    for i in range(tasks):
        life(i, pending)
        if len(pending) == 10:
            run(pending)
            pending = []
    run(pending)
    cpu_ms = (time.process_time() - began) * 1000
    got = diff(stats(url), before)
    export.shutdown()
    return {
        "tasks": tasks,
        "cpu_ms_per_task": round(cpu_ms / tasks, 3),
        "spans_per_task": round(got["spans"] / tasks, 2),
        "requests_per_task": round(got["requests"] / tasks, 2),
        "note": "api: one flush per task (one trace request and one metric request); worker: one flush per 10 tasks",
    }


# -- flushes -----------------------------------------------------------------------------------------------
def flush_costs(url: str, repeats: int) -> dict[str, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from taskplane.adapters.queues import LaneMessage
    from taskplane.observability import MetricsBuffer
    from taskplane.otlp import OtlpExport, _SpanExporter

    export = OtlpExport(url)
    metrics = MetricsBuffer(sink=export)
    dims = {"tenant": "acme", "target_type": "builtin", "lane": "default", "attempt": 1}

    def spans_and_metrics(n: int) -> None:
        for i in range(n):
            _, ended = export.dispatch([LaneMessage(tenant="acme", task_id=f"T{i}", attempt=1)])
            ended([None])
            with export.attempt("task.run", "acme", f"T{i}", 1):
                pass
            metrics.count("succeeded", **dims)

    def timed_flush(n: int) -> list[float]:
        out = []
        for _ in range(repeats):
            spans_and_metrics(n)
            began = time.perf_counter()
            metrics.flush()
            out.append((time.perf_counter() - began) * 1000)
        return out

    timed_flush(1)  # warm-up
    one, ten = timed_flush(1), timed_flush(10)
    # The alternative: every span exported on its own as it ends.
    simple = TracerProvider()
    simple.add_span_processor(SimpleSpanProcessor(_SpanExporter(endpoint=f"{url}/v1/traces", timeout=1.0)))
    tracer = simple.get_tracer("bench")
    per_span = []
    for _ in range(repeats * 4):
        began = time.perf_counter()
        tracer.start_span("bench.simple_processor").end()
        per_span.append((time.perf_counter() - began) * 1000)
    simple.shutdown()
    export.shutdown()
    # A collector that refuses connections, and one that never answers.
    refused = OtlpExport("http://127.0.0.1:9", quiet_s=0.0)
    refused_metrics = MetricsBuffer(sink=refused)
    refused_ms = []
    for _ in range(3):
        refused_metrics.count("succeeded", **dims)
        began = time.perf_counter()
        refused_metrics.flush()
        refused_ms.append((time.perf_counter() - began) * 1000)
    refused.shutdown()
    return {
        "batch_flush_one_task_ms_median": round(statistics.median(one), 2),
        "batch_flush_ten_tasks_ms_median": round(statistics.median(ten), 2),
        "simple_processor_ms_per_span_median": round(statistics.median(per_span), 2),
        "simple_processor_ms_per_task_3_spans": round(3 * statistics.median(per_span), 2),
        "refused_collector_flush_ms": [round(x, 1) for x in refused_ms],
        "repeats": repeats,
    }


def silent_collector_cost() -> dict[str, Any]:
    """A collector that accepts the connection and never answers: the first flush waits out the
    export timeout, then the environment's flushes are quiet for a minute."""
    import socket

    from taskplane.observability import MetricsBuffer
    from taskplane.otlp import OtlpExport

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    export = OtlpExport(url)
    metrics = MetricsBuffer(sink=export)
    dims = {"tenant": "acme", "target_type": "builtin", "lane": "default", "attempt": 1}
    costs = []
    for _ in range(3):
        with export.attempt("task.run", "acme", "T1", 1):
            metrics.count("succeeded", **dims)
        began = time.perf_counter()
        metrics.flush()
        costs.append(round((time.perf_counter() - began) * 1000, 1))
    listener.close()
    return {"flush_ms_first_then_quiet": costs}


# -- cold start ---------------------------------------------------------------------------------------------
CHILD = """
import sys, time, json, importlib
sys.path[:0] = {path!r}
t0 = time.perf_counter()
importlib.import_module("handler")
t1 = time.perf_counter()
from taskplane import wiring
wiring.platform()
t2 = time.perf_counter()
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "build_ms": (t2 - t1) * 1000,
                  "otel": any(m.startswith("opentelemetry") for m in sys.modules)}}))
"""


def cold_start(repeats: int) -> dict[str, Any]:
    import cold_start as cs

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taskplane-layer-site-") as tmp:
        site = Path(tmp)
        dists = cs.make_layer_site(site)
        for function in ("api", "worker"):
            path = [str(ROOT / "functions" / function), str(ROOT / "layers" / "core" / "python"), str(site)]
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for i in range(repeats + 1):
                for mode in ("off", "on"):
                    env = cs.lambda_env(function)
                    if mode == "on":
                        env["TASKPLANE_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
                    code = CHILD.format(path=path)
                    done = subprocess.run(
                        [sys.executable, "-S", "-c", code],
                        env=env,
                        cwd=path[0],
                        capture_output=True,
                        text=True,
                    )
                    if done.returncode != 0:
                        raise RuntimeError(done.stderr[-3000:])
                    if i:  # the first round warms the bytecode caches
                        runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            out[function] = {
                mode: {
                    "import_ms_median": round(statistics.median(r["import_ms"] for r in rs), 1),
                    "platform_build_ms_median": round(statistics.median(r["build_ms"] for r in rs), 1),
                    "opentelemetry_imported": rs[-1]["otel"],
                }
                for mode, rs in runs.items()
            }
            out[function]["otlp_added_to_first_invocation_ms"] = round(
                out[function]["on"]["platform_build_ms_median"]
                - out[function]["off"]["platform_build_ms_median"],
                1,
            )
        otel = [
            d
            for d in dists
            if d.startswith(("opentelemetry", "protobuf", "googleapis", "requests", "urllib3"))
        ]
    out["otel_layer_distributions"] = otel
    out["repeats"] = repeats
    return out


def layer_megabytes() -> dict[str, float]:
    """Installed size of the distributions OTLP export adds to the dependency layer (this machine's
    wheels; the layer's aarch64 ones are within a few per cent)."""
    import importlib.metadata as md

    sizes = {}
    for name in (
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-semantic-conventions",
        "opentelemetry-proto",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-exporter-otlp-proto-common",
        "opentelemetry-exporter-otlp-common",
        "opentelemetry-exporter-http-transport",
        "protobuf",
        "googleapis-common-protos",
        "requests",
        "urllib3",
        "idna",
        "certifi",
        "charset-normalizer",
    ):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        sizes[name] = round(sum((f.size or 0) for f in dist.files or []) / 1e6, 2)
    sizes["total"] = round(sum(sizes.values()), 2)
    return sizes


def run(tasks: int = 300, rounds: int = 5, repeats: int = 7) -> dict[str, Any]:
    """All four measurements (the module's docstring), as one result."""
    result: dict[str, Any] = {"load_average_before": os.getloadavg()}
    result["cold_start"] = cold_start(repeats)
    with receiver_process() as url:
        result["flush"] = flush_costs(url, repeats * 3)
        result["flush"]["silent_collector"] = silent_collector_cost()
        result["cpu_export_alone"] = cpu_export_alone(url, tasks * 10)
        with platform_on_moto() as (session, settings):
            work = Workload(session, settings)
            result["per_task"] = per_task(work, url, tasks)
            result["cpu_on_moto"] = cpu_on_moto(work, url, max(50, tasks // 3), rounds)
            from taskplane import wiring

            wiring.use(None)
    result["layer_mb"] = layer_megabytes()
    result["load_average_after"] = os.getloadavg()
    result["python"] = sys.version.split()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = run(args.tasks, args.rounds, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "otlp.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
