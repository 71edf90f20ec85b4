"""BatchWriteItem outcomes per item: unprocessed items are retried, never silently dropped."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskplane.adapters.batch import MAX_ROUNDS, batch_put
from taskplane.domain.errors import Throttled, Unavailable

pytestmark = pytest.mark.unit


class FakeDynamo:
    """Leaves the first ``refuse`` items of each call unprocessed, ``times`` times."""

    def __init__(self, refuse: int = 0, times: int = 0, error: str | None = None) -> None:
        self.refuse, self.times, self.error = refuse, times, error
        self.calls: list[int] = []
        self.stored: list[str] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        (requests,) = RequestItems.values()
        self.calls.append(len(requests))
        if self.error:
            raise ClientError({"Error": {"Code": self.error}}, "BatchWriteItem")
        left = requests[: self.refuse] if self.times > 0 else []
        self.times -= 1
        self.stored += [r["PutRequest"]["Item"]["id"] for r in requests[len(left) :]]
        return {"UnprocessedItems": {"t": left} if left else {}}


def items(n: int) -> list[dict[str, Any]]:
    return [{"id": f"i{k}"} for k in range(n)]


def test_chunks_of_25_and_all_stored():
    fake = FakeDynamo()
    out = batch_put(fake, "t", items(60), lambda i: i["id"], "x", sleep=lambda s: None)
    assert fake.calls == [25, 25, 10] and out == [None] * 60 and len(fake.stored) == 60


def test_unprocessed_items_are_sent_again():
    # Given a table that leaves 3 items unprocessed twice
    fake = FakeDynamo(refuse=3, times=2)
    out = batch_put(fake, "t", items(10), lambda i: i["id"], "x", sleep=lambda s: None)
    # Then they were retried and stored, nothing reported failed
    assert (
        fake.calls == [10, 3, 3]
        and out == [None] * 10
        and sorted(fake.stored) == sorted(f"i{k}" for k in range(10))
    )


def test_items_left_after_every_round_are_reported_throttled_in_place():
    fake = FakeDynamo(refuse=2, times=99)
    out = batch_put(fake, "t", items(5), lambda i: i["id"], "x", sleep=lambda s: None)
    assert len(fake.calls) == MAX_ROUNDS
    assert [type(o) for o in out] == [Throttled, Throttled, type(None), type(None), type(None)]


def test_an_error_fails_the_whole_chunk_only():
    fake = FakeDynamo(error="InternalServerError")
    out = batch_put(fake, "t", items(3), lambda i: i["id"], "x", sleep=lambda s: None)
    assert all(isinstance(o, Unavailable) for o in out)
