"""Cron arithmetic in IANA time zones (pure; croniter for the expression, zoneinfo for the zone).

Fire times are wall-clock times in the schedule's zone. Around daylight-saving changes:
- a wall time that does not exist (the hour skipped in spring) fires at the instant the clocks jump
  (a 02:30 job on the spring-forward night in New York fires at 03:00 EDT), once;
- a wall time that happens twice (the hour repeated in autumn) fires once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# croniter is imported where an expression is read, not with the module: the API and tick handlers
# import this module, and most of their invocations never touch a cron expression.

MAX_STEPS = 10_000


class CronError(ValueError):
    pass


def parse_cron(expr: str) -> str:
    """A normalised 5-field expression, or CronError saying what is wrong."""
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(
            f"cron must have 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    normalised = " ".join(fields)
    from croniter import croniter

    if not croniter.is_valid(normalised):
        raise CronError(f"{expr!r} is not a valid cron expression")
    return normalised


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
    """The first fire time strictly after ``after_ms`` (epoch ms)."""
    after = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    # Start one minute back in wall time so a fire at the very instant of ``after`` is seen and skipped,
    # and step through wall times until one maps to an instant after ``after``.
    wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) - timedelta(minutes=1)
    from croniter import croniter

    it = croniter(expr, wall)
    for _ in range(MAX_STEPS):
        candidate = it.get_next(datetime)
        at = _to_ms(_wall_to_utc(candidate, zone))
        if at > after_ms:
            return at
    raise CronError(f"{expr!r} has no fire time soon after {after.isoformat()}")


def fires_between(expr: str, zone: ZoneInfo, after_ms: int, until_ms: int, limit: int) -> list[int]:
    """Fire times in (after_ms, until_ms], at most ``limit`` of them (the earliest)."""
    out: list[int] = []
    t = after_ms
    while len(out) < limit:
        t = next_fire(expr, zone, t)
        if t > until_ms:
            break
        out.append(t)
    return out
