"""Builtin targets (echo, sleep, fail) and the checks every target type shares."""

from __future__ import annotations

import threading
import time

import pytest

from taskplane.adapters.targets import TargetFailure, TargetRunners

pytestmark = pytest.mark.unit


def builtin(name: str) -> dict:
    return {"type": "builtin", "name": name}


def envelope(payload: object, attempt: int = 1) -> dict:
    return {"task_id": "tsk_1", "attempt": attempt, "payload": payload}


@pytest.fixture
def runners() -> TargetRunners:
    # No clients and no session: builtins must never touch boto3.
    return TargetRunners()


def run_failing(runners: TargetRunners, target: dict, env: dict, timeout_s: float = 5) -> TargetFailure:
    with pytest.raises(TargetFailure) as caught:
        runners.run(target, env, timeout_s)
    return caught.value


@pytest.mark.parametrize("payload", [{"a": [1, 2, {"b": None}]}, "text", 42, None, [1, "x"]])
def test_echo_returns_the_payload_unchanged(runners, payload):
    # Given any JSON payload
    # When the echo target runs
    result = runners.run(builtin("echo"), envelope(payload), 5)
    # Then the result is the payload itself
    assert result == payload


def test_sleep_waits_the_given_milliseconds(runners):
    # Given a 50 ms sleep
    started = time.monotonic()
    # When it runs
    result = runners.run(builtin("sleep"), envelope({"ms": 50}), 5)
    # Then it took about that long and says so
    elapsed = time.monotonic() - started
    assert result == {"slept_ms": 50}
    assert 0.045 <= elapsed < 1.0


def test_sleep_of_zero_returns_at_once(runners):
    # Given a sleep of 0 ms
    # When it runs
    result = runners.run(builtin("sleep"), envelope({"ms": 0}), 5)
    # Then it succeeds
    assert result == {"slept_ms": 0}


def test_cancel_wakes_a_sleep_early(runners):
    # Given a 10 s sleep and a cancel event set after 50 ms
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        # When it runs
        with pytest.raises(TargetFailure) as caught:
            runners.run(builtin("sleep"), envelope({"ms": 10_000}), 30, cancel)
    finally:
        timer.cancel()
    # Then it stops early with a retryable Cancelled
    assert time.monotonic() - started < 2
    assert caught.value.error_type == "Cancelled"
    assert caught.value.retryable is True


def test_a_target_cancelled_before_it_starts_is_not_called(runners):
    # Given a cancel event already set
    cancel = threading.Event()
    cancel.set()
    # When a 0 ms sleep is run with it
    with pytest.raises(TargetFailure) as caught:
        runners.run(builtin("sleep"), envelope({"ms": 0}), 5, cancel)
    # Then it is refused as Cancelled, retryable
    assert (caught.value.error_type, caught.value.retryable) == ("Cancelled", True)


def test_sleep_longer_than_the_timeout_times_out(runners):
    # Given a sleep of 10 s and a timeout of 0.05 s
    started = time.monotonic()
    # When it runs
    failure = run_failing(runners, builtin("sleep"), envelope({"ms": 10_000}), timeout_s=0.05)
    # Then it gives up at the timeout with a retryable Timeout
    assert time.monotonic() - started < 2
    assert (failure.error_type, failure.retryable) == ("Timeout", True)


def test_fail_fails_the_given_number_of_times_then_succeeds(runners):
    # Given fail with times=2
    target, payload = builtin("fail"), {"times": 2}
    # When attempts 1 and 2 run
    first = run_failing(runners, target, envelope(payload, attempt=1))
    second = run_failing(runners, target, envelope(payload, attempt=2))
    # Then both fail retryably, naming the attempt
    for number, failure in ((1, first), (2, second)):
        assert failure.error_type == "BuiltinFailure"
        assert failure.retryable is True
        assert failure.message == f"failing attempt {number} of 2"
    # And attempt 3 succeeds
    assert runners.run(target, envelope(payload, attempt=3), 5) == {"attempt": 3, "failed_before": 2}


@pytest.mark.parametrize("payload", [None, {}, {"other": 1}])
def test_fail_without_times_fails_once(runners, payload):
    # Given fail with no times
    # When attempts 1 and 2 run
    failure = run_failing(runners, builtin("fail"), envelope(payload, attempt=1))
    result = runners.run(builtin("fail"), envelope(payload, attempt=2), 5)
    # Then only the first fails
    assert failure.retryable is True
    assert result == {"attempt": 2, "failed_before": 1}


def test_fail_with_zero_times_succeeds_at_once(runners):
    # Given fail with times=0
    # When attempt 1 runs
    result = runners.run(builtin("fail"), envelope({"times": 0}, attempt=1), 5)
    # Then it succeeds
    assert result == {"attempt": 1, "failed_before": 0}


def test_fail_reads_attempt_1_when_the_envelope_has_none(runners):
    # Given a workflow-style envelope without attempt
    env = {"input": {}, "deps": {}, "payload": {"times": 1}}
    # When fail runs
    failure = run_failing(runners, builtin("fail"), env)
    # Then it counts it as attempt 1
    assert failure.message == "failing attempt 1 of 1"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("sleep", None),
        ("sleep", {}),
        ("sleep", {"ms": "100"}),
        ("sleep", {"ms": 1.5}),
        ("sleep", {"ms": True}),
        ("sleep", {"ms": -1}),
        ("sleep", {"ms": 900_001}),
        ("sleep", [100]),
        ("fail", {"times": -1}),
        ("fail", {"times": "2"}),
        ("fail", {"times": 1.0}),
        ("fail", {"times": None}),
        ("fail", {"times": False}),
        ("fail", "twice"),
        ("fail", [2]),
    ],
)
def test_bad_payloads_are_not_retryable(runners, name, payload):
    # Given a payload the builtin cannot use
    # When it runs
    failure = run_failing(runners, builtin(name), envelope(payload))
    # Then it fails for good with InvalidPayload
    assert failure.error_type == "InvalidPayload"
    assert failure.retryable is False


@pytest.mark.parametrize(
    "target",
    [
        {"type": "carrier-pigeon"},
        {"type": None},
        {},
        {"type": "builtin", "name": "explode"},
        {"type": "builtin"},
    ],
)
def test_unknown_targets_are_not_retryable(runners, target):
    # Given a target type or builtin name nobody knows
    # When it runs
    failure = run_failing(runners, target, envelope(1))
    # Then it fails for good with UnknownTarget
    assert failure.error_type == "UnknownTarget"
    assert failure.retryable is False


def test_target_failure_carries_its_fields():
    # Given a failure
    failure = TargetFailure("HttpError", "HTTP 503", retryable=True)
    # Then its attributes and text say what happened
    assert (failure.error_type, failure.message, failure.retryable) == ("HttpError", "HTTP 503", True)
    assert str(failure) == "HttpError: HTTP 503"
