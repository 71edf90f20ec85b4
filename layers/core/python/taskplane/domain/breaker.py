"""Per-target circuit breaker: pure rules over a small state record (kept in the control table).

closed: calls go through; ``failure_threshold`` retryable failures in a row open it.
open: calls fail fast (a retryable ``CircuitOpen``) until ``open_ms`` has passed.
half_open: one probe call goes through (the worker that wins the conditional write); its success
closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    open_ms: int = 30_000
    #: a half-open probe that never reported back frees the slot after this long
    probe_timeout_ms: int = 60_000


@dataclass(frozen=True)
class Breaker:
    key: str
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: int = 0
    probe_at: int = 0
    version: int = 0


class Decision(StrEnum):
    ALLOW = "allow"
    PROBE = "probe"  # allowed as the one half-open probe (claim it first)
    REJECT = "reject"


def breaker_key(target: dict[str, Any]) -> str | None:
    """What one breaker guards: a Lambda function, an HTTP host, a queue, a bus; None for builtins."""
    kind = target.get("type")
    if kind == "lambda":
        return f"lambda:{target.get('function', '')}"
    if kind == "http":
        parsed = urlparse(str(target.get("url", "")))
        return f"http:{(parsed.hostname or '').lower()}:{parsed.port or ''}"
    if kind == "sqs":
        return f"sqs:{target.get('queue_url', '')}"
    if kind == "eventbridge":
        return f"eventbridge:{target.get('bus', 'default')}"
    return None


def decide(b: Breaker, now_ms: int, cfg: BreakerConfig) -> Decision:
    """Whether a call may go through now."""
    if b.state is BreakerState.CLOSED:
        return Decision.ALLOW
    if b.state is BreakerState.OPEN:
        return Decision.PROBE if now_ms - b.opened_at >= cfg.open_ms else Decision.REJECT
    # half-open: the probe is out; another may go only if it never came back
    return Decision.PROBE if now_ms - b.probe_at >= cfg.probe_timeout_ms else Decision.REJECT


def after_success(b: Breaker) -> Breaker | None:
    """The record after a successful call (None: nothing to write)."""
    if b.state is BreakerState.CLOSED and b.failures == 0:
        return None
    return Breaker(key=b.key, version=b.version + 1)


def after_failure(b: Breaker, now_ms: int, cfg: BreakerConfig) -> Breaker:
    """The record after a retryable failure."""
    if b.state is BreakerState.HALF_OPEN:
        return Breaker(b.key, BreakerState.OPEN, b.failures + 1, now_ms, 0, b.version + 1)
    failures = b.failures + 1
    if failures >= cfg.failure_threshold:
        return Breaker(b.key, BreakerState.OPEN, failures, now_ms, 0, b.version + 1)
    return Breaker(b.key, BreakerState.CLOSED, failures, 0, 0, b.version + 1)
