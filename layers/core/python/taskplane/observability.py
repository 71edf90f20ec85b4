"""Logger, tracer and metrics in one place (Powertools).

Metrics are aggregated per invocation and flushed once per dimension set (tenant, target type, lane),
so a batch of 10 tasks costs a handful of EMF lines, not one line per task and metric.

The tracer is made on the first traced call, not at import: making a Powertools ``Tracer`` imports
the X-Ray SDK and, in Lambda with tracing on, patches botocore and the HTTP clients (about 0.15 s),
which would otherwise be in every handler module's import. The first invocation pays it instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from taskplane.domain.secrets import REDACTED, is_secret_name, mask_text
from taskplane.domain.text import valid_text

NAMESPACE = "taskplane"


def redact(value: Any, depth: int = 0) -> Any:
    """``value`` with every secret-named key's value replaced (dicts and lists, any case: see
    ``domain/secrets.py``), secret-looking pairs and URL user info masked inside strings, and every
    lone surrogate replaced (a log line must be valid text to be written at all)."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            valid_text(k): REDACTED if is_secret_name(k) else redact(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return mask_text(valid_text(value))
    return value


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message, arguments and structured extras before it is formatted."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str | dict):
            record.msg = redact(record.msg)
        if record.args:
            record.args = (
                tuple(redact(a) for a in record.args)
                if isinstance(record.args, tuple)
                else redact(record.args)
            )
        for name, value in list(record.__dict__.items()):
            if name in self._STANDARD:
                continue
            if is_secret_name(name):
                setattr(record, name, REDACTED)
            elif isinstance(value, dict | list | str):
                setattr(record, name, redact(value))
        return True


class LazyTracer:
    """A Powertools :class:`Tracer` made on first use, with the same decorators.

    ``capture_lambda_handler`` and ``capture_method`` wrap the function at import without making the
    tracer; the first call makes it (importing and patching the X-Ray SDK, before the handler's body
    creates any boto3 client) and from then on runs Powertools' own wrapper. Anything else
    (``put_annotation``, ``provider``, ...) is the real tracer's.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    def setup(self) -> Tracer:
        """The real tracer, made (and the X-Ray SDK imported and patched) on the first call."""
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    self._tracer = Tracer(**self._options)
        return self._tracer

    def capture_lambda_handler(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[..., Any]:
        """:meth:`Tracer.capture_lambda_handler`, applied on the handler's first call."""
        if lambda_handler is None:
            return functools.partial(
                self.capture_lambda_handler, capture_response=capture_response, capture_error=capture_error
            )
        return self._deferred(
            lambda_handler,
            lambda t, f: t.capture_lambda_handler(
                f, capture_response=capture_response, capture_error=capture_error
            ),
        )

    def capture_method(
        self,
        method: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[..., Any]:
        """:meth:`Tracer.capture_method`, applied on the method's first call. Only for a plain
        function: Powertools wraps coroutines and generators differently, so those make the tracer now."""
        if method is None:
            return functools.partial(
                self.capture_method, capture_response=capture_response, capture_error=capture_error
            )

        def wrap(t: Tracer, f: Callable[..., Any]) -> Callable[..., Any]:
            decorate = t.capture_method(capture_response=capture_response, capture_error=capture_error)
            return decorate(f)

        if _plain_function(method):
            return self._deferred(method, wrap)
        return wrap(self.setup(), method)

    def _deferred(
        self, function: Callable[..., Any], wrap: Callable[[Tracer, Callable[..., Any]], Callable[..., Any]]
    ) -> Callable[..., Any]:
        traced: list[Callable[..., Any]] = []

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not traced:  # two first calls at once both wrap: harmless, the tracer is made once
                traced.append(wrap(self.setup(), function))
            return traced[0](*args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never make the tracer for a private or special name (copy, pickle)
            raise AttributeError(name)
        return getattr(self.setup(), name)


def _plain_function(f: Callable[..., Any]) -> bool:
    """Neither a coroutine, nor a generator, nor a generator-based context manager."""
    inner = getattr(f, "__wrapped__", None)
    return (
        inspect.isfunction(f)
        and not inspect.iscoroutinefunction(f)
        and not inspect.isgeneratorfunction(f)
        and not inspect.isasyncgenfunction(f)
        and not (inner is not None and inspect.isgeneratorfunction(inner))
    )


#: What X-Ray traces as subsegments: the AWS SDK's calls. Without a list, X-Ray's patch_all imports
#: and patches every library it knows that is installed, in every function's first invocation:
#: requests (which the OTLP exporter brings into the dependency layer) among them, used or not.
PATCHED = ("botocore",)

logger = Logger(service="taskplane")
logger.addFilter(RedactSecrets())
tracer = LazyTracer(service="taskplane", patch_modules=PATCHED)

_Dims = tuple[str, str, str]

#: The stage of a task's (or a run's) life each metric counts: the OTLP ``stage`` attribute. A metric
#: recorded under a name missing here is exported with ``stage="other"`` (a unit test finds such names).
METRIC_STAGES: dict[str, str] = {
    "submitted": "submit",
    "dispatched": "dispatch",
    "dispatched_late": "dispatch",
    "rescued_behind_tick": "dispatch",
    "started": "run",
    "duration": "run",
    "succeeded": "run",
    "retried": "run",
    "failed": "run",
    "abandoned": "run",
    "target_refused": "run",
    "breaker_open": "run",
    "breaker_opened": "run",
    "breaker_half_open": "run",
    "breaker_closed": "run",
    "retry_skipped": "run",
    "fallback_succeeded": "run",
    "fallback_failed": "run",
    "fallback_unknown": "run",
    "poison": "receive",
    "event_refused": "receive",
    "schedule_fired": "schedule",
    "schedule_skipped": "schedule",
    "node_succeeded": "workflow",
    "node_retried": "workflow",
    "node_failed": "workflow",
    "compensation_succeeded": "compensation",
    "compensation_retried": "compensation",
    "compensation_failed": "compensation",
}


class MetricsSink(Protocol):
    """Where metrics go besides EMF (``taskplane.otlp.OtlpExport`` when an OTLP endpoint is set)."""

    def add(self, name: str, value: float, attributes: dict[str, str | int]) -> None: ...

    def record_duration(self, ms: float, attributes: dict[str, str | int]) -> None: ...

    def flush(self) -> None:
        """Export what is waiting (spans too): the end of an invocation."""
        ...


def metric_attributes(
    name: str, tenant: str, target_type: str, lane: str, attempt: int | None, error_type: str | None
) -> dict[str, str | int]:
    """The seed's attributes of one metric point: tenant, target type, lane, stage, attempt (and why
    an attempt failed, on ``retried`` and ``failed``)."""
    attributes: dict[str, str | int] = {
        "tenant": tenant,
        "target_type": target_type,
        "lane": lane,
        "stage": METRIC_STAGES.get(name, "other"),
    }
    if attempt is not None:
        attributes["attempt"] = attempt
    if error_type is not None:
        attributes["error_type"] = error_type
    return attributes


class MetricsBuffer:
    """The :class:`~taskplane.services.ports.Telemetry` port over CloudWatch EMF, and over OTLP too
    when a ``sink`` is given.

    EMF keeps the dimensions tenant, target type and lane: CloudWatch bills each combination of
    dimension values as a custom metric, and attempt numbers and error types would multiply them.
    The sink gets every point with all its attributes (:func:`metric_attributes`).
    """

    def __init__(
        self, namespace: str = NAMESPACE, service: str = "taskplane", sink: MetricsSink | None = None
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._sink = sink
        self._lock = threading.Lock()
        self._counts: dict[_Dims, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._durations: dict[_Dims, list[float]] = defaultdict(list)
        self._shards: dict[int, dict[str, float]] = {}

    def shard_gauges(self, shard: int, *, weight: float, lag_ms: float) -> None:
        """A wheel shard's weight on the ring and its tick's lag (EMF dimension ``shard``: a handful of
        metrics per shard, whatever the tenants)."""
        with self._lock:
            self._shards[shard] = {"wheel_weight": weight, "wheel_lag_ms": lag_ms}
        if self._sink is not None:
            self._sink.add("wheel_weight", weight, {"shard": shard})
            self._sink.add("wheel_lag_ms", lag_ms, {"shard": shard})

    def count(
        self,
        name: str,
        *,
        tenant: str,
        target_type: str,
        lane: str,
        value: float = 1,
        attempt: int | None = None,
        error_type: str | None = None,
    ) -> None:
        with self._lock:
            self._counts[(tenant, target_type, lane)][name] += value
        if self._sink is not None:
            self._sink.add(
                name, value, metric_attributes(name, tenant, target_type, lane, attempt, error_type)
            )

    def duration_ms(
        self, ms: float, *, tenant: str, target_type: str, lane: str, attempt: int | None = None
    ) -> None:
        with self._lock:
            self._durations[(tenant, target_type, lane)].append(ms)
        if self._sink is not None:
            self._sink.record_duration(
                ms, metric_attributes("duration", tenant, target_type, lane, attempt, None)
            )

    def flush(self) -> None:
        """Write one EMF document per dimension set and forget what was written; then export what the
        sink holds (metrics and spans: a Lambda may freeze as soon as its invocation returns)."""
        with self._lock:
            counts, durations = self._counts, self._durations
            self._counts, self._durations = defaultdict(lambda: defaultdict(float)), defaultdict(list)
            shards, self._shards = self._shards, {}
        for shard, gauges in shards.items():
            provider = AmazonCloudWatchEMFProvider(namespace=self._namespace, service=self._service)
            provider.add_dimension(name="shard", value=str(shard))
            provider.add_metric(name="wheel_weight", unit=MetricUnit.Count, value=gauges["wheel_weight"])
            provider.add_metric(
                name="wheel_lag_ms", unit=MetricUnit.Milliseconds, value=gauges["wheel_lag_ms"]
            )
            provider.flush_metrics(raise_on_empty_metrics=False)
        for dims in set(counts) | set(durations):
            provider = AmazonCloudWatchEMFProvider(namespace=self._namespace, service=self._service)
            tenant, target_type, lane = dims
            provider.add_dimension(name="tenant", value=tenant)
            provider.add_dimension(name="target_type", value=target_type)
            provider.add_dimension(name="lane", value=lane)
            for name, value in counts.get(dims, {}).items():
                provider.add_metric(name=name, unit=MetricUnit.Count, value=value)
            for ms in durations.get(dims, []):
                provider.add_metric(name="duration", unit=MetricUnit.Milliseconds, value=ms)
            provider.flush_metrics(raise_on_empty_metrics=False)
        if self._sink is not None:
            self._sink.flush()
