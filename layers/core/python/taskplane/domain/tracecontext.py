"""Trace identity of a task or a workflow run, and the W3C ``traceparent`` text that carries it (pure).

A task's life can last days (``run_at`` a year ahead, retries hours apart, a cron's every fire): it
is its own trace, not part of the request that submitted it (which would make a trace that never
closes). Its trace id and the span id of its root span are a hash of the tenant and the task id, so
every function that meets the task (the api that stores it, the tick that dispatches it from the
timing wheel, the worker that runs it, the api that redrives it) knows the trace without reading or
carrying anything; a message carries a ``traceparent`` only to say *which span* sent it. The same
holds for a workflow run and its id.

Sampling is a pure function of the trace id (the rule of OpenTelemetry's ``TraceIdRatioBased``: the
low 64 bits below ``ratio * 2**64``), so every function makes the same choice for a task with no
flag to carry, and a task's trace is either whole or absent.

Examples
--------
>>> ids = task_trace("acme", "01J0000000000000000000000A")
>>> len(hex_trace_id(ids.trace_id)), ids.root_span_id != 0
(32, True)
>>> text = format_traceparent(ids.trace_id, ids.root_span_id, sampled=True)
>>> parse_traceparent(text) == TraceParent(ids.trace_id, ids.root_span_id, True)
True
>>> parse_traceparent("00-00000000000000000000000000000000-0000000000000001-01") is None
True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: ``version-traceid-parentid-flags``; version 00's layout (later versions may append fields).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_LOW64 = (1 << 64) - 1
SAMPLED = 0x01


@dataclass(frozen=True)
class TraceParent:
    """A span context as W3C Trace Context carries it."""

    trace_id: int
    span_id: int
    sampled: bool

    def text(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, sampled=self.sampled)


@dataclass(frozen=True)
class TraceIds:
    """The trace of one task or run: its id, and the id of its root span."""

    trace_id: int
    root_span_id: int


def _derive(kind: str, tenant: str, item_id: str) -> TraceIds:
    digest = hashlib.sha256(f"taskplane/{kind}/{tenant}/{item_id}".encode("utf-8", "surrogatepass")).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1  # all zeros is invalid (never met in practice)
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return TraceIds(trace_id, span_id)


def task_trace(tenant: str, task_id: str) -> TraceIds:
    """The trace of task ``task_id`` of ``tenant``."""
    return _derive("task", tenant, task_id)


def run_trace(tenant: str, run_id: str) -> TraceIds:
    """The trace of workflow run ``run_id`` of ``tenant``."""
    return _derive("run", tenant, run_id)


def child_span_id(ids: TraceIds, label: str) -> int:
    """A span id derived from the trace and ``label``: for a span whose id must be the same every
    time it is made (an execution's start, whose id goes into an input that must not change)."""
    digest = hashlib.sha256(f"{ids.trace_id:032x}/{label}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") or 1


def sampled(trace_id: int, ratio: float) -> bool:
    """Whether the trace ``trace_id`` is kept at sampling ratio ``ratio`` (0..1)."""
    bound = round(min(1.0, max(0.0, ratio)) * (_LOW64 + 1))
    return (trace_id & _LOW64) < bound


def hex_trace_id(trace_id: int) -> str:
    return f"{trace_id:032x}"


def format_traceparent(trace_id: int, span_id: int, *, sampled: bool) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{SAMPLED if sampled else 0:02x}"


def parse_traceparent(text: object) -> TraceParent | None:
    """The span context in a ``traceparent`` value, or None when it is not a valid one.

    Follows the W3C rules a receiver applies: lower-case hex only, version ``ff`` is invalid, a
    version-00 value has exactly four fields, and an all-zero trace or span id is invalid.
    """
    if not isinstance(text, str) or len(text) > 512:
        return None
    match = _TRACEPARENT.fullmatch(text.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, bool(int(flags_hex, 16) & SAMPLED))
