"""Triggers: an EventBridge event pattern that starts a task from a template, the event as its payload."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskplane.domain.clock import to_rfc3339
from taskplane.domain.ids import _encode
from taskplane.domain.models import TaskSubmit

MAX_PATTERN_BYTES = 2048


class TriggerCreate(BaseModel):
    """The body of ``POST /v1/triggers``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_pattern": {"source": ["shop.orders"], "detail-type": ["OrderPlaced"]},
                    "task": {"target": {"type": "builtin", "name": "echo"}},
                }
            ]
        },
    )

    event_pattern: dict[str, Any] = Field(description="an EventBridge event pattern")
    bus: str = Field(default="default", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._\-/]+$")
    task: TaskSubmit = Field(description="the task each matching event starts; the event becomes its payload")
    name: str | None = Field(default=None, max_length=128)

    @field_validator("event_pattern")
    @classmethod
    def _pattern(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError('an event pattern needs at least one field, for example {"source": ["my.app"]}')
        if len(json.dumps(value)) > MAX_PATTERN_BYTES:
            raise ValueError(f"an event pattern is at most {MAX_PATTERN_BYTES} bytes")
        return value

    @field_validator("task")
    @classmethod
    def _template(cls, value: TaskSubmit) -> TaskSubmit:
        for name in ("run_at", "delay_ms", "idempotency_key"):
            if getattr(value, name) is not None:
                raise ValueError(f"a trigger's task cannot have {name}: it runs when the event arrives")
        if value.payload is not None:
            raise ValueError("a trigger's task cannot have a payload: the event is its payload")
        return value


class Trigger(BaseModel):
    trigger_id: str
    tenant: str
    name: str | None = None
    bus: str
    event_pattern: dict[str, Any]
    task: dict[str, Any]
    rule_name: str
    created_at: int

    def to_api(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "name": self.name,
            "bus": self.bus,
            "event_pattern": self.event_pattern,
            "task": self.task,
            "rule_name": self.rule_name,
            "created_at": to_rfc3339(self.created_at),
        }


def rule_name(trigger_id: str) -> str:
    return f"taskplane-trigger-{trigger_id}"


def trigger_task_id(trigger_id: str, event_id: str, now_ms: int, event_time_ms: int | None) -> str:
    """One task per (trigger, event): a redelivered event finds the task it already started."""
    digest = int.from_bytes(
        hashlib.blake2b(f"{trigger_id}@{event_id}".encode(), digest_size=10).digest(), "big"
    )
    return _encode(event_time_ms if event_time_ms is not None else now_ms, 10) + _encode(digest, 16)
