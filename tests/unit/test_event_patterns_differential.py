"""Differential test (REVIEW-METHODS.md, method 5): our EventBridge pattern matcher (the SQLite bus's)
against moto's, on thousands of random patterns and events.

Every disagreement found was classified, and the generator leaves out the inputs where moto is the one
that is wrong, so that any disagreement left is ours to explain:
- moto compares with Python's ``==``, so ``true`` equals ``1`` and ``false`` matches ``numeric = 0``;
  EventBridge never matches across JSON types. Events here carry no booleans.
- moto treats an empty array or object as a present field; Event Ruler (EventBridge's matcher) crushes
  arrays into their elements and matches leaves only, so ``[]`` and ``{}`` are absent. Events here
  carry neither.
- moto lets ``prefix``/``suffix`` match a number's text; EventBridge matches strings only. Strings
  and numbers therefore have fields of their own here (``s``, ``t`` and ``n``).
Found and fixed on our side: ``anything-but`` with ``prefix``/``suffix`` now lets non-strings through,
as Event Ruler does (``!(isTextual && startsWith)``).
"""

from __future__ import annotations

import json
import random

import pytest

from taskplane.adapters.sqlite.event_patterns import matches, validate

moto_events = pytest.importorskip("moto.events.models")

WORDS = ["a", "ab", "abc", "shop.orders", "Shop.Orders", "x*y", "", "10.0.0.1", "tmp/x"]
NUMBERS = [0, 1, 5, 10, 10.5, -3]


def _string_filter(r: random.Random) -> object:
    return r.choice(
        [
            r.choice(WORDS),
            {"prefix": r.choice(WORDS)},
            {"suffix": r.choice(WORDS)},
            {"equals-ignore-case": r.choice(WORDS)},
            {"prefix": {"equals-ignore-case": r.choice(WORDS)}},
            {"wildcard": r.choice(["a*", "*c", "x\\*y", "*", "a*c"])},
            {"anything-but": r.choice([r.choice(WORDS), [r.choice(WORDS), r.choice(WORDS)]])},
            {"anything-but": {"prefix": r.choice([w for w in WORDS if w])}},
            {"cidr": r.choice(["10.0.0.0/8", "192.168.0.0/16"])},
            {"exists": r.choice([True, False])},
        ]
    )


def _number_filter(r: random.Random) -> object:
    return r.choice(
        [
            r.choice(NUMBERS),
            {"numeric": [r.choice(["<", "<=", "=", ">=", ">"]), r.choice(NUMBERS)]},
            {"numeric": [">", -1, "<=", r.choice([5, 10])]},
            {"anything-but": r.choice([r.choice(NUMBERS), [1, 5]])},
            {"exists": r.choice([True, False])},
        ]
    )


def _case(r: random.Random) -> tuple[dict, dict]:
    pattern: dict = {}
    event: dict = {}
    for field in ("s", "t"):  # string fields
        if r.random() < 0.7:
            pattern[field] = [_string_filter(r) for _ in range(r.randint(1, 2))]
        if r.random() < 0.8:
            event[field] = r.choice(WORDS) if r.random() < 0.8 else r.sample(WORDS, r.randint(1, 3))
    for field in ("n",):  # a number field
        if r.random() < 0.6:
            pattern[field] = [_number_filter(r) for _ in range(r.randint(1, 2))]
        if r.random() < 0.8:
            event[field] = r.choice(NUMBERS) if r.random() < 0.8 else r.sample(NUMBERS, r.randint(1, 3))
    if r.random() < 0.2:
        pattern = {"detail": pattern}
        event = {"detail": event}
    if not pattern:
        pattern = {"s": ["a"]}
    return pattern, event


@pytest.mark.parametrize("seed", range(4))
def test_our_matcher_agrees_with_motos_where_moto_follows_eventbridge(seed):
    r = random.Random(seed)
    disagreements = []
    for _ in range(1_500):
        pattern, event = _case(r)
        validate(pattern)
        ours = matches(pattern, event)
        theirs = moto_events.EventPattern(json.dumps(pattern), pattern).matches_event(event)
        if ours != theirs:
            disagreements.append((pattern, event, ours, theirs))
    assert disagreements == [], disagreements[:3]
