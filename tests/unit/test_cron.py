"""Cron fire times in IANA zones (daylight-saving gaps and repeated hours), Vixie's grammar and day
rule, and a differential test against an independent implementation (cronsim)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain.cron import (
    CronError,
    CronNeverFires,
    fires_between,
    next_fire,
    parse_cron,
    parse_spec,
    parse_zone,
)

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
    "expr",
    [
        "* * * *",
        "* * * * * *",
        "61 * * * *",
        "* 25 * * *",
        "not cron",
        "",
        "@hourly",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "* * * * fri-mon",
        "* * * * thur",
        "1,,2 * * * *",
        "-1 * * * *",
    ],
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


UTC_ZONE = parse_zone("UTC")


def utc_fires(expr: str, start: str, n: int) -> list[str]:
    out, t = [], ms(start)
    for _ in range(n):
        t = next_fire(expr, UTC_ZONE, t)
        out.append(datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %a %H:%M"))
    return out


# -- Vixie's day rule -------------------------------------------------------------------------------


def test_a_day_field_starting_with_a_star_and_the_other_restricted_must_both_match():
    # Given every other day of the month (*/2 starts with *) and Mondays
    # Then it fires on Mondays that are an odd day of the month, nothing else (croniter alone: either)
    assert utc_fires("0 9 */2 * 1", "2026-06-01T00:00:00+00:00", 4) == [
        "2026-06-01 Mon 09:00",
        "2026-06-15 Mon 09:00",
        "2026-06-29 Mon 09:00",
        "2026-07-13 Mon 09:00",
    ]


def test_two_restricted_day_fields_fire_on_either():
    # Given the 1st of the month and Fridays, neither starting with *
    # Then it fires on both kinds of day
    assert utc_fires("0 0 1 * fri", "2026-05-27T00:00:00+00:00", 4) == [
        "2026-05-29 Fri 00:00",
        "2026-06-01 Mon 00:00",
        "2026-06-05 Fri 00:00",
        "2026-06-12 Fri 00:00",
    ]


def test_a_restricted_field_with_a_plain_star_is_that_field_alone():
    # Given Mondays with any day of month, and the 13th with any weekday
    assert utc_fires("0 0 * * 1", "2026-06-02T00:00:00+00:00", 2) == [
        "2026-06-08 Mon 00:00",
        "2026-06-15 Mon 00:00",
    ]
    assert utc_fires("0 0 13 * *", "2026-06-02T00:00:00+00:00", 2) == [
        "2026-06-13 Sat 00:00",
        "2026-07-13 Mon 00:00",
    ]


def test_the_rule_looks_at_the_first_character_only():
    # Given a day-of-week list that holds a * but does not start with one, and the 13th
    # Then both fields are restricted as written, so either matches: the list covers every day
    assert utc_fires("0 0 13 * 1,*", "2026-06-02T00:00:00+00:00", 2) == [
        "2026-06-03 Wed 00:00",
        "2026-06-04 Thu 00:00",
    ]


def test_grammar_as_vixie_reads_it():
    # An equal range is that one value (croniter reads 5-5 as the whole cycle), names work in ranges,
    # 7 is Sunday, a/n runs from a to the end of the field
    assert utc_fires("5-5 12-12 * * *", "2026-06-01T00:00:00+00:00", 2) == [
        "2026-06-01 Mon 12:05",
        "2026-06-02 Tue 12:05",
    ]
    spec = parse_spec("50/5 0 * JAN-mar 5-7")
    assert sorted(spec.minutes) == [50, 55]
    assert sorted(spec.months) == [1, 2, 3]
    assert sorted(spec.weekdays) == [0, 5, 6]
    assert spec.days_and  # day-of-month is *


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 0 L * *", "L (last day) is not supported"),
        ("0 0 * * 5L", "L (last day) is not supported"),
        ("0 0 LW * *", "L (last day) is not supported"),
        ("0 0 15W * *", "W (nearest weekday) is not supported"),
        ("0 0 * * 1#2", "# (nth weekday of the month) is not supported"),
        ("0 0 ? * 1", "? (no specific value; write *) is not supported"),
        ("H * * * *", "H or R (hashed or random value) is not supported"),
    ],
)
def test_extensions_of_other_crons_are_refused_naming_them(expr, words):
    # Given an expression with a Quartz / AWS / Jenkins extension
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    # Then the message names the expression, the field and the extension
    assert str(caught.value).startswith(f"{expr!r}: ")
    assert words in str(caught.value)


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 feb */2", "0 0 31 2 *,mon"])
def test_an_expression_no_date_matches_is_refused_naming_it(expr):
    # Given days that no month of the expression has, under the AND rule
    with pytest.raises(CronNeverFires) as caught:
        parse_cron(expr)
    # Then it is refused, with the expression in the message
    assert f"{' '.join(expr.split())!r} can never fire" in str(caught.value)


def test_impossible_days_under_the_or_rule_still_fire_on_the_weekdays():
    # Given February 30th OR Mondays (both restricted): the Mondays of February
    assert utc_fires("0 0 30 2 1", "2026-01-01T00:00:00+00:00", 2) == [
        "2026-02-02 Mon 00:00",
        "2026-02-09 Mon 00:00",
    ]


def test_a_rare_but_possible_date_is_found():
    # Given February 29th that is a Sunday (every day-of-month AND weekday 7), Then the next is 2032's
    assert utc_fires("0 0 29 2 */7", "2026-01-01T00:00:00+00:00", 2) == [
        "2032-02-29 Sun 00:00",
        "2060-02-29 Sun 00:00",
    ]


def test_an_expression_stored_before_the_vixie_grammar_keeps_firing():
    # Given "last day of the month", accepted before L was refused (a schedule made then)
    # When its fires are computed, Then croniter still reads it as it did: the schedule neither stops
    # nor breaks the tick
    assert utc_fires("0 0 L * *", "2026-02-10T00:00:00+00:00", 2) == [
        "2026-02-28 Sat 00:00",
        "2026-03-31 Tue 00:00",
    ]


# -- differential: an independent implementation ----------------------------------------------------

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _random_expression(rng: random.Random) -> str:
    """Vixie expressions with every form: *, */n, a, a-b (equal ones too), a-b/n, a/n, names, lists."""

    def value(i: int, v: int) -> str:
        if i == 3 and rng.random() < 0.2:
            return _MONTHS[v - 1]
        if i == 4 and v < 7 and rng.random() < 0.2:
            return _DAYS[v]
        return str(v)

    def term(i: int) -> str:
        lo, hi = _BOUNDS[i]
        k = rng.random()
        if k < 0.2:
            return "*"
        if k < 0.35:
            return f"*/{rng.randint(2, max(2, (hi - lo) // 2))}"
        a = rng.randint(lo, hi)
        if k < 0.6:
            return value(i, a)
        b = rng.randint(a, hi)
        if k < 0.85:
            return f"{value(i, a)}-{value(i, b)}"
        if k < 0.93:
            return f"{value(i, a)}-{value(i, b)}/{rng.randint(1, 5)}"
        return f"{a}/{rng.randint(1, 9)}"

    def field(i: int) -> str:
        if rng.random() < 0.15:
            return ",".join(term(i) for _ in range(rng.randint(2, 3)))
        return term(i)

    return " ".join(field(i) for i in range(5))


def test_fire_times_agree_with_cronsim_on_random_expressions():
    # Given 2,000 random expressions and start times (seeded: the same ones every run), in UTC (cronsim
    # mimics Debian cron's own daylight-saving handling, which differs from ours by design)
    from cronsim import CronSim, CronSimError

    rng = random.Random(14)
    outcomes: Counter[str] = Counter()
    disagreements = []
    for _ in range(2000):
        expr = _random_expression(rng)
        start = datetime(2025, 1, 1) + timedelta(minutes=rng.randint(0, 6 * 365 * 1440))
        # When both compute the next ten fires
        try:
            ours: list[datetime] | str = []
            t = int(start.replace(tzinfo=UTC).timestamp() * 1000)
            for _ in range(10):
                t = next_fire(expr, UTC_ZONE, t)
                ours.append(datetime.fromtimestamp(t / 1000, UTC).replace(tzinfo=None))
        except CronNeverFires:
            ours = "never"
        try:
            it = CronSim(expr, start)
            theirs: list[datetime] | str = [next(it) for _ in range(10)]
        except CronSimError:
            theirs = "never"  # cronsim refuses a day-of-month no month of the expression has
        outcomes["agree" if ours == theirs else "differ"] += 1
        if ours != theirs:
            disagreements.append((expr, start, ours, theirs))
    # Then every sequence is the same (both see the same expressions as never firing)
    assert disagreements == [], disagreements[:5]
    assert outcomes["agree"] == 2000


@pytest.mark.parametrize("late_ms", [0, 10 * 60_000])
def test_a_stored_schedule_no_date_matches_any_more_ends_on_time_or_late(late_ms):
    # Given a schedule stored with an expression that no date matches under Vixie's rule, due now
    from taskplane.domain.schedules import Schedule, plan_fires

    due = ms("2027-02-01T00:00:00+00:00")
    schedule = Schedule(
        schedule_id="s", tenant="t", cron="0 0 31 2 */2", timezone="UTC", task={}, created_at=0, updated_at=0
    )
    # When its due fire is planned, on time or after the ticks were down
    fires, skipped, nxt = plan_fires(schedule, due, due + late_ms)
    # Then the due fire still starts, and the schedule has no next fire (it ends) instead of failing
    assert (fires, skipped, nxt) == ([due], 0, None)
