"""A worker batch's holds gathered into one request, each record still told its own outcome."""

from __future__ import annotations

import threading

import pytest

from taskplane.services.holds import HoldBatch

pytestmark = pytest.mark.unit


class Sender:
    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.requests: list[list[tuple[str, str, int]]] = []
        self.refuse = refuse

    def __call__(self, holds: list[tuple[str, str, int]]) -> list[Exception | None]:
        self.requests.append(list(holds))
        return [RuntimeError(f"refused {r}") if r in self.refuse else None for _, r, _ in holds]


def run_records(batch: HoldBatch, plan: dict[str, int | None]) -> dict[str, Exception | None]:
    """Each record in its own thread: asks for ``seconds`` (or never asks, for None), then settles."""
    outcomes: dict[str, Exception | None] = {}

    def record(receipt: str, seconds: int | None) -> None:
        hold = batch.hold_for("arn:aws:sqs:us-east-1:123456789012:lane", receipt)
        try:
            if seconds is not None:
                hold(seconds)
            outcomes[receipt] = None
        except Exception as exc:
            outcomes[receipt] = exc
        finally:
            hold.settle()

    threads = [threading.Thread(target=record, args=item) for item in plan.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    return outcomes


def test_a_full_batch_of_holds_is_one_request():
    # Given ten records that all start (window long enough never to fire)
    sender = Sender()
    batch = HoldBatch(sender, size=10, window_s=5.0)
    # When each asks for its hold
    outcomes = run_records(batch, {f"r{i}": 30 + i for i in range(10)})
    # Then one request carried all ten, each with its own seconds, and none failed
    assert len(sender.requests) == 1
    assert sorted(sender.requests[0]) == sorted(
        ("arn:aws:sqs:us-east-1:123456789012:lane", f"r{i}", 30 + i) for i in range(10)
    )
    assert outcomes == {f"r{i}": None for i in range(10)}


def test_records_that_never_ask_do_not_hold_the_others_back():
    # Given a batch where two records are duplicates (they end without starting)
    sender = Sender()
    batch = HoldBatch(sender, size=3, window_s=5.0)
    # When the third asks for its hold
    outcomes = run_records(batch, {"a": None, "b": 40, "c": None})
    # Then its hold is sent as soon as the others have ended, not after the window
    assert sender.requests == [[("arn:aws:sqs:us-east-1:123456789012:lane", "b", 40)]]
    assert outcomes["b"] is None


def test_a_refused_hold_raises_in_its_own_record_only():
    # Given SQS refuses one receipt of the batch
    sender = Sender(refuse={"b"})
    batch = HoldBatch(sender, size=3, window_s=5.0)
    # When all three ask
    outcomes = run_records(batch, {"a": 10, "b": 10, "c": 10})
    # Then only that record learns its hold failed (it falls back to a wheel watch)
    assert outcomes["a"] is None and outcomes["c"] is None
    assert isinstance(outcomes["b"], RuntimeError)


def test_a_slow_record_does_not_delay_the_others_past_the_window():
    # Given a batch of two where one record asks and the other is still starting
    sender = Sender()
    batch = HoldBatch(sender, size=2, window_s=0.01)
    hold = batch.hold_for("arn:aws:sqs:us-east-1:123456789012:lane", "fast")
    # When the window passes
    hold(20)
    # Then the first hold went out alone
    assert sender.requests == [[("arn:aws:sqs:us-east-1:123456789012:lane", "fast", 20)]]
