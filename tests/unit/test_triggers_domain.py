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


# -- naming a rule back: the triggers' dead letters name their rule by its ARN ------------------------


def test_a_rule_name_is_read_back_as_its_trigger_and_pattern():
    from taskplane.domain.triggers import parse_rule_name, rule_index_name, rule_name

    tid = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    base = rule_name(tid, "tp-trg-")
    assert parse_rule_name(base, "tp-trg-") == (tid, 0)
    assert parse_rule_name(rule_index_name(base, 3), "tp-trg-") == (tid, 3)
    # not this environment's, not a trigger id, not a pattern index the platform writes
    for name in ("other-trg-" + tid, "tp-trg-nope", f"{base}-0", f"{base}-01", f"{base}-x", f"{base}-1-2"):
        assert parse_rule_name(name, "tp-trg-") is None, name


def test_a_rule_arn_names_its_bus_and_rule_partner_buses_included():
    from taskplane.domain.triggers import rule_of_arn

    assert rule_of_arn("arn:aws:events:eu-west-1:123456789012:rule/tp-trg-X") == ("default", "tp-trg-X")
    assert rule_of_arn("arn:aws:events:eu-west-1:123456789012:rule/tp-events/tp-trg-X") == (
        "tp-events",
        "tp-trg-X",
    )
    partner = "arn:aws:events:eu-west-1:123456789012:rule/aws.partner/saas.com/123/orders/tp-trg-X"
    assert rule_of_arn(partner) == ("aws.partner/saas.com/123/orders", "tp-trg-X")
    assert rule_of_arn("") is None and rule_of_arn("arn:aws:sqs:eu-west-1:1:q") is None
