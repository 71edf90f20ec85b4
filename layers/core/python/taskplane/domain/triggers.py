"""Triggers: an EventBridge event pattern that starts a task from a template, the event as its payload.

Isolation holds by construction, not by reviewing patterns:

- Every event the platform puts on a bus (``POST /v1/events``, an ``eventbridge`` target) carries the
  publishing tenant in ``detail.taskplane_tenant``, written by the platform over whatever the tenant
  sent (``domain/events.py``). The tenant never chooses it.
- Every rule the platform makes is scoped (:func:`scoped_pattern`): on the platform's own bus
  (``bus: "taskplane"``) the rule matches only events stamped with the trigger's tenant; on any other
  bus (AWS service events on ``default``, another producer's bus) only events the tenant's
  configuration names by bus and source, and never an event the platform stamped, so no tenant's
  published event reaches another tenant's trigger that way either.
- The worker checks the scope again when the event arrives (``services/triggers.py``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskplane.domain.clock import to_rfc3339
from taskplane.domain.errors import LimitExceeded
from taskplane.domain.events import PLATFORM_BUS, TENANT_STAMP
from taskplane.domain.ids import _encode, is_valid_id
from taskplane.domain.models import TaskSubmit
from taskplane.domain.windows import BatchWindow, CorrelateWindow, DebounceWindow, WindowSpec

MAX_PATTERN_BYTES = 2048


class ExternalEvents(BaseModel):
    """Events from outside the platform a tenant's triggers may listen to: one bus, named sources.

    A source is an exact name (``aws.s3``) or a prefix ending in ``*`` (``com.example.*``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bus: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._\-/]+$")
    sources: tuple[str, ...] = Field(min_length=1)

    @field_validator("bus")
    @classmethod
    def _not_the_platform_bus(cls, value: str) -> str:
        if value == PLATFORM_BUS:
            raise ValueError(f"{PLATFORM_BUS!r} is the platform's own bus; name an external bus")
        return value

    @field_validator("sources")
    @classmethod
    def _named(cls, sources: tuple[str, ...]) -> tuple[str, ...]:
        for source in sources:
            if not source or source == "*" or "*" in source[:-1]:
                raise ValueError(
                    f"source {source!r} must be a name or a prefix ending in '*' (not '*' alone)"
                )
        return sources

    def allows(self, source: str) -> bool:
        return any(source.startswith(s[:-1]) if s.endswith("*") else source == s for s in self.sources)

    def pattern_values(self) -> list[Any]:
        """The sources as EventBridge pattern values (exact strings and prefix filters)."""
        return [{"prefix": s[:-1]} if s.endswith("*") else s for s in self.sources]


def _names_the_stamp(node: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether a pattern names ``detail.<TENANT_STAMP>`` anywhere (through ``$or`` too)."""
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key == "$or" and isinstance(value, list):
            if any(_names_the_stamp(alt, path) for alt in value):
                return True
            continue
        here = (*path, key)
        if here == ("detail", TENANT_STAMP) or _names_the_stamp(value, here):
            return True
    return False


def scoped_pattern(pattern: dict[str, Any], tenant: str, external: ExternalEvents | None) -> dict[str, Any]:
    """The pattern of the rule the platform makes for ``pattern``: the tenant's, ANDed with its scope.

    On the platform bus (``external`` None): only events stamped with ``tenant``. On an external bus:
    only the configured sources, and only events the platform did not stamp. Raises ``ValueError``
    naming what the tenant's pattern may not say there.
    """
    detail = pattern.get("detail", {})
    scoped = dict(pattern)
    if external is None:
        scoped["detail"] = {**detail, TENANT_STAMP: [tenant]}
        return scoped
    sources = pattern.get("source")
    if sources is None:
        scoped["source"] = external.pattern_values()
    else:
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise ValueError(
                f"on bus {external.bus!r}, 'source' must list source names exactly "
                f"(allowed: {', '.join(external.sources)})"
            )
        refused = [s for s in sources if not external.allows(s)]
        if refused:
            raise ValueError(
                f"source {refused[0]!r} is not one this tenant may listen to on bus {external.bus!r} "
                f"(allowed: {', '.join(external.sources)})"
            )
    scoped["detail"] = {**detail, TENANT_STAMP: [{"exists": False}]}
    return scoped


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

    event_pattern: dict[str, Any] | None = Field(
        default=None,
        description="an EventBridge event pattern; the platform ANDs it with the tenant's scope "
        "(a correlating trigger lists its patterns in correlate.events instead)",
    )
    bus: str = Field(
        default=PLATFORM_BUS,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9._\-/]+$",
        description=(
            f"{PLATFORM_BUS!r} (the default): events this tenant publishes through the platform; another "
            "bus only as the tenant's configuration allows (external events)"
        ),
    )
    task: TaskSubmit = Field(description="the task each matching event starts; the event becomes its payload")
    name: str | None = Field(default=None, max_length=128)
    batch: BatchWindow | None = Field(
        default=None, description="collect events per key; one task gets a window's events"
    )
    debounce: DebounceWindow | None = Field(
        default=None, description="only the last event of a burst per key starts a task"
    )
    correlate: CorrelateWindow | None = Field(
        default=None,
        description="a task starts when every listed pattern matched an event with the same key in time",
    )

    @field_validator("event_pattern")
    @classmethod
    def _pattern(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_pattern(value)

    @field_validator("task")
    @classmethod
    def _template(cls, value: TaskSubmit) -> TaskSubmit:
        return check_template(value)

    @field_validator("correlate")
    @classmethod
    def _correlate(cls, value: CorrelateWindow | None) -> CorrelateWindow | None:
        if value is None:
            return None
        for index, pattern in enumerate(value.events):
            try:
                check_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"events[{index}]: {exc}") from None
        if value.on_timeout is not None:
            try:
                check_template(value.on_timeout)
            except ValueError as exc:
                raise ValueError(f"on_timeout: {exc}") from None
        return value

    def window(self) -> WindowSpec | None:
        """The trigger's window (None: one task per event); two at once is refused by the service."""
        return self.batch or self.debounce or self.correlate

    def patterns(self) -> list[dict[str, Any]]:
        """Its patterns: one rule each (a correlation's, or the one event pattern)."""
        if self.correlate is not None:
            return list(self.correlate.events)
        return [self.event_pattern] if self.event_pattern is not None else []


def check_pattern(value: Any) -> dict[str, Any]:
    """What the platform refuses in a trigger's pattern before EventBridge sees it (ValueError)."""
    if not isinstance(value, dict) or not value:
        raise ValueError('an event pattern needs at least one field, for example {"source": ["my.app"]}')
    if len(json.dumps(value)) > MAX_PATTERN_BYTES:
        raise ValueError(f"an event pattern is at most {MAX_PATTERN_BYTES} bytes")
    if "detail" in value and not isinstance(value["detail"], dict):
        raise ValueError(
            '"detail" in an event pattern must be an object, for example {"detail": {"k": ["v"]}}'
        )
    if _names_the_stamp(value):
        raise ValueError(f"detail.{TENANT_STAMP} is the platform's: the trigger's scope sets it")
    return value


def check_template(value: TaskSubmit) -> TaskSubmit:
    """A trigger's task template: no time and no payload of its own (the event or window is its payload)."""
    for name in ("run_at", "delay_ms", "idempotency_key"):
        if getattr(value, name) is not None:
            raise ValueError(f"a trigger's task cannot have {name}: it runs when the event arrives")
    if value.payload is not None or value.payload_ref is not None:
        raise ValueError("a trigger's task cannot have a payload: the event is its payload")
    return value


class Trigger(BaseModel):
    trigger_id: str
    tenant: str
    name: str | None = None
    bus: str
    event_pattern: dict[str, Any] | None = None
    task: dict[str, Any]
    rule_name: str
    created_at: int
    batch: BatchWindow | None = None
    debounce: DebounceWindow | None = None
    correlate: CorrelateWindow | None = None
    #: a correlation's patterns with the tenant's scope, one rule each (``rule_name``, then
    #: ``rule_name-1``, ...); None for a trigger of one pattern
    rule_patterns: list[dict[str, Any]] | None = None
    #: the bus the rule is on (the platform bus's real name for ``bus == PLATFORM_BUS``)
    rule_bus: str | None = None
    #: the pattern of the rule: ``event_pattern`` with the tenant's scope (:func:`scoped_pattern`)
    rule_pattern: dict[str, Any] | None = None

    @property
    def real_bus(self) -> str:
        return self.rule_bus or self.bus

    @property
    def lane(self) -> str:
        """The lane its rules deliver to (its task's priority)."""
        return str(self.task.get("priority", "default"))

    def envelope(self, index: int | None, event_json: str) -> str:
        """The lane message its rule ``index`` (None: its only rule) puts for an event, the event
        given as JSON text (or a rule's placeholder for it):
        ``{"trigger_id": ..., "tenant": ..., ["pattern": i,] "event": <the whole event>}``."""
        head: dict[str, Any] = {"trigger_id": self.trigger_id, "tenant": self.tenant}
        if index is not None:
            head["pattern"] = index  # which of a correlation's patterns the event matched
        return json.dumps(head)[:-1] + f', "event": {event_json}}}'

    def window(self) -> WindowSpec | None:
        return self.batch or self.debounce or self.correlate

    def rules(self) -> list[tuple[str, dict[str, Any]]]:
        """(rule name, scoped pattern) of each of its rules; the message of rule ``i`` names ``i``."""
        if self.rule_patterns is not None:
            return [(rule_index_name(self.rule_name, i), p) for i, p in enumerate(self.rule_patterns)]
        return [(self.rule_name, self.rule_pattern or self.event_pattern or {})]

    def to_api(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "name": self.name,
            "bus": self.bus,
            "event_pattern": self.event_pattern,
            "task": self.task,
            "rule_name": self.rule_name,
            "rule_pattern": self.rule_pattern,
            "created_at": to_rfc3339(self.created_at),
            **{
                name: spec.model_dump(mode="json", exclude_none=True)
                for name, spec in (
                    ("batch", self.batch),
                    ("debounce", self.debounce),
                    ("correlate", self.correlate),
                )
                if spec is not None
            },
            **({"rule_patterns": self.rule_patterns} if self.rule_patterns is not None else {}),
        }


#: The default name prefix of trigger rules; each environment sets its own (``<prefix>-trg-``), so
#: environments sharing an account never touch each other's rules.
DEFAULT_RULE_PREFIX = "taskplane-trg-"


def rule_name(trigger_id: str, prefix: str = DEFAULT_RULE_PREFIX) -> str:
    return f"{prefix}{trigger_id}"


def rule_index_name(base: str, index: int) -> str:
    """The name of a trigger's rule ``index``: its first is the trigger's ``rule_name`` itself."""
    return base if index == 0 else f"{base}-{index}"


def parse_rule_name(name: str, prefix: str = DEFAULT_RULE_PREFIX) -> tuple[str, int] | None:
    """(trigger id, pattern index) of one of this environment's trigger rules (the inverse of
    :func:`rule_name` and :func:`rule_index_name`); None for a name that is not one."""
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    trigger_id, _, index = rest.partition("-")
    if not is_valid_id(trigger_id):
        return None
    if not index:
        return trigger_id, 0
    if not index.isdigit() or index != str(int(index)) or int(index) == 0:
        return None
    return trigger_id, int(index)


def rule_of_arn(arn: str) -> tuple[str, str] | None:
    """(bus, rule name) of a rule ARN: ``rule/<name>`` on the default bus, ``rule/<bus>/<name>``."""
    _, _, resource = arn.partition(":rule/")
    if not resource:
        return None
    bus, _, name = resource.rpartition("/")
    return (bus or "default", name) if name else None


#: Every trigger rule's target retries a failed delivery to its lane for at most this long, then
#: EventBridge puts the event on the triggers' dead-letter queue (never drops it). Its default is 24 h
#: and 185 attempts; the lane is an SQS queue of the same account and region, so a delivery that
#: still fails after 2 hours of backed-off attempts is no passing throttle but a queue policy, a key
#: or a quota that a person must fix: the event waits in the DLQ (14 days) and its alarm pages now,
#: not a day later. Failures EventBridge does not retry (a missing queue, a refused permission) go to
#: the DLQ at once whatever this says.
RULE_RETRY_MAX_AGE_S = 2 * 3600
RULE_RETRY_ATTEMPTS = 185


def trigger_task_id(trigger_id: str, event_id: str, now_ms: int, event_time_ms: int | None) -> str:
    """One task per (trigger, event): a redelivered event finds the task it already started."""
    digest = int.from_bytes(
        hashlib.blake2b(f"{trigger_id}@{event_id}".encode(), digest_size=10).digest(), "big"
    )
    return _encode(event_time_ms if event_time_ms is not None else now_ms, 10) + _encode(digest, 16)


#: EventBridge's quotas per event bus: rules (adjustable, default 300) and rules whose pattern uses
#: ``wildcard`` (30, not adjustable). Every tenant's triggers share the platform's bus, so each tenant
#: gets a share (settings ``max_trigger_rules`` / ``max_wildcard_rules``), and one tenant cannot use up
#: the bus for all the others.
BUS_RULES_QUOTA = 300
BUS_WILDCARD_RULES_QUOTA = 30


def uses_wildcard(pattern: Any) -> bool:
    """Whether an event pattern uses the ``wildcard`` filter anywhere (AWS counts such rules apart)."""
    if isinstance(pattern, dict):
        return "wildcard" in pattern or any(uses_wildcard(v) for v in pattern.values())
    if isinstance(pattern, list):
        return any(uses_wildcard(v) for v in pattern)
    return False


def check_rule_share(
    existing: list[Trigger], new: list[dict[str, Any]], *, max_rules: int, max_wildcard: int
) -> None:
    """Refuse a trigger whose rules (``new``, one per pattern) would take the tenant past its share of
    the event bus's rules, or of its rules with wildcards."""
    rules = sum(len(t.rules()) for t in existing)
    wild = sum(1 for t in existing for _, p in t.rules() if uses_wildcard(p))
    adding_wild = sum(1 for p in new if uses_wildcard(p))
    if rules + len(new) > max_rules:
        raise LimitExceeded(
            f"this tenant's triggers hold {rules} EventBridge rule(s) and may hold {max_rules} "
            f"(a trigger takes one rule per pattern; this one needs {len(new)}): delete a trigger you no "
            "longer need, or ask the operator to raise TASKPLANE_MAX_TRIGGER_RULES",
            [{"field": "event_pattern", "problem": "too_many_rules", "rules": rules, "limit": max_rules}],
        )
    if adding_wild and wild + adding_wild > max_wildcard:
        raise LimitExceeded(
            f"this tenant's triggers hold {wild} rule(s) with a wildcard filter and may hold {max_wildcard} "
            f"(EventBridge allows {BUS_WILDCARD_RULES_QUOTA} per event bus, shared by every tenant, and the "
            "quota cannot be raised): use prefix, suffix or equals-ignore-case instead, delete a trigger, or "
            "ask the operator to raise TASKPLANE_MAX_WILDCARD_RULES",
            [
                {
                    "field": "event_pattern",
                    "problem": "too_many_wildcard_rules",
                    "rules": wild,
                    "limit": max_wildcard,
                }
            ],
        )
