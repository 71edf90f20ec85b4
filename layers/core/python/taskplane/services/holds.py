"""One SQS request for a whole batch's holds.

A started task keeps its lane message invisible until the attempt would count as abandoned (see
``Executor.handle``). The records of a worker batch start at about the same time in their own
threads; rather than one ChangeMessageVisibility each, their holds are gathered and sent together
(ChangeMessageVisibilityBatch, up to 10 per request): the batch is sent as soon as every record has
either asked for its hold or ended without one, or ``window_s`` after the first ask, whichever comes
first. Each record waits for its own outcome, so a refused hold still falls back to a wheel watch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

#: How long a record's hold waits for the rest of its batch to start (DynamoDB start writes take a
#: few milliseconds in AWS, so a batch's records ask within about one write of each other).
WINDOW_S = 0.02

#: (queue ARN, receipt handle, seconds) -> outcome per message, in order (None = held)
SendHolds = Callable[[list[tuple[str, str, int]]], list[Exception | None]]


@dataclass
class _Ask:
    arn: str
    receipt: str
    seconds: int
    done: bool = False
    error: Exception | None = None


@dataclass
class HoldBatch:
    """The holds of one batch of ``size`` records."""

    send: SendHolds
    size: int
    #: read when the batch is made, so the module setting can be changed (tests, the cost bench)
    window_s: float = field(default_factory=lambda: WINDOW_S)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _waiting: list[_Ask] = field(default_factory=list)
    _settled: int = 0  # records that asked or ended

    def hold_for(self, arn: str, receipt: str) -> RecordHold:
        """The hold of one record of the batch."""
        return RecordHold(self, arn, receipt)

    def _ask(self, ask: _Ask, first: bool) -> None:
        with self._cond:
            if first:
                self._settled += 1
            self._waiting.append(ask)
            if self._settled >= self.size:
                self._flush()
            else:
                self._cond.wait_for(lambda: ask.done, timeout=self.window_s)
                if not ask.done:
                    self._flush()  # the others are slow to start: send what is here
        if ask.error is not None:
            raise ask.error

    def _settle(self) -> None:
        with self._cond:
            self._settled += 1
            if self._settled >= self.size:
                self._flush()

    def _flush(self) -> None:
        """Send every waiting hold (called with the condition held)."""
        asks, self._waiting = self._waiting, []
        if not asks:
            return
        try:
            outcomes = self.send([(a.arn, a.receipt, a.seconds) for a in asks])
        except Exception as exc:  # an adapter bug: every record falls back to its wheel watch
            outcomes = [exc] * len(asks)
        for ask, outcome in zip(asks, outcomes, strict=True):
            ask.error, ask.done = outcome, True
        self._cond.notify_all()


@dataclass
class RecordHold:
    """Called with seconds by the executor once its attempt started; ``settle()`` when the record
    ends (a record that never asks must say so, or the others wait out the window)."""

    batch: HoldBatch
    arn: str
    receipt: str
    asked: bool = False

    def __call__(self, seconds: int) -> None:
        first, self.asked = not self.asked, True
        self.batch._ask(_Ask(self.arn, self.receipt, seconds), first)

    def settle(self) -> None:
        if not self.asked:
            self.batch._settle()
