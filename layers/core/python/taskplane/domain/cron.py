"""Cron arithmetic in IANA time zones (pure): Vixie cron's grammar and day rule, croniter to iterate.

The expression
--------------
Five fields, ``minute hour day-of-month month day-of-week``, read as Vixie cron (crontab(5)) reads
them: numbers, ``*``, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b-c``, and the names
``jan``-``dec`` and ``sun``-``sat`` (any case); day-of-week 0 and 7 are both Sunday. One extension:
``a/n`` means ``a-<last>/n`` (``5/15`` in the minute field is 5, 20, 35, 50). Quartz and AWS
extensions (``L``, ``W``, ``#``, ``?``) and Jenkins' ``H`` are refused with the reason, not guessed at.

The day rule (Vixie's): when the day-of-month or the day-of-week field *starts with* ``*``, a day
must match both fields; when both are restricted, a day matching either field fires. So
``0 0 */2 * 1`` fires on Mondays that fall on an odd day of the month, and ``0 0 1 * 1`` on the
first of the month and on every Monday.

croniter reads some of this differently (an OR for ``*/2`` with a weekday unless
``implement_cron_bug`` is set; an equal range such as ``5-5`` as the whole cycle; a ``*`` inside a
list as a star field), so :func:`parse_spec` parses the expression itself into the sets each field
allows and croniter only iterates over explicit lists of numbers.

Time zones
----------
Fire times are wall-clock times in the schedule's zone. Around daylight-saving changes:
- a wall time that does not exist (the hour skipped in spring) fires at the instant the clocks jump
  (a 02:30 job on the spring-forward night in New York fires at 03:00 EDT), once;
- a wall time that happens twice (the hour repeated in autumn) fires once, at its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# croniter is imported where fire times are computed, not with the module: the API and tick handlers
# import this module, and most of their invocations never compute a fire time.

MAX_STEPS = 10_000

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
#: (lowest, highest) value of each field as written; day-of-week 7 is Sunday again.
BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {
        m: i
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
        )
    },
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
)
#: Most days a month can have, by month (February's 29th exists in leap years).
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: Extensions of other crons, recognised to say why they are refused: (pattern of a term, what it is).
_EXTENSIONS = (
    (re.compile(r"#"), "# (nth weekday of the month)"),
    (re.compile(r"\?"), "? (no specific value; write *)"),
    (re.compile(r"^\d*lw?$"), "L (last day)"),
    (re.compile(r"^\d*w$"), "W (nearest weekday)"),
    (re.compile(r"^[hr](?:$|[(/])"), "H or R (hashed or random value)"),
)
_TERM = re.compile(r"^(?:(\*)|([a-z0-9]+)(?:-([a-z0-9]+))?)(?:/([0-9]+))?$")


class CronError(ValueError):
    pass


class CronNeverFires(CronError):
    """A well-formed expression that no date matches (``0 0 30 2 *``)."""


@dataclass(frozen=True)
class CronSpec:
    """What an expression allows: the values of each field and how the two day fields combine."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    #: Vixie's rule: True when either day field starts with ``*`` (a day must match both).
    days_and: bool

    def matches_day(self, day: int, month: int, weekday: int) -> bool:
        """Whether the date fires (``weekday`` 0 = Sunday)."""
        if month not in self.months:
            return False
        if self.days_and:
            return day in self.days and weekday in self.weekdays
        return day in self.days or weekday in self.weekdays

    def croniter_args(self) -> tuple[str, bool]:
        """(an expression of plain number lists, croniter's ``day_or``) that iterate exactly this spec."""

        def text(values: frozenset[int], size: int) -> str:
            return "*" if len(values) == size else ",".join(str(v) for v in sorted(values))

        days, weekdays = text(self.days, 31), text(self.weekdays, 7)
        if not self.days_and and "*" in (days, weekdays):
            days = weekdays = "*"  # either field matching every day makes every day fire
        fields = (text(self.minutes, 60), text(self.hours, 24), days, text(self.months, 12), weekdays)
        return " ".join(fields), not self.days_and


def parse_spec(expr: str) -> CronSpec:
    """The :class:`CronSpec` of a 5-field expression, or CronError naming the field and the problem.

    Raises
    ------
    CronNeverFires
        The expression is well formed but no date matches it (day 30 of February, under the AND rule).

    Examples
    --------
    >>> spec = parse_spec("0 0 */2 * mon")
    >>> spec.days_and, sorted(spec.weekdays)
    (True, [1])
    """
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)} in {expr!r}"
        )
    sets = [_field(text, i, expr) for i, text in enumerate(fields)]
    spec = CronSpec(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=frozenset(v % 7 for v in sets[4]),
        days_and=fields[2].startswith("*") or fields[4].startswith("*"),
    )
    if spec.days_and and not any(d <= _MONTH_DAYS[m] for m in spec.months for d in spec.days):
        # Under OR, every month has every weekday, so only the AND rule can rule out every date.
        months = ", ".join(str(m) for m in sorted(spec.months))
        days = ", ".join(str(d) for d in sorted(spec.days))
        raise CronNeverFires(
            f"{' '.join(fields)!r} can never fire: no month in its month field ({months}) has a day "
            f"in its day-of-month field ({days})"
        )
    return spec


def _field(text: str, index: int, expr: str) -> frozenset[int]:
    name = FIELDS[index]
    lo, hi = BOUNDS[index]
    values: set[int] = set()
    for term in text.lower().split(","):

        def bad(problem: str, term: str = term) -> CronError:
            extension = next((what for pattern, what in _EXTENSIONS if pattern.search(term)), None)
            if extension:
                problem = f"{extension} is not supported: taskplane reads cron as Vixie cron does"
            return CronError(f"{expr!r}: {name} field {text!r}: {problem}")

        match = _TERM.match(term)
        if not match:
            raise bad(f"{term!r} is not a number, a range a-b, * or a step such as */5")
        star, first, last, step_text = match.groups()
        if star:
            start, end = lo, hi
        else:
            start = _value(first, index, bad)
            # "a/n" runs from a to the field's end; a lone "a" is just a.
            end = _value(last, index, bad) if last else (hi if step_text else start)
            if end < start:
                raise bad(f"the range {term!r} runs backwards (write the lower value first)")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise bad("a step must be at least 1")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str, index: int, bad: Callable[[str], CronError]) -> int:
    lo, hi = BOUNDS[index]
    if token.isdigit():
        value = int(token)
    elif token in _NAMES[index]:
        value = _NAMES[index][token]
    else:
        names = " or a name such as " + next(iter(_NAMES[index])) if _NAMES[index] else ""
        raise bad(f"{token!r} is not a number{names}")
    if not lo <= value <= hi:
        raise bad(f"{value} is out of range {lo}-{hi}")
    return value


def parse_cron(expr: str) -> str:
    """The expression with its fields separated by single spaces, or CronError saying what is wrong."""
    parse_spec(expr)
    return " ".join(expr.split())


@lru_cache(maxsize=512)
def _iteration(expr: str) -> tuple[str, bool] | None:
    """croniter's arguments for ``expr``; None for a stored expression this grammar refuses."""
    try:
        return parse_spec(expr).croniter_args()
    except CronNeverFires:
        raise
    except CronError:
        # Accepted before the grammar was Vixie's (L, W, #, ?): croniter keeps reading it as it did,
        # so a schedule made then neither stops nor crashes the tick.
        return None


def parse_zone(name: str) -> ZoneInfo:
    if name in ("UTC", "Etc/UTC"):
        return ZoneInfo("UTC")
    if "/" not in name and name not in available_timezones():
        raise CronError(f"unknown IANA time zone {name!r} (for example Europe/Paris or America/New_York)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(
            f"unknown IANA time zone {name!r} (for example Europe/Paris or America/New_York)"
        ) from exc


def _to_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which the zone's clocks read ``wall`` or later (see the module notes)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the first of two, when it happens twice)
    # Inside a gap: find the jump, the first minute whose wall time is past ``wall``.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    t = lo.replace(second=0, microsecond=0)
    while t <= hi:
        if t.astimezone(zone).replace(tzinfo=None) >= wall:
            return t
        t += timedelta(minutes=1)
    return hi


def next_fire(expr: str, zone: ZoneInfo, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms`` (epoch ms).

    Raises
    ------
    CronNeverFires
        No date matches the expression.
    """
    after = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    # Start one minute back in wall time so a fire at the very instant of ``after`` is seen and skipped,
    # and step through wall times until one maps to an instant after ``after``.
    wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) - timedelta(minutes=1)
    from croniter import CroniterBadDateError, croniter

    args = _iteration(expr)
    it = croniter(expr, wall) if args is None else croniter(args[0], wall, day_or=args[1])
    try:
        for _ in range(MAX_STEPS):
            candidate = it.get_next(datetime)
            at = _to_ms(_wall_to_utc(candidate, zone))
            if at > after_ms:
                return at
    except CroniterBadDateError:
        raise CronNeverFires(f"{expr!r} has no fire time after {after.isoformat()}") from None
    except (OverflowError, ValueError):
        # The next match lies past 9999-12-31 (a window starting at the end of time): no date holds it.
        raise CronNeverFires(f"{expr!r} has no fire time a date can hold after {after.isoformat()}") from None
    raise CronError(f"{expr!r} has no fire time soon after {after.isoformat()}")


def fires_between(expr: str, zone: ZoneInfo, after_ms: int, until_ms: int, limit: int) -> list[int]:
    """Fire times in (after_ms, until_ms], at most ``limit`` of them (the earliest)."""
    out: list[int] = []
    t = after_ms
    while len(out) < limit:
        try:
            t = next_fire(expr, zone, t)
        except CronNeverFires:
            break  # no more fires at all
        if t > until_ms:
            break
        out.append(t)
    return out
