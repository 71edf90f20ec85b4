"""BatchWriteItem with per-item outcomes: 25 items a call, unprocessed items retried with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.errors import translate

MAX_ROUNDS = 5


def batch_put(
    client: Any,
    table: str,
    items: list[dict[str, Any]],
    key_of: Callable[[dict[str, Any]], Hashable],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Exception | None]:
    """Put serialized ``items``; one outcome per item, in order (None = stored).

    Items DynamoDB leaves unprocessed (throttling) are sent again, up to MAX_ROUNDS with a short
    backoff; what is still left is reported as throttled, never silently dropped.
    """
    outcomes: list[Exception | None] = [None] * len(items)
    for start in range(0, len(items), 25):
        index = {key_of(item): start + i for i, item in enumerate(items[start : start + 25])}
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        for round_ in range(MAX_ROUNDS):
            if not pending:
                break
            if round_:
                sleep(0.05 * 2**round_)
            try:
                resp = client.batch_write_item(RequestItems={table: pending})
            except (ClientError, BotoCoreError) as exc:
                err = translate(exc, what)
                for req in pending:
                    outcomes[index[key_of(req["PutRequest"]["Item"])]] = err
                pending = []
                break
            pending = resp.get("UnprocessedItems", {}).get(table, [])
        for req in pending:
            outcomes[index[key_of(req["PutRequest"]["Item"])]] = translate(
                ClientError({"Error": {"Code": "ThrottlingException"}}, "BatchWriteItem"), what
            )
    return outcomes
