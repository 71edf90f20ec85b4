"""EventBridge pattern checks and matching of the SQLite bus (adapters/sqlite/event_patterns.py) on
what the differential contract test cannot reach through moto: what PutRule refuses, and cases where
moto is not EventBridge."""

from __future__ import annotations

import pytest

from taskplane.adapters.sqlite.event_patterns import InvalidPattern, matches, validate

pytestmark = pytest.mark.unit

ACCEPTED = [
    {"source": ["a", 1, True, None]},
    {"detail": {"n": [{"numeric": ["<=", 5, ">", 0]}]}},  # a range in either order
    {"detail": {"n": [{"numeric": ["=", 3.5]}]}},
    {"detail": {"s": [{"anything-but": {"wildcard": "*.tmp"}}]}},
    {"detail": {"s": [{"anything-but": {"equals-ignore-case": ["A", "b"]}}]}},
    {"detail": {"s": [{"prefix": {"equals-ignore-case": "x"}}, {"exists": False}]}},
    {"$or": [{"source": ["a"]}, {"detail": {"$or": [{"x": ["1"]}, {"y": ["2"]}]}}]},
    {"detail": {"ip": [{"cidr": "2001:db8::/32"}]}},
]

REFUSED = [
    {"source": []},
    {"source": "a"},
    {"source": [{"unknown": 1}]},
    {"source": [{"prefix": 1}]},
    {"source": [{"prefix": "a", "suffix": "b"}]},
    {"detail": {"n": [{"numeric": [">", 5, ">", 6]}]}},
    {"detail": {"n": [{"numeric": [">", 5, "<", 1]}]}},
    {"detail": {"n": [{"numeric": ["~", 5]}]}},
    {"detail": {"n": [{"exists": "yes"}]}},
    {"detail": {"n": [{"anything-but": []}]}},
    {"detail": {"n": [{"numeric": [">", 6_000_000_000]}]}},
    {"detail": {"n": [{"anything-but": ["a", 1]}]}},
    {"detail": {"n": [{"wildcard": "a**b"}]}},
    {"detail": {"n": [{"cidr": "not-an-ip"}]}},
    {"$or": {"source": ["a"]}},
    {"$or": []},
    [],
]


@pytest.mark.parametrize("pattern", ACCEPTED, ids=range(len(ACCEPTED)))
def test_patterns_eventbridge_takes_are_taken(pattern):
    validate(pattern)


@pytest.mark.parametrize("pattern", REFUSED, ids=range(len(REFUSED)))
def test_patterns_eventbridge_refuses_are_refused(pattern):
    with pytest.raises(InvalidPattern):
        validate(pattern)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        # arrays of objects: one element must match the whole sub-pattern
        (
            {"d": {"i": {"a": ["1"], "b": ["2"]}}},
            {"d": {"i": [{"a": "1", "b": "3"}, {"a": "4", "b": "2"}]}},
            False,
        ),
        (
            {"d": {"i": {"a": ["1"], "b": ["2"]}}},
            {"d": {"i": [{"a": "1", "b": "3"}, {"a": "1", "b": "2"}]}},
            True,
        ),
        # exact values never match across JSON types
        ({"n": [1]}, {"n": True}, False),
        ({"n": ["1"]}, {"n": 1}, False),
        ({"n": [None]}, {"n": False}, False),
        ({"n": [1]}, {"n": 1.0}, True),
        # an object is not a value: exists is about leaves
        ({"o": [{"exists": True}]}, {"o": {"x": 1}}, False),
        ({"o": [{"exists": False}]}, {"o": {"x": 1}}, True),
        ({"o": {"x": [{"exists": False}]}}, {}, True),
        # anything-but needs the field
        ({"s": [{"anything-but": "a"}]}, {}, False),
        # ... and a number is not a string starting with "tmp" (Event Ruler: !(isTextual && startsWith))
        ({"s": [{"anything-but": {"prefix": "tmp"}}]}, {"s": 5}, True),
        ({"s": [{"anything-but": {"suffix": "tmp"}}]}, {"s": None}, True),
        ({"s": [{"anything-but": {"equals-ignore-case": "tmp"}}]}, {"s": 5}, False),
        # wildcards: escaped star, whole-value match
        ({"f": [{"wildcard": "a\\*b*"}]}, {"f": "a*bc"}, True),
        ({"f": [{"wildcard": "a\\*b*"}]}, {"f": "axbc"}, False),
        ({"f": [{"wildcard": "*.png"}]}, {"f": "x.png.txt"}, False),
    ],
)
def test_matching_follows_eventbridge(pattern, event, expected):
    validate(pattern)
    assert matches(pattern, event) is expected
