"""Each tenant's share of the event bus's rules (domain/triggers.py check_rule_share)."""

from __future__ import annotations

import pytest

from taskplane.domain.errors import LimitExceeded
from taskplane.domain.triggers import Trigger, check_rule_share, uses_wildcard


@pytest.mark.parametrize(
    ("pattern", "wild"),
    [
        ({"source": ["a"]}, False),
        ({"source": [{"prefix": "a."}]}, False),
        ({"source": [{"wildcard": "a.*"}]}, True),
        ({"detail": {"path": [{"anything-but": {"wildcard": "tmp/*"}}]}}, True),
        ({"detail": {"$or": [{"a": ["x"]}, {"b": [{"wildcard": "*x"}]}]}}, True),
        ({"detail": {"wildcard": ["a field named wildcard is a value list"]}}, True),
    ],
)
def test_uses_wildcard_finds_the_filter_anywhere(pattern, wild):
    # A field literally named "wildcard" counts too: over-counting can only refuse early, never let
    # a rule through that AWS would count.
    assert uses_wildcard(pattern) is wild


def _trigger(i: int, *patterns: dict) -> Trigger:
    many = len(patterns) > 1
    return Trigger(
        trigger_id=f"t{i}",
        tenant="acme",
        bus="taskplane",
        event_pattern=None if many else patterns[0],
        task={"target": {"type": "builtin", "name": "echo"}},
        rule_name=f"r{i}",
        created_at=0,
        rule_pattern=None if many else patterns[0],
        rule_patterns=list(patterns) if many else None,
    )


def test_every_pattern_of_a_correlation_counts_as_a_rule():
    existing = [_trigger(1, {"source": ["a"]}), _trigger(2, {"source": ["b"]}, {"source": ["c"]})]
    check_rule_share(existing, [{"source": ["d"]}], max_rules=4, max_wildcard=0)
    with pytest.raises(LimitExceeded) as refused:
        check_rule_share(existing, [{"source": ["d"]}, {"source": ["e"]}], max_rules=4, max_wildcard=0)
    assert refused.value.details[0] == {
        "field": "event_pattern",
        "problem": "too_many_rules",
        "rules": 3,
        "limit": 4,
    }


def test_a_share_of_zero_wildcards_refuses_only_wildcard_rules():
    check_rule_share([], [{"source": ["a"]}], max_rules=1, max_wildcard=0)
    with pytest.raises(LimitExceeded, match="wildcard"):
        check_rule_share([], [{"source": [{"wildcard": "a*"}]}], max_rules=1, max_wildcard=0)
