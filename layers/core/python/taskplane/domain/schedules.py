"""Schedules: the contract, the entity, and the pure rules for which fires happen when."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from taskplane.domain.clock import from_datetime, to_rfc3339
from taskplane.domain.cron import CronError, CronNeverFires, fires_between, next_fire, parse_cron, parse_zone
from taskplane.domain.ids import _encode
from taskplane.domain.models import TaskSubmit, representable

Misfire = Literal["fire_once", "fire_all", "skip"]
Overlap = Literal["allow", "skip"]
#: A fire found later than this (ticks were down) is a misfire, handled by the schedule's policy.
MISFIRE_GRACE_MS = 60_000
#: ``fire_all`` catches up on at most this many missed fires at once.
MAX_CATCH_UP = 100


class ScheduleCreate(BaseModel):
    """The body of ``POST /v1/schedules``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cron": "*/5 * * * *",
                    "timezone": "Europe/Paris",
                    "task": {"target": {"type": "builtin", "name": "echo"}, "payload": {"report": "daily"}},
                }
            ]
        },
    )

    cron: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "5 fields: minute hour day-of-month month day-of-week, read as Vixie cron (when either day "
            "field starts with *, a day must match both; else either); L, W, # and ? are refused"
        ),
    )
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, description="IANA zone, e.g. Europe/Paris"
    )
    task: TaskSubmit = Field(description="the task each fire starts: a task body without run_at or delay_ms")
    misfire: Misfire = "fire_once"
    overlap: Overlap = "allow"
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    name: str | None = Field(default=None, max_length=128)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            return parse_cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            parse_zone(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("start_at", "end_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        return representable(value)  # the same range as a task's run_at

    @field_validator("task")
    @classmethod
    def _no_start_time(cls, value: TaskSubmit) -> TaskSubmit:
        for name in ("run_at", "delay_ms", "idempotency_key"):
            if getattr(value, name) is not None:
                raise ValueError(f"a schedule's task cannot have {name}: the schedule decides when it runs")
        if value.payload_ref is not None:
            raise ValueError("a schedule's task carries its payload inline (up to 64 KiB), not payload_ref")
        return value

    @model_validator(mode="after")
    def _window(self) -> ScheduleCreate:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class Schedule(BaseModel):
    """A schedule as the platform keeps it (times in epoch ms)."""

    schedule_id: str
    tenant: str
    name: str | None = None
    cron: str
    timezone: str
    task: dict[str, Any]
    misfire: Misfire = "fire_once"
    overlap: Overlap = "allow"
    start_at: int | None = None
    end_at: int | None = None
    paused: bool = False
    next_fire_at: int | None = None
    last_fire_at: int | None = None
    last_task_id: str | None = None
    fires: int = 0
    skipped: int = 0
    created_at: int
    updated_at: int

    def to_api(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "task": self.task,
            "misfire": self.misfire,
            "overlap": self.overlap,
            "start_at": to_rfc3339(self.start_at),
            "end_at": to_rfc3339(self.end_at),
            "state": "PAUSED" if self.paused else ("ENDED" if self.next_fire_at is None else "ACTIVE"),
            "paused": self.paused,
            "next_fire_at": None if self.paused else to_rfc3339(self.next_fire_at),
            "last_fire_at": to_rfc3339(self.last_fire_at),
            "last_task_id": self.last_task_id,
            "fires": self.fires,
            "skipped": self.skipped,
            "created_at": to_rfc3339(self.created_at),
            "updated_at": to_rfc3339(self.updated_at),
        }


def new_schedule(body: ScheduleCreate, *, schedule_id: str, tenant: str, now_ms: int) -> Schedule:
    schedule = Schedule(
        schedule_id=schedule_id,
        tenant=tenant,
        name=body.name,
        cron=body.cron,
        timezone=body.timezone,
        task=body.task.model_dump(
            mode="json", exclude_none=True, exclude={"run_at", "delay_ms", "idempotency_key"}
        ),
        misfire=body.misfire,
        overlap=body.overlap,
        start_at=from_datetime(body.start_at) if body.start_at else None,
        end_at=from_datetime(body.end_at) if body.end_at else None,
        created_at=now_ms,
        updated_at=now_ms,
    )
    return schedule.model_copy(update={"next_fire_at": first_fire(schedule, now_ms)})


def first_fire(schedule: Schedule, now_ms: int) -> int | None:
    """The next fire strictly after ``now_ms`` within the schedule's window, or None when it has ended."""
    start = max(now_ms, (schedule.start_at - 1) if schedule.start_at else now_ms)
    try:
        at = next_fire(schedule.cron, parse_zone(schedule.timezone), start)
    except CronNeverFires:
        return None
    if schedule.end_at is not None and at > schedule.end_at:
        return None
    return at


def plan_fires(schedule: Schedule, due_ms: int, now_ms: int) -> tuple[list[int], int, int | None]:
    """Which fire times to start now for the fire due at ``due_ms``, how many were skipped, and the next.

    On time (within MISFIRE_GRACE_MS): fire ``due_ms``. Later than that (ticks were down), by policy:
    ``fire_once`` starts one task for the missed fires, ``fire_all`` one per missed fire (up to
    MAX_CATCH_UP), ``skip`` none. The next fire is the first one after ``now_ms`` (or ``due_ms``), None
    when the schedule has ended (past ``end_at``, or an expression that no date matches any more).
    """
    zone = parse_zone(schedule.timezone)
    end = schedule.end_at
    if now_ms - due_ms <= MISFIRE_GRACE_MS:
        fires, skipped, after = [due_ms], 0, due_ms
    else:
        missed = [due_ms, *fires_between(schedule.cron, zone, due_ms, now_ms, MAX_CATCH_UP)]
        if end is not None:
            missed = [m for m in missed if m <= end]
        if schedule.misfire == "fire_all":
            fires = missed[:MAX_CATCH_UP]
        elif schedule.misfire == "fire_once":
            fires = missed[:1]
        else:
            fires = []
        skipped, after = len(missed) - len(fires), now_ms
    try:
        nxt = next_fire(schedule.cron, zone, after)
    except CronNeverFires:  # a stored expression that no date matches any more: the schedule ends
        return fires, skipped, None
    if end is not None and nxt > end:
        return fires, skipped, None
    return fires, skipped, nxt


def fire_task_id(schedule_id: str, fire_ms: int) -> str:
    """The id of the task for one fire: the same inputs always give the same id, so a retried tick
    finds the task it already created instead of making a second one."""
    digest = int.from_bytes(
        hashlib.blake2b(f"{schedule_id}@{fire_ms}".encode(), digest_size=10).digest(), "big"
    )
    return _encode(fire_ms, 10) + _encode(digest, 16)
