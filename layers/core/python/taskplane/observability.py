"""Logger, tracer and metrics in one place (Powertools).

Metrics are aggregated per invocation and flushed once per dimension set (tenant, target type, lane),
so a batch of 10 tasks costs a handful of EMF lines, not one line per task and metric.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

NAMESPACE = "taskplane"

#: Header and field names whose values never reach a log line.
SECRET_KEYS = frozenset(
    {"authorization", "x-api-key", "proxy-authorization", "cookie", "set-cookie", "apikey", "api_key"}
)
_SECRET_TEXT = re.compile(
    r"(?i)\b(authorization|x-api-key|proxy-authorization)(\s*[:=]\s*)(\"?)[^\s\",}]+(?:\s+[^\s\",}]+)?"
)
REDACTED = "***"


def redact(value: Any, depth: int = 0) -> Any:
    """``value`` with every secret-named key's value replaced (dicts and lists, any case), and
    ``authorization: ...`` / ``x-api-key=...`` pairs masked inside strings."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SECRET_KEYS else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str) and _SECRET_TEXT.search(value):
        return _SECRET_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{REDACTED}", value)
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
            if name.lower() in SECRET_KEYS:
                setattr(record, name, REDACTED)
            elif isinstance(value, dict | list | str):
                setattr(record, name, redact(value))
        return True


logger = Logger(service="taskplane")
logger.addFilter(RedactSecrets())
tracer = Tracer(service="taskplane")

_Dims = tuple[str, str, str]


class MetricsBuffer:
    """The :class:`~taskplane.services.ports.Telemetry` port over CloudWatch EMF."""

    def __init__(self, namespace: str = NAMESPACE, service: str = "taskplane") -> None:
        self._namespace = namespace
        self._service = service
        self._lock = threading.Lock()
        self._counts: dict[_Dims, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._durations: dict[_Dims, list[float]] = defaultdict(list)

    def count(self, name: str, *, tenant: str, target_type: str, lane: str, value: float = 1) -> None:
        with self._lock:
            self._counts[(tenant, target_type, lane)][name] += value

    def duration_ms(self, ms: float, *, tenant: str, target_type: str, lane: str) -> None:
        with self._lock:
            self._durations[(tenant, target_type, lane)].append(ms)

    def flush(self) -> None:
        """Write one EMF document per dimension set and forget what was written."""
        with self._lock:
            counts, durations = self._counts, self._durations
            self._counts, self._durations = defaultdict(lambda: defaultdict(float)), defaultdict(list)
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
