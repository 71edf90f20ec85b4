"""Two patches that make moto behave like AWS where the platform depends on it (local mode only).

1. **Atomic conditional writes.** moto checks a ConditionExpression and then writes, with nothing in
   between to stop another thread: two threads could both pass ``state = PENDING`` and both start the
   same attempt. DynamoDB never allows that, and the at-most-once start depends on it, so moto's
   DynamoDB writes run under one lock.
2. **Cheaper queue scans.** moto answers every SQS call by scanning the whole queue and reads the
   clock twice per message while doing it (NOTES-AWS-LOCAL.md: a send+receive pair at depth 1,000
   ran ~1/s). The same scan with the clock read once per call gives the same answer, much faster.

Both are applied by the local runtime and the tests; moto is imported here lazily, never at import.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_applied = False


def apply() -> None:
    """Apply both patches (idempotent)."""
    global _applied
    if _applied:
        return
    _make_dynamodb_atomic()
    _make_queue_scans_cheap()
    _applied = True


def _make_dynamodb_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))


def _make_queue_scans_cheap() -> None:
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    def messages(self: Any) -> list[Any]:
        # moto's own rule (visible and not delayed), with one clock reading for the whole scan.
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now <= m.visible_at)

    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[method-assign,assignment]


def queue_waiter(queue_url: str, region: str = "us-east-1") -> Any:
    """A function that blocks until moto's queue may hold a visible message, or a timeout passes.

    The local poller's stand-in for long polling: moto's own long poll returns only when its full
    wait is over, even with messages in hand; its queue's condition variable wakes at once on a send.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].get_queue(queue_url.rsplit("/", 1)[-1])

    def wait(timeout_s: float) -> None:
        queue.wait_for_messages(timeout_s)  # type: ignore[arg-type]  # a float works: Condition.wait_for

    return wait
