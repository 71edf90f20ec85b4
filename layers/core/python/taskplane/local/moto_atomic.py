"""Give moto's DynamoDB the per-request atomicity real DynamoDB has.

moto checks a ConditionExpression and then writes, with nothing in between to stop another thread:
two threads can both pass ``state = PENDING`` and both start the same attempt. DynamoDB never allows
that, and the platform's at-most-once start depends on it, so the local runtime and the tests run
moto's write operations under one lock.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_installed = False


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB writes (idempotent; moto imported here, not at module load)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))
    _installed = True
