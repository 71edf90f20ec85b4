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
