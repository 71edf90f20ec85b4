"""Cron fire times in IANA zones, including daylight-saving gaps and repeated hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain.cron import CronError, fires_between, next_fire, parse_cron, parse_zone

pytestmark = pytest.mark.unit

NY = parse_zone("America/New_York")
PARIS = parse_zone("Europe/Paris")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def local(at_ms: int, zone=NY) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone).isoformat()


def fires(expr: str, zone, start: str, n: int) -> list[str]:
    out, t = [], ms(start)
    for _ in range(n):
        t = next_fire(expr, zone, t)
        out.append(local(t, zone))
    return out


def test_daily_job_in_the_spring_gap_fires_once_when_clocks_jump():
    # Given 02:30 daily in New York, where 2026-03-08 02:00-03:00 does not exist
    # Then that night it fires at 03:00 EDT, and at 02:30 on the days around it
    assert fires("30 2 * * *", NY, "2026-03-07T12:00:00+00:00", 3) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_every_15_minutes_across_the_gap_fires_once_at_the_jump():
    # Given */15 over the spring-forward hour: 02:00, 02:15, 02:30, 02:45 do not exist
    got = fires("*/15 * * * *", NY, "2026-03-08T06:40:00+00:00", 4)
    # Then 01:45 EST is followed by a single fire at 03:00 EDT, then 03:15
    assert got == [
        "2026-03-08T01:45:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:15:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]


def test_repeated_hour_fires_once_at_its_first_occurrence():
    # Given 01:30 daily; on 2026-11-01 New York reads 01:30 twice (EDT, then EST)
    # Then it fires once that day, at the first 01:30 (EDT)
    assert fires("30 1 * * *", NY, "2026-11-01T04:00:00+00:00", 2) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_next_fire_from_inside_the_repeated_hour_does_not_go_back():
    # Given "now" is 01:10 EST, the second pass through 01:xx
    after = ms("2026-11-01T06:10:00+00:00")
    # When the next 20-minute fire is computed
    got = next_fire("*/20 * * * *", NY, after)
    # Then it is after now (02:00 EST), never one of the earlier 01:xx EDT instants
    assert got > after
    assert local(got) == "2026-11-01T02:00:00-05:00"


def test_paris_and_utc():
    assert fires("0 9 * * 1-5", PARIS, "2026-03-27T00:00:00+00:00", 3) == [
        "2026-03-27T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",  # after the 29 March change to summer time
        "2026-03-31T09:00:00+02:00",
    ]
    utc = parse_zone("UTC")
    assert next_fire("0 0 1 1 *", utc, ms("2026-06-01T00:00:00+00:00")) == ms("2027-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    "expr", ["* * * *", "* * * * * *", "61 * * * *", "* 25 * * *", "not cron", "", "@hourly"]
)
def test_bad_expressions_are_rejected(expr):
    with pytest.raises(CronError):
        parse_cron(expr)


@pytest.mark.parametrize("name", ["Mars/Olympus", "EST5EDT4", "../etc/passwd", "", "utc+2"])
def test_bad_zones_are_rejected(name):
    with pytest.raises(CronError):
        parse_zone(name)


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(min_value=ms("2025-01-01T00:00:00+00:00"), max_value=ms("2030-01-01T00:00:00+00:00")),
    zone=st.sampled_from(["UTC", "America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata"]),
    expr=st.sampled_from(["* * * * *", "*/7 * * * *", "0 * * * *", "30 2 * * *", "15 1 * * 0", "0 0 29 2 *"]),
)
def test_fires_are_strictly_increasing_and_on_minute_boundaries(start, zone, expr):
    # Given any start instant / When several fires are computed / Then each is later than the last,
    # on a whole minute, and fires_between agrees with repeated next_fire
    z = parse_zone(zone)
    seq = fires_between(expr, z, start, start + 400 * 86_400_000, 5)
    assert all(b > a for a, b in zip([start, *seq], seq, strict=False))
    assert all(t % 60_000 == 0 for t in seq)
    t = start
    for expected in seq:
        t = next_fire(expr, z, t)
        assert t == expected
