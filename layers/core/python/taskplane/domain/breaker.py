"""Per-target circuit breaker (the seed's rules): pure rules over a small record kept in the control table.

closed: calls go through. Each finished call is counted in a one-second bucket of the record: a
worker keeps its delivery batch's calls in a ``Tally`` per breaker and writes them with one ``ADD``
at the end of the batch. The breaker opens when, over the policy's sliding window (default 10 s), at
least ``min_calls`` calls were made and their error rate passes ``error_rate`` (default 50%), or when
``consecutive_timeouts`` calls in a row (default 3) timed out; the check runs on the record that
write returns, so a breaker opens at the end of the batch that tripped it.
open: calls fail fast (a retryable ``CircuitOpen``) until ``open_ms`` has passed.
half_open: one probe call goes through (the caller whose conditional write claims it); its success
closes the breaker (the window starts afresh), its failure opens it again.

An *error* is a retryable failure (the target's health: 5xx, throttling, a timeout); a
non-retryable one (a 4xx: the caller's fault) counts as a call that answered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from taskplane.domain.retry import BREAKER_BUCKET_MS, MAX_BREAKER_WINDOW_MS, BreakerPolicy

#: Buckets older than this (seconds) are dropped from the record by the next write that sees them.
KEEP_BUCKETS_S = MAX_BREAKER_WINDOW_MS // BREAKER_BUCKET_MS + 1


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Call(StrEnum):
    """How a call through the breaker ended, as the breaker counts it."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class BreakerConfig:
    """Platform-wide settings a task's policy does not carry."""

    #: the rules for tasks whose retry policy names none
    default: BreakerPolicy = field(default_factory=BreakerPolicy)
    #: a half-open probe that never reported back frees the slot after this long
    probe_timeout_ms: int = 60_000


@dataclass(frozen=True)
class Breaker:
    key: str
    state: BreakerState = BreakerState.CLOSED
    opened_at: int = 0
    probe_at: int = 0
    #: bumped by every change of state (the conditional writes' guard); counting writes leave it
    version: int = 0
    #: the window counts buckets after this second (a closed breaker starts afresh)
    since_s: int = 0
    #: timeouts in a row
    timeouts: int = 0
    #: second -> (calls, errors)
    buckets: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: why it opened (shown in fail-fast errors and stats)
    reason: str = ""


class Decision(StrEnum):
    ALLOW = "allow"
    PROBE = "probe"  # allowed as the one half-open probe (claim it first)
    REJECT = "reject"


#: Longer target names are shortened (with a digest): the key sits in DynamoDB partition keys,
#: 2,048 bytes at most, beside the tenant's name.
MAX_KEY_CHARS = 512


def breaker_key(target: dict[str, Any]) -> str | None:
    """What one breaker guards: a Lambda function, an HTTP host, a queue, a bus; None for builtins."""
    kind = target.get("type")
    if kind == "lambda":
        key = f"lambda:{target.get('function', '')}"
    elif kind == "http":
        try:
            parsed = urlparse(str(target.get("url", "")))
            key = f"http:{(parsed.hostname or '').lower()}:{parsed.port or ''}"
        except ValueError:
            # A URL stored before the door refused it (a bad port): the attempt fails as InvalidTarget;
            # its key must not raise first, in the worker, where no attempt would be recorded.
            key = f"http:{target.get('url', '')}"
    elif kind == "sqs":
        key = f"sqs:{target.get('queue_url', '')}"
    elif kind == "eventbridge":
        key = f"eventbridge:{target.get('bus', 'default')}"
    else:
        return None
    if len(key) > MAX_KEY_CHARS:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        key = f"{key[: MAX_KEY_CHARS - 25]}~{digest}"
    return key


def decide(b: Breaker, now_ms: int, policy: BreakerPolicy, cfg: BreakerConfig) -> Decision:
    """Whether a call may go through now."""
    if b.state is BreakerState.CLOSED:
        return Decision.ALLOW
    if b.state is BreakerState.OPEN:
        return Decision.PROBE if now_ms - b.opened_at >= policy.open_ms else Decision.REJECT
    # half-open: the probe is out; another may go only if it never came back
    return Decision.PROBE if now_ms - b.probe_at >= cfg.probe_timeout_ms else Decision.REJECT


def second_of(now_ms: int) -> int:
    return now_ms // BREAKER_BUCKET_MS


def window(b: Breaker, now_ms: int, policy: BreakerPolicy) -> tuple[int, int]:
    """(calls, errors) in the window ending now: whole buckets within ``window_ms``, after ``since_s``.

    >>> window(Breaker("k", buckets={9: (4, 1), 10: (2, 2), 1: (9, 9)}), 10_500, BreakerPolicy(window_ms=2_000))
    (6, 3)
    """
    now_s = second_of(now_ms)
    first = max(now_s - policy.window_ms // BREAKER_BUCKET_MS + 1, b.since_s + 1)
    calls = errors = 0
    for s, (c, e) in b.buckets.items():
        if first <= s <= now_s:
            calls += c
            errors += e
    return calls, errors


def trip_reason(b: Breaker, now_ms: int, policy: BreakerPolicy) -> str | None:
    """Why a closed breaker must open now, or None."""
    if b.timeouts >= policy.consecutive_timeouts:
        return f"{b.timeouts} timeouts in a row"
    calls, errors = window(b, now_ms, policy)
    if calls >= policy.min_calls and errors > policy.error_rate * calls:
        return (
            f"error rate {errors * 100 // calls}% over {policy.window_ms // 1000} s "
            f"({errors} of {calls} calls; threshold {policy.error_rate * 100:g}%)"
        )
    return None


@dataclass
class Tally:
    """A batch's finished calls through one breaker, not yet written: what one counting write adds."""

    #: second -> (calls, errors)
    buckets: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: the batch's trailing run of timeouts (added to the stored run, or replacing it: ``answered``)
    timeouts: int = 0
    #: a call answered (ok or error) in the batch: the stored run restarts from ``timeouts``
    answered: bool = False

    def add(self, second: int, call: Call) -> None:
        calls, errors = self.buckets.get(second, (0, 0))
        self.buckets[second] = (calls + 1, errors + (call is not Call.OK))
        if call is Call.TIMEOUT:
            self.timeouts += 1
        else:
            self.answered = True
            self.timeouts = 0

    @property
    def calls(self) -> int:
        return sum(c for c, _ in self.buckets.values())


def tallied(b: Breaker, tally: Tally, stale: list[int]) -> Breaker:
    """The record after a counting write of ``tally`` (the state is left alone; ``stale`` buckets go).

    >>> t = Tally()
    >>> for call in (Call.TIMEOUT, Call.OK, Call.TIMEOUT, Call.TIMEOUT):
    ...     t.add(7, call)
    >>> after = tallied(Breaker("k", timeouts=5, buckets={7: (1, 0), 1: (2, 2)}), t, [1])
    >>> after.buckets, after.timeouts
    ({7: (5, 3)}, 2)
    """
    buckets = {s: v for s, v in b.buckets.items() if s not in stale}
    for s, (c, e) in tally.buckets.items():
        old_c, old_e = buckets.get(s, (0, 0))
        buckets[s] = (old_c + c, old_e + e)
    timeouts = tally.timeouts if tally.answered else b.timeouts + tally.timeouts
    return replace(b, buckets=buckets, timeouts=timeouts)


def stale_buckets(b: Breaker, now_ms: int) -> list[int]:
    """Buckets no window can reach any more (a write that saw them removes them: the item stays small)."""
    oldest = second_of(now_ms) - KEEP_BUCKETS_S
    return sorted(s for s in b.buckets if s < oldest)


def opened(b: Breaker, now_ms: int, reason: str) -> Breaker:
    return replace(
        b, state=BreakerState.OPEN, opened_at=now_ms, probe_at=0, version=b.version + 1, reason=reason
    )


def probing(b: Breaker, now_ms: int) -> Breaker:
    return replace(b, state=BreakerState.HALF_OPEN, probe_at=now_ms, version=b.version + 1)


def closed(b: Breaker, now_ms: int) -> Breaker:
    """After a successful probe: closed, the window and the timeouts counted afresh."""
    return replace(
        b,
        state=BreakerState.CLOSED,
        opened_at=0,
        probe_at=0,
        version=b.version + 1,
        since_s=second_of(now_ms),
        timeouts=0,
        reason="",
    )


def classify(retryable: bool | None, timed_out: bool) -> Call:
    """How a call counts: None (no failure) and non-retryable failures answered; timeouts separately."""
    if timed_out:
        return Call.TIMEOUT
    return Call.ERROR if retryable else Call.OK
