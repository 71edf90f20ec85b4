"""Events tenants publish through the platform (``POST /v1/events`` and the ``eventbridge`` target).

The platform writes the publishing tenant into every event's ``detail`` (:func:`stamp`); trigger
rules on the platform bus match on it (``domain/triggers.py``), so an event reaches only its own
tenant's triggers whatever its ``source``, ``detail-type`` or ``detail`` say.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

#: The name tenants give the platform's own event bus (its real name is the environment's setting).
PLATFORM_BUS = "taskplane"
#: The field of ``detail`` the platform writes the publishing tenant into. A leaf, because EventBridge's
#: ``exists`` matching works on leaves only.
TENANT_STAMP = "taskplane_tenant"
#: Most events one ``POST /v1/events`` carries (PutEvents takes 10 entries).
MAX_EVENTS = 10
#: Largest ``detail`` of one event, as compact JSON (the same limit as a task payload).
MAX_DETAIL_BYTES = 64 * 1024
#: Largest PutEvents request: the sum of its entries' sizes (EventBridge's documented 256 KB).
MAX_PUT_BYTES = 256 * 1024
#: Largest SQS message (1 MiB since August 2025): a trigger's event, wrapped in its envelope, larger
#: than this cannot be put on its lane by the rule; it goes to the triggers' dead-letter queue.
SQS_MAX_MESSAGE_BYTES = 1024 * 1024

_Source = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._\-/]+$")]


def stamp(detail: dict[str, Any], tenant: str) -> dict[str, Any]:
    """``detail`` with the publishing tenant written in by the platform (over any value sent)."""
    return {**detail, TENANT_STAMP: tenant}


def stamped_tenant(event: dict[str, Any]) -> str | None:
    """The tenant the platform stamped into an event, or None for an event from outside the platform."""
    detail = event.get("detail")
    value = detail.get(TENANT_STAMP) if isinstance(detail, dict) else None
    return value if isinstance(value, str) else None


def not_aws(source: str) -> str:
    """EventBridge reserves sources starting with ``aws.`` for AWS's own services."""
    if source.lower().startswith("aws."):
        raise ValueError("sources starting with 'aws.' are AWS's own; name your application (shop.orders)")
    return source


def entry_size(source: str, detail_type: str, detail_json: str) -> int:
    """An entry's size as EventBridge counts it against the request limit (14 bytes for the time)."""
    return 14 + sum(len(v.encode("utf-8", "surrogatepass")) for v in (source, detail_type, detail_json))


class EventPublish(BaseModel):
    """One event of ``POST /v1/events``."""

    model_config = ConfigDict(extra="forbid")

    source: _Source = Field(description="your application's name for where the event comes from")
    detail_type: Annotated[StrictStr, Field(min_length=1, max_length=128)] = Field(
        description="what happened, e.g. OrderPlaced"
    )
    detail: dict[str, Any] = Field(default_factory=dict, description="the event's data (a JSON object)")

    _source = field_validator("source")(not_aws)

    @field_validator("detail")
    @classmethod
    def _not_stamped(cls, value: dict[str, Any]) -> dict[str, Any]:
        if TENANT_STAMP in value:
            raise ValueError(f"{TENANT_STAMP} is written by the platform; leave it out")
        return value

    def detail_json(self, tenant: str) -> str:
        return json.dumps(stamp(self.detail, tenant), separators=(",", ":"), ensure_ascii=False)


class EventsPublish(BaseModel):
    """The body of ``POST /v1/events``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"events": [{"source": "shop.orders", "detail_type": "OrderPlaced", "detail": {"order": 42}}]}
            ]
        },
    )

    events: list[EventPublish] = Field(min_length=1, max_length=MAX_EVENTS)
