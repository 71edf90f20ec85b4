"""OTLP export of the platform's metrics and traces (the OpenTelemetry SDK, OTLP/HTTP protobuf).

Imported only when ``TASKPLANE_OTLP_ENDPOINT`` is set, by ``wiring.build`` (so on a function's first
invocation, never by a handler module's import). EMF to CloudWatch stays as it is; this is a second
way out for teams on Prometheus, Grafana, Datadog or anything else that reads OTLP.

Metrics. Every point the platform records through ``MetricsBuffer`` is also an OpenTelemetry
instrument: each count a counter ``taskplane.<name>``, attempt durations a histogram
``taskplane.duration`` (ms), with the attributes ``tenant``, ``target_type``, ``lane``, ``stage``
and, where they apply, ``attempt`` and ``error_type`` (``observability.metric_attributes``).
Temporality is delta unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise;
every execution environment is its own ``service.instance.id``.

Traces. One trace per task and one per workflow run (``domain/tracecontext.py``: the ids are a hash
of the tenant and the id, so no function has to read or carry them to find the trace):

    task.submit (root: the record is stored; api, or the tick for a schedule, the worker for a trigger)
      task.dispatch (a lane message sent: by the api, the tick from the wheel, the worker's retry)
        task.run (one attempt in the worker; its outcome, error type and message)
          task.dispatch (the retry it queued)
            task.run (attempt 2) ...
    workflow.run (root: the run is stored)
      workflow.start (an execution started; its input carries this span to every step)
        workflow.node / workflow.gate / workflow.compensate / ... (one per step function task)

A lane message carries the ``traceparent`` of the span that sent it in its body (``tp``); the step
function's tasks get it in the execution input (``run.tp``). A caller's ``traceparent`` header on an
API request is a *link* on the root spans it creates: a task that runs next week does not belong in
the trace of the request that submitted it.

Export. Spans go through a ``BatchSpanProcessor`` and metrics through a reader without a timer;
``flush`` (the end of every invocation: Lambda may freeze right after it returns) exports both
synchronously, at most one request per signal. An export that fails or times out (1 s) silences
the flushes of this execution environment for a minute, so a collector that is down costs an
invocation at most about a second once a minute, never a task.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from taskplane import __version__
from taskplane.domain.tracecontext import (
    TraceIds,
    child_span_id,
    format_traceparent,
    hex_trace_id,
    parse_traceparent,
    run_trace,
    sampled,
    task_trace,
)
from taskplane.tracing import Ended, SpanNote

if TYPE_CHECKING:
    from taskplane.adapters.queues import LaneMessage
    from taskplane.domain.models import Task

log = logging.getLogger(__name__)

#: One export request may take this long (the exporter retries within it).
EXPORT_TIMEOUT_S = 1.0
#: After a failed export, flushes wait this long before trying again (spans queue meanwhile, up to
#: the processor's queue; counters keep counting and go out with the next export).
QUIET_S = 60.0
#: Spans waiting for export at most (a tick sends thousands of dispatches in a minute).
MAX_QUEUED_SPANS = 8192
#: Histogram buckets for attempt durations, in ms: up to the 900-second task timeout.
DURATION_BUCKETS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)
DURATION_BUCKETS_MS += (30_000, 60_000, 120_000, 300_000, 600_000, 900_000)
#: The unit of each counter (OpenTelemetry annotations: Prometheus drops them from the name).
_UNITS = {
    "node_": "{node}",
    "compensation_": "{node}",
    "schedule_": "{fire}",
    "poison": "{message}",
    "event_": "{event}",
}
#: Delta unless the standard variable says otherwise: every invocation exports, and with cumulative
#: counters each export would repeat every series the execution environment ever saw (per tenant,
#: lane, target type, attempt...); with delta it carries what changed since the last one, and
#: nothing at all when nothing did.
TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
DELTA: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
}
#: Span names of the step function's actions.
STEP_SPANS = {
    "run": "workflow.node",
    "gate": "workflow.gate",
    "compensate": "workflow.compensate",
    "failed": "workflow.failed",
    "compensated": "workflow.compensated",
    "succeeded": "workflow.succeeded",
}

_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "taskplane_forced_span_ids", default=None
)


class _Ids(RandomIdGenerator):
    """Random ids, except for spans whose ids are derived (a trace's root, an execution's start):
    those are made inside :func:`_with_ids`."""

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced is not None else super().generate_span_id()


@contextlib.contextmanager
def _with_ids(trace_id: int, span_id: int) -> Iterator[None]:
    token = _forced_ids.set((trace_id, span_id))
    try:
        yield
    finally:
        _forced_ids.reset(token)


class _SpanExporter(OTLPSpanExporter):
    """Remembers whether its last export went through."""

    last_ok = True

    def export(self, spans: Any) -> SpanExportResult:
        result = super().export(spans)
        self.last_ok = result is SpanExportResult.SUCCESS
        return result


class _MetricExporter(OTLPMetricExporter):
    last_ok = True

    def export(
        self, metrics_data: Any, timeout_millis: float | None = None, **kwargs: Any
    ) -> MetricExportResult:
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.last_ok = result is MetricExportResult.SUCCESS
        return result


class _Note:
    def __init__(self, span: Any) -> None:
        self._span = span

    def outcome(self, value: object) -> None:
        text = getattr(value, "value", value)
        self._span.set_attribute("taskplane.outcome", str(text))

    def set(self, **attributes: str | int | bool) -> None:
        self._span.set_attributes({f"taskplane.{k}": v for k, v in attributes.items()})


class _NoNote:
    def outcome(self, value: object) -> None:
        return None

    def set(self, **attributes: str | int | bool) -> None:
        return None


def _header(headers: Mapping[str, Any] | None, name: str) -> Any:
    for key, value in (headers or {}).items():
        if isinstance(key, str) and key.lower() == name:
            return value
    return None


def _remote(trace_id: int, span_id: int, is_sampled: bool) -> otel_context.Context:
    """A context whose current span is ``(trace_id, span_id)`` of another process."""
    flags = TraceFlags(TraceFlags.SAMPLED if is_sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags))
    return trace.set_span_in_context(span, otel_context.Context())


def _source(task: Task) -> str:
    if task.schedule_id:
        return "schedule"
    if task.trigger_id:
        return "trigger"
    first = task.history[0].detail if task.history else None
    if first and first.startswith("redrive of "):
        return "redrive"
    return "api"


class OtlpExport:
    """The tracing port and the metrics sink over one OTLP/HTTP endpoint."""

    enabled = True

    def __init__(
        self,
        endpoint: str,
        *,
        sample_ratio: float = 1.0,
        export_timeout_s: float = EXPORT_TIMEOUT_S,
        quiet_s: float = QUIET_S,
        resource_attributes: Mapping[str, str] | None = None,
    ) -> None:
        base = endpoint.rstrip("/")
        self.endpoint = base
        self.sample_ratio = sample_ratio
        self._quiet_s = quiet_s
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        attributes = {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or "taskplane",
            "service.version": __version__,
            # Each execution environment counts on its own (cumulative counters).
            "service.instance.id": uuid.uuid4().hex,
        }
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if function:
            attributes |= {
                "cloud.provider": "aws",
                "cloud.platform": "aws_lambda",
                "cloud.region": os.environ.get("AWS_REGION", ""),
                "faas.name": function,
                "faas.version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
            }
        resource = Resource.create({**attributes, **(resource_attributes or {})})
        self._span_exporter = _SpanExporter(endpoint=f"{base}/v1/traces", timeout=export_timeout_s)
        self.tracer_provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            id_generator=_Ids(),
        )
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(self._span_exporter, max_queue_size=MAX_QUEUED_SPANS)
        )
        self._tracer = self.tracer_provider.get_tracer("taskplane", __version__)
        self._metric_exporter = _MetricExporter(
            endpoint=f"{base}/v1/metrics",
            timeout=export_timeout_s,
            preferred_temporality=None if os.environ.get(TEMPORALITY_VARIABLE) else DELTA,
        )
        # No timer: flush exports at the end of each invocation (a timer thread would be frozen
        # with the execution environment between invocations anyway).
        reader = PeriodicExportingMetricReader(
            self._metric_exporter,
            export_interval_millis=math.inf,
            export_timeout_millis=export_timeout_s * 1000,
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self._meter = self.meter_provider.get_meter("taskplane", __version__)
        self._counters: dict[str, Any] = {}
        self._duration = self._meter.create_histogram(
            "taskplane.duration",
            unit="ms",
            description="How long a task attempt's target call took",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_MS,
        )
        self._dirty = False

    # -- identities --------------------------------------------------------------------------------
    def _sampled(self, ids: TraceIds) -> bool:
        return sampled(ids.trace_id, self.sample_ratio)

    def trace_id(self, ids: TraceIds) -> str | None:
        return hex_trace_id(ids.trace_id) if self._sampled(ids) else None

    def _parent(self, ids: TraceIds) -> otel_context.Context:
        """The span open here when it belongs to this trace, else the trace's root (another process's)."""
        current = trace.get_current_span().get_span_context()
        if current.is_valid and current.trace_id == ids.trace_id:
            return otel_context.get_current()
        return _remote(ids.trace_id, ids.root_span_id, self._sampled(ids))

    @staticmethod
    def _links() -> list[Link]:
        """A root span links to the span open where it is made (a caller's, a trigger delivery's)."""
        current = trace.get_current_span().get_span_context()
        return [Link(current)] if current.is_valid else []

    def _root(
        self, name: str, ids: TraceIds, began_ns: int, attributes: dict[str, Any], links: list[Link]
    ) -> None:
        with _with_ids(ids.trace_id, ids.root_span_id):
            span = self._tracer.start_span(
                name,
                context=otel_context.Context(),
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                links=links,
                start_time=began_ns,
            )
        span.end()

    # -- roots ---------------------------------------------------------------------------------------
    def tasks_created(self, tasks: Sequence[Task], began_ns: int) -> None:
        with _guard("tasks_created"):
            for task in tasks:
                ids = task_trace(task.tenant, task.task_id)
                if not self._sampled(ids):
                    continue
                links = self._links()
                source = _source(task)
                attributes: dict[str, Any] = {
                    "taskplane.tenant": task.tenant,
                    "taskplane.task_id": task.task_id,
                    "taskplane.target_type": task.target_type,
                    "taskplane.lane": task.priority,
                    "taskplane.state": task.state.value,
                    "taskplane.run_at": task.run_at,
                    "taskplane.source": source,
                }
                if task.schedule_id:
                    attributes["taskplane.schedule_id"] = task.schedule_id
                if task.trigger_id:
                    attributes["taskplane.trigger_id"] = task.trigger_id
                if source == "redrive" and task.history[0].detail:
                    old = task.history[0].detail.removeprefix("redrive of ")
                    attributes["taskplane.redrive_of"] = old
                    before = task_trace(task.tenant, old)
                    links.append(Link(SpanContext(before.trace_id, before.root_span_id, is_remote=True)))
                self._root("task.submit", ids, began_ns, attributes, links)

    def run_created(self, tenant: str, run_id: str, workflow: str, version: int, began_ns: int) -> None:
        with _guard("run_created"):
            ids = run_trace(tenant, run_id)
            if self._sampled(ids):
                attributes = {
                    "taskplane.tenant": tenant,
                    "taskplane.run_id": run_id,
                    "taskplane.workflow": workflow,
                    "taskplane.workflow_version": version,
                }
                self._root("workflow.run", ids, began_ns, attributes, self._links())

    # -- crossings -----------------------------------------------------------------------------------
    def dispatch(self, messages: Sequence[LaneMessage]) -> tuple[list[LaneMessage], Ended]:
        out = list(messages)
        spans: list[tuple[int, Any]] = []
        with _guard("dispatch"):
            for i, message in enumerate(messages):
                ids = task_trace(message.tenant, message.task_id)
                if not self._sampled(ids):
                    continue
                attributes: dict[str, Any] = {
                    "taskplane.tenant": message.tenant,
                    "taskplane.task_id": message.task_id,
                    "taskplane.attempt": message.attempt,
                    "taskplane.lane": message.lane,
                    "taskplane.delivery": "watch" if message.state == "RUNNING" else message.state.lower(),
                    "messaging.system": "aws_sqs",
                    "messaging.operation.type": "send",
                }
                if message.delay_s:
                    attributes["taskplane.delay_s"] = message.delay_s
                if message.late_ms:
                    attributes["taskplane.late_ms"] = message.late_ms
                span = self._tracer.start_span(
                    "task.dispatch", context=self._parent(ids), kind=SpanKind.PRODUCER, attributes=attributes
                )
                context = span.get_span_context()
                out[i] = replace(
                    message, tp=format_traceparent(context.trace_id, context.span_id, sampled=True)
                )
                spans.append((i, span))

        def ended(outcomes: Sequence[BaseException | None]) -> None:
            with _guard("dispatch ended"):
                for i, span in spans:
                    error = outcomes[i] if i < len(outcomes) else None
                    if error is not None:
                        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
                    span.end()

        return out, ended

    def launch(self, payload: dict[str, Any]) -> tuple[dict[str, Any], Ended]:
        run = payload.get("run")
        span: Any = None
        with _guard("launch"):
            if isinstance(run, dict):
                ids = run_trace(str(run.get("tenant")), str(run.get("run_id")))
                if self._sampled(ids):
                    attributes: dict[str, Any] = {
                        "taskplane.tenant": str(run.get("tenant")),
                        "taskplane.run_id": str(run.get("run_id")),
                        "taskplane.workflow": str(run.get("workflow")),
                        "taskplane.exec": int(run.get("exec") or 0),
                    }
                    if payload.get("resume"):
                        attributes["taskplane.resume"] = str(payload["resume"])
                    # A derived span id: the same run and execution make the same input, so a start
                    # sent again is still the same execution (StartExecution is idempotent on it).
                    with _with_ids(ids.trace_id, child_span_id(ids, f"exec/{run.get('exec')}")):
                        span = self._tracer.start_span(
                            "workflow.start",
                            context=self._parent(ids),
                            kind=SpanKind.PRODUCER,
                            attributes=attributes,
                        )
                    context = span.get_span_context()
                    tp = format_traceparent(context.trace_id, context.span_id, sampled=True)
                    payload = {**payload, "run": {**run, "tp": tp}}

        def ended(outcomes: Sequence[BaseException | None]) -> None:
            if span is None:
                return
            with _guard("launch ended"):
                error = outcomes[0] if outcomes else None
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
                span.end()

        return payload, ended

    @contextlib.contextmanager
    def delivered(self, message: LaneMessage) -> Iterator[None]:
        token = None
        with _guard("delivered"):
            sent_by = parse_traceparent(message.tp)
            ids = task_trace(message.tenant, message.task_id)
            # A traceparent of another trace is not this task's: ignore it.
            if sent_by is not None and sent_by.trace_id == ids.trace_id:
                token = otel_context.attach(_remote(sent_by.trace_id, sent_by.span_id, sent_by.sampled))
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)

    @contextlib.contextmanager
    def attempt(
        self, name: str, tenant: str, task_id: str, attempt: int, **attributes: str | int | bool
    ) -> Iterator[SpanNote]:
        ids = task_trace(tenant, task_id)
        if not self._sampled(ids):
            yield _NoNote()
            return
        with self._span(
            name,
            self._parent(ids),
            SpanKind.CONSUMER,
            {
                "taskplane.tenant": tenant,
                "taskplane.task_id": task_id,
                "taskplane.attempt": attempt,
                **{f"taskplane.{k}": v for k, v in attributes.items()},
            },
        ) as note:
            yield note

    @contextlib.contextmanager
    def step(self, event: Mapping[str, Any]) -> Iterator[SpanNote]:
        run = event.get("run") if isinstance(event, Mapping) else None
        if not isinstance(run, Mapping):
            yield _NoNote()
            return
        ids = run_trace(str(run.get("tenant")), str(run.get("run_id")))
        if not self._sampled(ids):
            yield _NoNote()
            return
        action = str(event.get("action"))
        attributes: dict[str, Any] = {
            "taskplane.tenant": str(run.get("tenant")),
            "taskplane.run_id": str(run.get("run_id")),
            "taskplane.workflow": str(run.get("workflow")),
            "taskplane.exec": int(run.get("exec") or 0),
            "taskplane.action": action,
        }
        if event.get("node") is not None:
            attributes["taskplane.node"] = str(event["node"])
        if action in ("run", "compensate"):
            attributes["taskplane.attempt"] = int(event.get("retry") or 0) + 1
        started_by = parse_traceparent(run.get("tp"))
        parent = (
            _remote(started_by.trace_id, started_by.span_id, started_by.sampled)
            if started_by is not None and started_by.trace_id == ids.trace_id
            else self._parent(ids)
        )
        with self._span(
            STEP_SPANS.get(action, "workflow.step"), parent, SpanKind.CONSUMER, attributes
        ) as note:
            yield note

    @contextlib.contextmanager
    def _span(
        self, name: str, parent: otel_context.Context, kind: SpanKind, attributes: dict[str, Any]
    ) -> Iterator[SpanNote]:
        span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            yield _Note(span)
        except BaseException as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def failed(self, error_type: str, message: str) -> None:
        with _guard("failed"):
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"[:500]))

    @contextlib.contextmanager
    def request(self, headers: Mapping[str, Any] | None) -> Iterator[None]:
        token = None
        with _guard("request"):
            caller = parse_traceparent(_header(headers, "traceparent"))
            if caller is not None:
                token = otel_context.attach(_remote(caller.trace_id, caller.span_id, caller.sampled))
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)

    def traceparent(self) -> str | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format_traceparent(context.trace_id, context.span_id, sampled=context.trace_flags.sampled)

    # -- metrics (observability.MetricsSink) ---------------------------------------------------------
    def add(self, name: str, value: float, attributes: dict[str, str | int]) -> None:
        with _guard("metric"):
            counter = self._counters.get(name)
            if counter is None:
                with self._lock:
                    counter = self._counters.get(name)
                    if counter is None:
                        unit = next((u for prefix, u in _UNITS.items() if name.startswith(prefix)), "{task}")
                        counter = self._meter.create_counter(f"taskplane.{name}", unit=unit)
                        self._counters[name] = counter
            counter.add(value, attributes)
            self._dirty = True

    def record_duration(self, ms: float, attributes: dict[str, str | int]) -> None:
        with _guard("metric"):
            self._duration.record(ms, attributes)
            self._dirty = True

    # -- export --------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Export the spans and metrics waiting, now (a Lambda invocation is ending)."""
        if time.monotonic() < self._quiet_until:
            return
        with _guard("flush"):
            self.tracer_provider.force_flush()
            ok = self._span_exporter.last_ok
            if ok and self._dirty:
                self._dirty = False
                self.meter_provider.force_flush()
                ok = self._metric_exporter.last_ok
            if not ok:
                self._dirty = True  # counters still hold it all: the next export sends it
                self._quiet_until = time.monotonic() + self._quiet_s
                log.warning(
                    "OTLP export to %s failed; trying again in %d s (spans queue, counters keep counting)",
                    self.endpoint,
                    self._quiet_s,
                )
                self._span_exporter.last_ok = self._metric_exporter.last_ok = True

    def shutdown(self) -> None:
        with _guard("shutdown"):
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=1_000)


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """Telemetry never fails the work it describes: a bug here is logged, not raised."""
    try:
        yield
    except Exception:
        log.warning("OTLP %s failed", what, exc_info=True)
