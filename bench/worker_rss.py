"""The worker's memory: its resident set after Lambda's init, and what a delivery batch adds at its peak.

Can the worker run at 256 MB (or 128 MB)? Lambda ends an invocation that goes over the function's
memory, so the worker needs headroom over what a batch of 10 records uses at its peak. Measured in
fresh interpreters (Linux's ``VmRSS`` and ``VmHWM``):

* ``init``: the worker's handler imported as Lambda's init imports it (``taskplane/init_phase.py``
  builds the tracer and the platform: clients, no AWS call), without moto: the deployed baseline.
* ``batch``: under moto, 10 tasks for an HTTP target (a loopback server that reads and discards the
  body) with payloads of ``payload_kib`` each (over 64 KiB they are kept in the bucket: the worker reads
  each one and sends it inline), handled by the worker handler in one batch; the figure is the peak
  over the batch less the resident set just before it. moto's own copies of what the worker reads are
  in it, so it is an upper figure for the worker's share.

The estimate for a deployed worker is ``init`` + ``batch``, beside the memory sizes.

A batch runs without a payload budget (taskplane dev, tests) and as a 256 MB worker (its budget:
payloads read from the bucket wait for room, services/payload_budget.py).

* ``answers``: the same batch with small payloads, the target answering ``answer_kib`` of JSON records
  each (results up to 6 MiB are kept in the bucket): an answer over 256 KiB is checked as JSON and
  stored as its text, never built into Python values (domain/results.py).

    python bench/worker_rss.py                  # 256 KiB and 5 MiB payloads; writes results/worker_rss.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LAYER = ROOT / "layers" / "core" / "python"
WORKER = ROOT / "functions" / "worker"


def _status() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, kb = line.split(":")[0], int(line.split()[1])
            out[name] = kb / 1024
    return out


def init_rss() -> dict[str, float]:
    """The worker after Lambda's init (warm-up on), without moto, in a fresh interpreter."""
    path = [str(WORKER), str(LAYER), str(ROOT / "bench")]
    code = (
        f"import sys, json; sys.path[:0] = {path!r}; import worker_rss; import handler; "
        "from taskplane import wiring; assert wiring._current is not None; "
        "print(json.dumps(worker_rss._status()))"
    )
    env = {
        **os.environ,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "LAMBDA_TASK_ROOT": str(WORKER),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def batch_rss(
    payload_kib: int, records: int = 10, memory_mb: int | None = None, answer_kib: int = 0
) -> dict[str, Any]:
    """In a fresh interpreter: the peak a batch of ``records`` adds (see the module docstring); with
    ``memory_mb``, as a worker of that memory (its payload budget, services/payload_budget.py)."""
    code = f"import sys, json; sys.path[:0] = [{str(ROOT / 'bench')!r}]; import worker_rss; " + (
        f"print(json.dumps(worker_rss._batch({payload_kib}, {records}, {answer_kib})))"
    )
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    env.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
    if memory_mb is not None:
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(memory_mb)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _records(kib: int) -> list[dict[str, Any]]:
    """About ``kib`` KiB of small records: JSON's worst case for Python's memory."""
    row = {"sku": "SKU-000000", "qty": 1, "price_cents": 1999, "note": "x" * 40}
    per_row = len(json.dumps(row)) + 2
    return [dict(row, sku=f"SKU-{i:06d}") for i in range(kib * 1024 // per_row)]


def _batch(payload_kib: int, records: int, answer_kib: int = 0) -> dict[str, Any]:
    sys.path[:0] = [str(WORKER), str(LAYER)]
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.domain.models import TaskSubmit
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import to_record
    from taskplane.local.resources import create_resources

    answer = json.dumps({"items": _records(answer_kib)}).encode() if answer_kib else b"{}"

    class Discard(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            left = int(self.headers.get("content-length") or 0)
            while left > 0:
                left -= len(self.rfile.read(min(left, 65536)))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    # A payload like a real one: a list of small records (JSON's worst case for Python's memory).
    payload = {"items": _records(payload_kib)}
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session).model_copy(update={"allow_private_http": True})
        platform = wiring.build(settings, session=session)
        wiring.use(platform)
        worker = load_handler("worker").lambda_handler
        for _ in range(records):
            platform.tasks.submit(
                "acme",
                TaskSubmit.model_validate({"target": {"type": "http", "url": url}, "payload": payload}),
            )
        del payload
        sqs = session.client("sqs")
        queue = settings.queue_urls["default"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])[
            "Messages"
        ]
        event = {"Records": [to_record(m, arn) for m in messages]}
        import gc

        gc.collect()
        before = _status()
        # the peak so far is not the batch's: reset it (Linux: writing 5 to clear_refs resets VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
        reset = _status()
        response = worker(event, LocalContext(function_name="taskplane-worker"))
        after = _status()
        states = [platform.tasks.get("acme", json.loads(m["Body"])["task_id"]).state.value for m in messages]
        wiring.use(None)
    server.shutdown()
    return {
        "payload_kib": payload_kib,
        "answer_kib": answer_kib,
        "memory_mb": int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        if os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        else None,
        "payload_budget_mib": round(platform.executor.payload_budget.limit / 2**20, 1)
        if platform.executor.payload_budget
        else None,
        "records": len(messages),
        "states": sorted(set(states)),
        "failures": response.get("batchItemFailures"),
        "rss_before_mib": round(before["VmRSS"], 1),
        "peak_after_reset_mib": round(reset["VmHWM"], 1),
        "peak_mib": round(after["VmHWM"], 1),
        "batch_adds_mib": round(after["VmHWM"] - before["VmRSS"], 1),
    }


def run(
    payloads_kib: tuple[int, ...] = (256, 5 * 1024),
    memories: tuple[int | None, ...] = (None, 256),
    answers_kib: tuple[int, ...] = (5 * 1024,),
) -> dict[str, Any]:
    init = init_rss()
    batches = [batch_rss(kib, memory_mb=mb) for kib in payloads_kib for mb in memories]
    answers = [batch_rss(1, memory_mb=256, answer_kib=kib) for kib in answers_kib]
    for b in batches + answers:
        b["estimate_deployed_peak_mib"] = round(init["VmRSS"] + b["batch_adds_mib"], 1)
        b["headroom_mib"] = {
            str(mb): round(mb - b["estimate_deployed_peak_mib"], 1) for mb in (128, 256, 512)
        }
    return {
        "init_rss_mib": round(init["VmRSS"], 1),
        "init_peak_mib": round(init["VmHWM"], 1),
        "batches": batches,
        "answers": answers,
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "note": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
    }


def main() -> None:
    result = run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_rss.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
