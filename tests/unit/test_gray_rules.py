"""Gray-release rules: pure choice of a route."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskplane.domain.gray import RouteRule, bucket, choose_route, with_alias

pytestmark = pytest.mark.unit


def test_alias_replaces_a_qualifier_on_names_and_arns():
    # Given names and ARNs, qualified or not / Then the alias is the one qualifier
    assert with_alias("orders", "canary") == "orders:canary"
    assert with_alias("orders:live", "canary") == "orders:canary"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    assert with_alias(arn, "canary") == arn + ":canary"
    assert with_alias(arn + ":7", "canary") == arn + ":canary"


@given(task_id=st.text(min_size=1, max_size=30), percent=st.integers(0, 100))
def test_percentage_choice_is_stable_and_bounded(task_id, percent):
    # Given a percentage rule / When a task is routed twice / Then it gets the same answer, by its bucket
    rule = RouteRule(name="p", percent=percent, lambda_alias="next")
    target = {"type": "lambda", "function": "f"}
    first = choose_route([rule], task_id, {}, target)
    assert first == choose_route([rule], task_id, {}, target)
    assert (first is not None) == (bucket(task_id) < percent)


def test_buckets_spread_task_ids_evenly():
    # Given 10,000 fixed ULID-shaped ids (deterministic: no random draw can fail this test)
    ids = [f"01J{n:023d}" for n in range(10_000)]
    counts = [0] * 100
    for task_id in ids:
        counts[bucket(task_id)] += 1
    # Then a 30 % rule takes 30 % of them, give or take 1.5 points, and no bucket is far off its 100
    share = sum(counts[:30]) / len(ids)
    assert 0.285 <= share <= 0.315, share
    assert min(counts) >= 60 and max(counts) <= 140, (min(counts), max(counts))
