"""OTLP export on moto: what a loopback OTLP/HTTP receiver decodes from the handlers' exports.

One trace per task from the api's submit through the worker (and the tick, for a delayed task),
retries as further spans, the lane message's traceparent, a caller's traceparent as a link, the
task resource's trace_id, metrics with the seed's attributes, sampling, an HTTP target's traceparent
header, and a collector that does not answer costing no task.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver, Span
from support import load_event

from taskplane import wiring
from taskplane.domain.tracecontext import hex_trace_id, task_trace
from taskplane.local.context import LocalContext
from taskplane.local.handlers import load_handler

pytestmark = pytest.mark.integration

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


def traced_platform(aws: Any, receiver: OtlpReceiver, **settings: Any) -> Any:
    """The platform rebuilt with OTLP export to ``receiver`` (and installed process-wide)."""
    updated = aws.settings.model_copy(update={"otlp_endpoint": receiver.url, **settings})
    platform = wiring.build(updated, session=aws.session)
    wiring.use(platform)
    return platform


@pytest.fixture
def traced(aws: Any, receiver: OtlpReceiver) -> Any:
    return traced_platform(aws, receiver)


def ids_of(task_id: str, tenant: str = "acme") -> tuple[str, str]:
    ids = task_trace(tenant, task_id)
    return hex_trace_id(ids.trace_id), f"{ids.root_span_id:016x}"


def by_name(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s.name == name]


def test_a_task_is_one_trace_from_submit_through_the_worker(traced, receiver, api, drain, aws):
    # Given a caller in a trace of its own, submitting an immediate task
    reply = api(
        "POST",
        "/v1/tasks",
        {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}},
        headers={"traceparent": CALLER},
    )
    assert reply.status == 201, reply.body
    task_id = reply.body["task_id"]
    trace_id, root_id = ids_of(task_id)
    # Then the lane message carries the traceparent of the span that sent it, in its body
    message = aws.client("sqs").receive_message(
        QueueUrl=aws.settings.queue_urls["default"], VisibilityTimeout=0
    )["Messages"][0]
    tp = json.loads(message["Body"])["tp"]
    assert tp.startswith(f"00-{trace_id}-") and tp.endswith("-01")
    # When the worker runs it
    drain()
    # Then the task resource names its trace
    got = api("GET", f"/v1/tasks/{task_id}").body
    assert got["state"] == "SUCCEEDED" and got["trace_id"] == trace_id
    spans = receiver.wait_for(lambda: len(receiver.trace(trace_id)) >= 3 and receiver.trace(trace_id))
    assert [s.name for s in spans] == ["task.submit", "task.dispatch", "task.run"]
    submit, dispatch, run = spans
    # the root: derived ids, linked to the caller's span (not in the caller's trace)
    assert submit.span_id == root_id and submit.parent_span_id == ""
    assert submit.links == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]
    assert submit.attributes["taskplane.source"] == "api" and submit.attributes["taskplane.tenant"] == "acme"
    # the dispatch (the api's lane send) hangs under the root; the run under the dispatch it received
    assert dispatch.parent_span_id == submit.span_id and dispatch.kind == "PRODUCER"
    assert tp == f"00-{trace_id}-{dispatch.span_id}-01"
    assert run.parent_span_id == dispatch.span_id and run.kind == "CONSUMER"
    assert run.attributes["taskplane.attempt"] == 1
    assert run.attributes["taskplane.outcome"] == "succeeded"
    assert run.attributes["taskplane.target_type"] == "builtin" and run.status == "UNSET"
    assert submit.resource["service.name"] == "taskplane"
    # And the metrics carry the seed's attributes
    base = {"tenant": "acme", "target_type": "builtin", "lane": "default"}
    expected = [
        ("taskplane.submitted", "submit"),
        ("taskplane.dispatched", "dispatch"),
        ("taskplane.started", "run"),
        ("taskplane.succeeded", "run"),
    ]
    for name, stage in expected:
        point = receiver.wait_for(lambda n=name, s=stage: receiver.latest(n, **base, stage=s, attempt=1))
        assert point.kind == "sum" and point.monotonic and point.temporality == 1, (name, point)  # delta
        assert receiver.total(name, **base, stage=stage) == 1, name
    duration = receiver.latest("taskplane.duration", **base, stage="run", attempt=1)
    assert duration is not None and duration.kind == "histogram" and duration.unit == "ms"
    assert duration.value == 1 and duration.total >= 0


def test_retries_are_further_spans_of_the_same_trace(traced, receiver, api, drain):
    # Given a task that fails twice, then succeeds (retries straight back onto the lane)
    body = {
        "target": {"type": "builtin", "name": "fail"},
        "payload": {"times": 2},
        "retry": {"max_attempts": 3, "base_delay_ms": 0, "max_delay_ms": 0},
    }
    task_id = api("POST", "/v1/tasks", body).body["task_id"]
    trace_id, root_id = ids_of(task_id)
    # When the worker has run every attempt
    for _ in range(5):
        drain()
    assert api("GET", f"/v1/tasks/{task_id}").body["state"] == "SUCCEEDED"
    spans = receiver.wait_for(
        lambda: len(by_name(receiver.trace(trace_id), "task.run")) == 3 and receiver.trace(trace_id)
    )
    # Then each attempt is a run span under the dispatch that delivered it, and each retry's dispatch
    # hangs under the attempt that failed
    runs = sorted(by_name(spans, "task.run"), key=lambda s: s.attributes["taskplane.attempt"])
    dispatches = {s.span_id: s for s in by_name(spans, "task.dispatch")}
    assert [r.attributes["taskplane.attempt"] for r in runs] == [1, 2, 3]
    assert [r.status for r in runs] == ["ERROR", "ERROR", "UNSET"]
    assert [r.attributes["taskplane.outcome"] for r in runs] == ["retrying", "retrying", "succeeded"]
    assert runs[0].attributes["error.type"] == "BuiltinFailure" and "BuiltinFailure" in runs[0].status_message
    assert dispatches[runs[0].parent_span_id].parent_span_id == root_id
    assert dispatches[runs[1].parent_span_id].parent_span_id == runs[0].span_id
    assert dispatches[runs[2].parent_span_id].parent_span_id == runs[1].span_id
    assert {s.trace_id for s in spans} == {trace_id}
    # And the retry counter says which attempt failed and why
    for attempt in (1, 2):
        point = receiver.wait_for(
            lambda a=attempt: receiver.latest("taskplane.retried", tenant="acme", attempt=a, stage="run")
        )
        assert point.value == 1 and point.attributes["error_type"] == "BuiltinFailure"
    assert receiver.latest("taskplane.succeeded", tenant="acme", attempt=3).value == 1


def test_a_delayed_task_is_dispatched_by_the_tick_in_its_trace(traced, receiver, api, drain):
    # Given a task due in 1.5 s (it waits in the timing wheel)
    body = {"target": {"type": "builtin", "name": "echo"}, "delay_ms": 1500}
    task_id = api("POST", "/v1/tasks", body).body["task_id"]
    trace_id, root_id = ids_of(task_id)
    # When the tick runs its shard (about four seconds: its function time less the hand-over margin)
    tick = load_handler("tick").lambda_handler
    assert (
        tick(load_event("eventbridge_tick_shard"), LocalContext("taskplane-tick", timeout_s=9))["dispatched"]
        == 1
    )
    drain()
    # Then the tick's dispatch hangs under the root (it knows the trace from the task's id alone) and
    # the run under the tick's dispatch
    spans = receiver.wait_for(lambda: len(receiver.trace(trace_id)) >= 3 and receiver.trace(trace_id))
    submit, dispatch, run = (by_name(spans, n)[0] for n in ("task.submit", "task.dispatch", "task.run"))
    assert submit.attributes["taskplane.state"] == "SCHEDULED"
    assert dispatch.parent_span_id == root_id and dispatch.attributes["taskplane.delivery"] == "scheduled"
    assert run.parent_span_id == dispatch.span_id
    point = receiver.wait_for(
        lambda: receiver.latest("taskplane.dispatched", tenant="acme", target_type="wheel", stage="dispatch")
    )
    assert point.value == 1 and point.attributes["attempt"] == 1


def test_a_message_queued_before_tracing_runs_under_the_task_root(traced, receiver, aws, api, drain):
    # Given two tasks whose lane messages are sent again: one without a traceparent (the format from
    # before tracing), one with a traceparent that is not one
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    ids = [
        api("POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}}).body["task_id"]
        for _ in range(2)
    ]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert len(messages) == 2
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        body = json.loads(m["Body"])
        if body["task_id"] == ids[0]:
            del body["tp"]
        else:
            body["tp"] = "zz-" + body["tp"][3:]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    # When the worker takes them
    drain()
    # Then both ran (a bad traceparent is dropped, never a reason to refuse a delivery), each under
    # its task's root span
    for task_id in ids:
        assert api("GET", f"/v1/tasks/{task_id}").body["state"] == "SUCCEEDED"
        trace_id, root_id = ids_of(task_id)
        runs = receiver.wait_for(lambda t=trace_id: by_name(receiver.trace(t), "task.run"))
        assert runs[0].parent_span_id == root_id


def test_sampling_keeps_a_share_of_traces_and_every_metric(aws, receiver, api, drain):
    # Given export with a sample ratio of 0
    traced_platform(aws, receiver, otlp_sample_ratio=0.0)
    # When a task runs
    task_id = api("POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}}).body["task_id"]
    drain()
    got = api("GET", f"/v1/tasks/{task_id}").body
    # Then it has no trace, no span was exported, and its metrics were
    assert got["state"] == "SUCCEEDED" and got["trace_id"] is None
    receiver.wait_for(lambda: receiver.latest("taskplane.succeeded", tenant="acme"))
    assert receiver.all_spans() == []


class _Echo(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Echo.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


def test_an_http_target_gets_the_attempt_traceparent(traced, receiver, api, drain):
    # Given an HTTP service on loopback
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Echo.seen.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        task_id = api("POST", "/v1/tasks", {"target": {"type": "http", "url": url}}).body["task_id"]
        # When the worker calls it
        drain()
    finally:
        server.shutdown()
        server.server_close()
    # Then the request carried the traceparent of the attempt's span: a traced service joins the trace
    trace_id, _ = ids_of(task_id)
    run = receiver.wait_for(lambda: by_name(receiver.trace(trace_id), "task.run"))[0]
    assert _Echo.seen[0]["traceparent"] == f"00-{trace_id}-{run.span_id}-01"


def test_a_collector_that_fails_costs_no_task_and_is_left_alone_for_a_while(traced, receiver, api, drain):
    # Given a collector answering 503 to everything
    receiver.fail_with = 503
    # When tasks are submitted and run
    ids = [
        api("POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}}).body["task_id"]
        for _ in range(3)
    ]
    drain()
    # Then every task succeeded, and after the first failed export the flushes stopped calling it
    assert all(api("GET", f"/v1/tasks/{t}").body["state"] == "SUCCEEDED" for t in ids)
    calls = len(receiver.requests)
    assert 1 <= calls <= 2  # the first flush's spans (and its metrics): then quiet
    api("GET", f"/v1/tasks/{ids[0]}")
    assert len(receiver.requests) == calls
    # And once the quiet minute is over (made to pass here), the next flush sends what waited
    receiver.fail_with = None
    wiring.platform().tracing._quiet_until = 0.0
    wiring.platform().telemetry.flush()
    receiver.wait_for(lambda: receiver.latest("taskplane.succeeded", tenant="acme"))
    assert receiver.total("taskplane.succeeded", tenant="acme") == 3


def test_every_door_makes_the_root_a_batch_and_a_redrive_included(traced, receiver, api, drain):
    # Given a batch of two tasks, one of which fails for good (one attempt)
    batch = api(
        "POST",
        "/v1/tasks/batch",
        {
            "tasks": [
                {"target": {"type": "builtin", "name": "echo"}},
                {
                    "target": {"type": "builtin", "name": "fail"},
                    "payload": {"times": 9},
                    "retry": {"max_attempts": 1},
                },
            ]
        },
    ).body["results"]
    ok_id, failed_id = (r["task_id"] for r in batch)
    drain()
    assert api("GET", f"/v1/tasks/{failed_id}").body["state"] == "FAILED"
    # When the dead letter is redriven
    new_id = api("POST", "/v1/dead-letters/redrive", {"ids": [failed_id]}).body["results"][0]["redriven_as"]
    # Then each task has its root, and the redriven one's links to the failed task's trace
    roots = {}
    for task_id in (ok_id, failed_id, new_id):
        trace_id, root_id = ids_of(task_id)
        roots[task_id] = receiver.wait_for(lambda t=trace_id: by_name(receiver.trace(t), "task.submit"))[0]
        assert roots[task_id].span_id == root_id
    assert roots[new_id].attributes["taskplane.source"] == "redrive"
    assert roots[new_id].attributes["taskplane.redrive_of"] == failed_id
    assert roots[new_id].links == [ids_of(failed_id)]
    # and the failed attempt's span says why
    trace_id, _ = ids_of(failed_id)
    run = receiver.wait_for(lambda: by_name(receiver.trace(trace_id), "task.run"))[0]
    assert (
        run.attributes["taskplane.outcome"] == "failed" and run.attributes["error.type"] == "BuiltinFailure"
    )
    failed = receiver.wait_for(lambda: receiver.latest("taskplane.failed", tenant="acme", attempt=1))
    assert failed.value == 1 and failed.attributes["error_type"] == "BuiltinFailure"


def test_cumulative_counters_when_the_standard_variable_asks(aws, receiver, api, drain, monkeypatch):
    # Given export with cumulative temporality (what Prometheus reads without a converting collector)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative")
    traced_platform(aws, receiver)
    # When two tasks run, in two api invocations and a worker batch
    for _ in range(2):
        api("POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}})
    drain()
    # Then the submitted counter's points are running totals, repeated by every export (the worker's
    # too: one process here), not the 1s that delta sends
    submitted = [p for p in receiver.all_points() if p.name == "taskplane.submitted"]
    assert {p.temporality for p in submitted} == {2} and [p.value for p in submitted] == [1, 2, 2]
    assert receiver.total("taskplane.submitted", tenant="acme") == 2
