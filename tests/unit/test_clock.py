"""Clocks and the RFC 3339 helpers (epoch milliseconds inside, UTC with milliseconds outside)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain.clock import Clock, FixedClock, SystemClock, from_datetime, to_rfc3339

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
RFC3339_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# 1900-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z
millis = st.integers(min_value=-2_208_988_800_000, max_value=253_402_300_799_999)
# A day inside those bounds, so that any UTC offset still gives a representable local time.
inner_millis = st.integers(min_value=-2_208_902_400_000, max_value=253_402_214_399_999)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@PROPERTY
@given(millis)
def test_rfc3339_round_trip(ms: int) -> None:
    # Given epoch milliseconds
    # When formatting them and reading the text back
    text = to_rfc3339(ms)
    assert text is not None
    back = from_datetime(datetime.fromisoformat(text))
    # Then the text is UTC with three millisecond digits and a Z, and the value survives
    assert RFC3339_MS_Z.match(text), text
    assert back == ms


@PROPERTY
@given(millis)
def test_rfc3339_agrees_with_integer_datetime_arithmetic(ms: int) -> None:
    # Given epoch milliseconds
    # When formatting them
    # Then the text is what exact integer arithmetic on datetimes gives (no float drift at .999)
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert to_rfc3339(ms) == expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expected.microsecond // 1000:03d}Z"


@PROPERTY
@given(ms=inner_millis, tz=offsets)
def test_from_datetime_ignores_the_offset_of_the_same_instant(ms: int, tz: timezone) -> None:
    # Given one instant written in UTC and in another offset
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    # When converting both to milliseconds
    # Then they are equal, and formatting gives back the UTC text
    assert from_datetime(instant.astimezone(tz)) == from_datetime(instant) == ms
    assert to_rfc3339(from_datetime(instant.astimezone(tz))) == to_rfc3339(ms)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_767_225_600_000, "2026-01-01T00:00:00.000Z"),
        (1_767_225_599_999, "2025-12-31T23:59:59.999Z"),
        (1_767_225_600_050, "2026-01-01T00:00:00.050Z"),
    ],
)
def test_rfc3339_examples(ms: int, text: str) -> None:
    # Given known instants
    # When formatting and parsing them
    # Then the text is exact both ways
    assert to_rfc3339(ms) == text
    assert from_datetime(datetime.fromisoformat(text)) == ms


def test_none_formats_as_none() -> None:
    # Given no time
    # When formatting it
    # Then the answer is None (an unset field stays null)
    assert to_rfc3339(None) is None


def test_fixed_clock_moves_only_when_told() -> None:
    # Given a fixed clock at its default time (2026-01-01)
    clock = FixedClock()
    start = clock.now_ms()
    assert to_rfc3339(start) == "2026-01-01T00:00:00.000Z"
    # When reading it twice, then advancing it
    assert clock.now_ms() == start
    clock.advance(1500)
    clock.advance(0)
    clock.advance(250)
    # Then it moved by exactly the sum of the advances
    assert clock.now_ms() == start + 1750


def test_fixed_clock_starts_where_told() -> None:
    # Given a start time
    # When making a fixed clock there and advancing it by a day
    clock = FixedClock(now_ms=42)
    clock.advance(86_400_000)
    # Then it reads the start plus a day
    assert clock.now_ms() == 42 + 86_400_000


def test_system_clock_reads_wall_time_in_ms() -> None:
    # Given the system clock
    clock: Clock = SystemClock()
    # When reading it between two readings of time.time
    before = int(time.time() * 1000)
    now = clock.now_ms()
    after = int(time.time() * 1000) + 1
    # Then it is an int in milliseconds between them
    assert isinstance(now, int)
    assert before - 1 <= now <= after


def test_both_clocks_satisfy_the_protocol() -> None:
    # Given the protocol's one method
    # When using either clock through it
    clocks: list[Clock] = [SystemClock(), FixedClock()]
    # Then each answers an int
    assert all(isinstance(c.now_ms(), int) for c in clocks)
