"""Time-ordered task ids: layout, ordering, timestamp recovery and validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskplane.domain.ids import id_time_ms, is_valid_id, new_id

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
NOW = 1_767_225_600_000
MAX_MS = 2**48 - 1
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

times = st.integers(min_value=0, max_value=MAX_MS)
random_bits = st.integers(min_value=0, max_value=2**80 - 1)


def fixed_bits(value: int) -> Callable[[int], int]:
    """A stand-in for secrets.randbits that always draws ``value``."""

    def randbits(k: int) -> int:
        assert k == 80
        return value

    return randbits


@PROPERTY
@given(t=times, bits=random_bits)
def test_id_layout(t: int, bits: int) -> None:
    # Given any time and any random bits
    # When making an id
    value = new_id(t, fixed_bits(bits))
    # Then it is 26 Crockford base32 characters, valid, and carries its time
    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)
    assert is_valid_id(value)
    assert id_time_ms(value) == t


@PROPERTY
@given(t1=times, t2=times, bits1=random_bits, bits2=random_bits)
def test_ids_sort_by_time_whatever_the_random_bits(t1: int, t2: int, bits1: int, bits2: int) -> None:
    # Given two times, the first earlier
    assume(t1 != t2)
    t1, t2 = min(t1, t2), max(t1, t2)
    # When making an id at each, with any random bits
    first, second = new_id(t1, fixed_bits(bits1)), new_id(t2, fixed_bits(bits2))
    # Then the earlier id sorts first as a plain string
    assert first < second


@PROPERTY
@given(t=times, bits1=random_bits, bits2=random_bits)
def test_ids_in_the_same_millisecond_differ_by_random_bits(t: int, bits1: int, bits2: int) -> None:
    # Given one time and two draws of random bits
    # When making an id with each
    # Then the ids are equal only when the bits are
    assert (new_id(t, fixed_bits(bits1)) == new_id(t, fixed_bits(bits2))) is (bits1 == bits2)


def test_default_randomness_gives_distinct_ids() -> None:
    # Given one millisecond
    # When making many ids with the real random source
    ids = {new_id(NOW) for _ in range(1000)}
    # Then they are all distinct, valid and carry that millisecond
    assert len(ids) == 1000
    assert all(is_valid_id(i) and id_time_ms(i) == NOW for i in ids)


def test_known_ids() -> None:
    # Given the extremes of time and randomness
    # When making ids
    # Then they encode as expected (time first, most significant digit first)
    assert new_id(0, fixed_bits(0)) == "0" * 26
    assert new_id(MAX_MS, fixed_bits(2**80 - 1)) == "7" + "Z" * 25
    assert new_id(1, fixed_bits(31)) == "0" * 9 + "1" + "0" * 15 + "Z"


@pytest.mark.parametrize("t", [-1, 2**48, 2**64])
def test_out_of_range_times_are_refused(t: int) -> None:
    # Given a time that does not fit 48 bits
    # When making an id
    # Then it is refused
    with pytest.raises(ValueError):
        new_id(t)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("01jgq7x5y0abcdefghjkmnpqrs", id="lowercase"),
        pytest.param("01JGQ7X5Y0ABCDEFGHJKMNPQRs", id="one-lowercase"),
        pytest.param("0" * 25, id="25-chars"),
        pytest.param("0" * 27, id="27-chars"),
        pytest.param("0" * 26 + "\n", id="trailing-newline"),
        pytest.param("\n" + "0" * 26, id="leading-newline"),
        pytest.param(" " + "0" * 25, id="leading-space"),
        pytest.param("0" * 25 + "I", id="letter-I"),
        pytest.param("0" * 25 + "L", id="letter-L"),
        pytest.param("0" * 25 + "O", id="letter-O"),
        pytest.param("0" * 25 + "U", id="letter-U"),
        pytest.param("../x", id="dot-dot-slash"),
        pytest.param("../" + "0" * 23, id="dot-dot-slash-26"),
        pytest.param("%00", id="percent-00"),
        pytest.param("%00" + "0" * 23, id="percent-00-26"),
        pytest.param("0" * 25 + "\x00", id="nul"),
        pytest.param("0" * 12 + "/" + "0" * 13, id="slash"),
        pytest.param("\uff10" * 26, id="fullwidth-digits"),
    ],
)
def test_is_valid_id_rejects(value: str) -> None:
    # Given a string that is not an id this service makes
    # When checking it
    # Then it is refused
    assert not is_valid_id(value)


@PROPERTY
@given(st.text(max_size=30))
def test_is_valid_id_accepts_only_26_crockford_characters(value: str) -> None:
    # Given any short string
    # When checking it
    # Then it is accepted exactly when it is 26 uppercase Crockford base32 characters
    expected = len(value) == 26 and all(ch in CROCKFORD for ch in value)
    assert is_valid_id(value) is expected


@PROPERTY
@given(st.text(alphabet=CROCKFORD, min_size=26, max_size=26))
def test_any_26_crockford_characters_are_valid(value: str) -> None:
    # Given 26 characters from the alphabet
    # When checking them
    # Then they are valid, and their leading 10 characters decode to a time
    assert is_valid_id(value)
    assert id_time_ms(value) >= 0
