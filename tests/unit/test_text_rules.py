"""domain/text.py: the one JSON reader of request bodies, and valid text on the way out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain import text
from taskplane.domain.errors import InvalidRequest

pytestmark = pytest.mark.unit


def refusal(raw: str) -> dict:
    with pytest.raises(InvalidRequest) as caught:
        text.loads(raw)
    (detail,) = caught.value.details
    assert detail["field"] in caught.value.message
    return detail


@pytest.mark.parametrize(
    ("raw", "field", "kind"),
    [
        ('{"\\ud800": 1}', "\\ud800", "invalid_unicode"),
        ('{"a": "\\udfff"}', "a", "invalid_unicode"),
        ('{"a": {"b": [0, {"\\ud83d": 1}]}}', "a.b.1.\\ud83d", "invalid_unicode"),
        ('["\\ud800"]', "0", "invalid_unicode"),
        ('"\\ud800"', "body", "invalid_unicode"),
        ('{"a": 1, "a": 1}', "a", "duplicate_key"),
        ('{"x": [{"k": 1, "j": 2, "k": 3}]}', "x.0.k", "duplicate_key"),
    ],
)
def test_loads_names_the_path_of_what_it_refuses(raw, field, kind):
    # Given JSON with a lone surrogate or a duplicate key / Then the refusal names its path and kind
    detail = refusal(raw)
    assert (detail["field"], detail["type"]) == (field, kind)
    # And the message is valid text (the surrogate spelt as an escape)
    json.dumps(detail, ensure_ascii=False).encode("utf-8")


def test_a_valid_surrogate_pair_is_a_character_not_a_fault():
    # Given an escaped surrogate pair (one astral character) / Then it is read as that character
    assert text.loads('{"e": "\\ud83d\\ude00"}') == {"e": "\U0001f600"}


def test_the_first_fault_in_document_order_is_named():
    # Given two faults / Then the first one in the text is the one named
    assert refusal('{"a": [1, "\\ud800"], "b": {"c": 1, "c": 2}}')["field"] == "a.1"


@pytest.mark.parametrize("raw", ["NaN", '{"a": Infinity}', '{"a": 1e999}', '{"a": [1,'])
def test_malformed_or_non_finite_json_is_a_decode_error(raw):
    with pytest.raises(json.JSONDecodeError):
        text.loads(raw)


def test_check_text_walks_any_depth_without_recursion():
    # Given a value nested far deeper than Python's recursion limit, with a surrogate at the bottom
    value: object = "\ud800"
    for _ in range(50_000):
        value = [value]
    # When checked / Then it is refused by path, not a RecursionError
    with pytest.raises(InvalidRequest) as caught:
        text.check_text(value)
    assert caught.value.details[0]["field"].count(".") == 49_999


_texts = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF), max_size=8)
_values = st.recursive(
    st.none() | st.integers() | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_valid_text_always_encodes_and_changes_only_surrogates(value):
    # Given any JSON-like value, surrogates included
    # When made valid
    out = text.valid_text(value)
    # Then it is UTF-8 encodable, and identical to the input when there was nothing to replace
    json.dumps(out, ensure_ascii=False).encode("utf-8")
    assert not text.has_invalid_text(out)
    if not text.has_invalid_text(value):
        assert out is value
    elif not _keys_collide(value):
        assert json.dumps(out, ensure_ascii=False) == text.SURROGATE.sub(
            "\ufffd", json.dumps(value, ensure_ascii=False)
        )


def _keys_collide(value: object) -> bool:
    """Two keys of one object that differ only in their surrogates (both become U+FFFD)."""
    if isinstance(value, dict):
        keys = [text.SURROGATE.sub("\ufffd", k) for k in value]
        return len(set(keys)) < len(keys) or any(_keys_collide(v) for v in value.values())
    if isinstance(value, list):
        return any(_keys_collide(v) for v in value)
    return False


def test_valid_text_handles_deep_values():
    value: object = {"\udc00": "x"}
    for _ in range(20_000):
        value = [value]
    out = text.valid_text(value)
    for _ in range(20_000):
        out = out[0]
    assert out == {"\ufffd": "x"}
