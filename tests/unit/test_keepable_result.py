"""What the worker keeps of a target's result."""

from __future__ import annotations

import pytest

from taskplane.services.execute import MAX_RESULT_BYTES, keepable_result

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", [None, 1, "x", [1, {"a": 2.5}], {"nested": {"ok": True}}])
def test_plain_json_is_kept_as_is(value):
    # Given an ordinary JSON result / When it is prepared for storage / Then it is unchanged
    assert keepable_result(value) == (value, None)


def test_nan_is_not_kept():
    kept, note = keepable_result({"x": float("nan")})
    assert kept["unkept"] is True and "NaN" in note


def test_too_deep_is_not_kept():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    kept, note = keepable_result(deep)
    assert kept["reason"] == "too deep" and "deeper" in note


def test_too_large_is_not_kept():
    kept, note = keepable_result("x" * (MAX_RESULT_BYTES + 10))
    assert kept["reason"] == "too large" and kept["size"] > MAX_RESULT_BYTES and note
