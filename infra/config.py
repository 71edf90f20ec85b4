"""One deployment environment, read from the CDK context (``cdk.json`` -> ``taskplane:environments``).

Everything that differs between environments lives here and is validated before any construct is
made, so a typo in ``cdk.json`` fails the synth with the field's name instead of a broken deploy.
Tenants in particular belong in ``cdk.json`` (reviewed, versioned): a tenant that disappears from the
context loses its API key on the next deploy.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskplane.settings import LANES

#: Context key holding ``{env name: EnvironmentConfig fields}``.
ENVIRONMENTS_KEY = "taskplane:environments"
#: Context key selecting one environment (``cdk synth -c env=dev``); without it every one is built.
SELECT_KEY = "env"

_NAME = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"
#: Lambda keeps this many concurrent executions of an account unreserved (PutFunctionConcurrency).
UNRESERVED_MINIMUM = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantConfig(_Strict):
    """One tenant: an API key and a usage plan (requests per second, burst, requests per day)."""

    rate_limit: float = Field(default=50, gt=0, le=10_000)
    burst_limit: int = Field(default=100, ge=1, le=5_000)
    quota_per_day: int = Field(default=1_000_000, ge=1)
    #: Targets this tenant's tasks may call, as ``"<type>:<glob>"`` (``lambda:team-a-*``,
    #: ``http:api.example.com``, ``sqs:<queue URL glob>``, ``eventbridge:<bus>``); builtins always.
    allowed_targets: tuple[str, ...] = ()

    #: Gray release of this tenant's tasks: rules sending a share of labelled tasks to a Lambda alias
    #: or another host (``taskplane.domain.gray.RouteRule``: name, labels, percent, lambda_alias |
    #: http_host).
    task_routes: tuple[dict[str, Any], ...] = ()
    #: Events from outside the platform this tenant's triggers may listen to, by bus and source
    #: (``{"bus": "default", "sources": ["aws.s3", "com.example.*"]}``). Events tenants publish
    #: through taskplane need nothing here: they are on the platform's own bus.
    external_events: tuple[dict[str, Any], ...] = ()

    @field_validator("allowed_targets")
    @classmethod
    def _patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return _check_target_patterns(patterns)

    @field_validator("external_events")
    @classmethod
    def _external(cls, entries: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        from taskplane.domain.triggers import ExternalEvents

        buses = [ExternalEvents.model_validate(e).bus for e in entries]  # the code's own rules
        if len(set(buses)) != len(buses):
            raise ValueError("name each bus once in external_events (list all its sources there)")
        return entries

    @field_validator("task_routes")
    @classmethod
    def _routes(cls, routes: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        if routes and importlib.util.find_spec("taskplane.domain.gray") is not None:
            from taskplane.domain.gray import RouteRule

            for route in routes:
                RouteRule.model_validate(route)  # the code's own rules, checked before deploying
        return routes


def _check_target_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        if not re.fullmatch(r"(lambda|http|sqs|eventbridge):\S+", pattern):
            raise ValueError(f"target pattern {pattern!r} must be '<lambda|http|sqs|eventbridge>:<glob>'")
    return patterns


class ApiThrottle(_Strict):
    """Stage-wide ceiling for every tenant together (the account's regional limit is 10,000 rps)."""

    rate_limit: float = Field(default=500, gt=0, le=10_000)
    burst_limit: int = Field(default=1_000, ge=1, le=5_000)
    #: Keyless paths (/v1/health, /v1/openapi.json, /v1/docs): anyone may call them, so keep them cheap.
    public_rate_limit: float = Field(default=10, gt=0)
    public_burst_limit: int = Field(default=20, ge=1)


class ReservedConcurrency(_Strict):
    """Reserved concurrency per function; None leaves the function in the account's shared pool.

    Reserving needs headroom: AWS refuses a reservation that leaves under 100 unreserved executions
    (new accounts often have a limit of 10 in total), so the dev environment reserves nothing.
    """

    api: int | None = Field(default=None, ge=1)
    worker: int | None = Field(default=None, ge=1)
    tick: int | None = Field(default=None, ge=1)
    step: int | None = Field(default=None, ge=1)


class TargetAllowList(_Strict):
    """What the worker may call for ``lambda`` / ``sqs`` / ``eventbridge`` targets (names or ARNs).

    A name may end in ``*``. ``{prefix}`` is replaced by the environment's prefix. Never list the
    platform's own queues or functions: a tenant could forge lane messages for other tenants' tasks.
    """

    lambda_functions: tuple[str, ...] = ("{prefix}-target-*",)
    sqs_queues: tuple[str, ...] = ("{prefix}-target-*",)
    event_buses: tuple[str, ...] = ("{prefix}-target-*",)

    @field_validator("lambda_functions", "sqs_queues", "event_buses")
    @classmethod
    def _no_bare_wildcard(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if re.split(r"[:/]", name.strip())[-1] in {"", "*"}:
                raise ValueError(f"{name!r} would allow every resource; name a prefix such as 'team-a-*'")
        return names


class EnvironmentConfig(_Strict):
    """Everything one stack needs; see ``cdk.json`` for the values each environment uses."""

    name: str = Field(pattern=_NAME)
    #: Prefix of every physical name (tables, queues, functions, API, alarms): unique per account+region.
    prefix: str = Field(pattern=_NAME)
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = None
    #: Timing-wheel shards: one tick schedule (and one lease) per shard. Size them so the busiest shard
    #: carries at most 22% of what its tick measured it can send (bench/capacity.py tick_shards: ~1,100
    #: tasks due a second per 256 MB shard, 5 shards for 1,000 a second; a million a day fits one).
    #: Before each 500 ms read the tick sends what must leave while it runs, so a read does not hold up
    #: sends: in the modelled-AWS harness dispatch p99 1 ms as deployed at 1,000 due/s (44 ms before
    #: that), all within the 350 ms lead (BENCHMARKS.md, "Dispatch lateness").
    shards: int = Field(default=1, ge=1, le=64)
    #: The tick's memory: its share of a vCPU bounds what one shard sends (256 MB, a seventh of a vCPU:
    #: about 1,100 tasks a second measured, sized at 240, bench/capacity.py); it runs only while
    #: something is due soon, and at a million tasks a day that is all day: 128 MB halves what it costs
    #: then (about $0.15 per million tasks, BENCHMARKS.md) for half the tasks a second per shard and a
    #: slower cold start when woken. Its memory does not depend on windowed triggers' window sizes: it
    #: sends a window's end to its lane and the worker reads the window and closes it.
    tick_memory_mb: int = Field(default=256, ge=128, le=3008)
    #: The worker's memory. A delivery comes in a lead ahead of its due time and the worker waits for it,
    #: billed: at ~12 tasks a second some worker is always waiting, so at low rates the wait is most of
    #: the worker's cost and scales with this. 256 MB (the default since issue 16's third round) holds
    #: the start-lateness goals in the harness, a new instance builds its clients and tracer in the init
    #: phase (at a full vCPU, taskplane/init_phase.py) and a batch's payloads read from the bucket wait
    #: for room in its memory (services/payload_budget.py); 512 MB or more for CPU-heavy targets (they
    #: run at the memory's share of a vCPU) or large results. 128 MB leaves too little headroom
    #: (bench/worker_rss.py: ~70 MiB resident after init, one 5 MiB payload adds up to ~135 MiB).
    worker_memory_mb: int = Field(default=256, ge=128, le=10240)
    #: Partitions per tenant in the tasks table (fixed for the life of the table).
    task_buckets: int = Field(default=1, ge=1, le=64)
    #: Backpressure: a lane deeper than this makes the API answer 429 (0: no limit).
    max_lane_depth: int = Field(default=50_000, ge=0)
    #: A tenant with this many tasks accepted and not yet ended gets 429 (0: no quota, no counting).
    tenant_inflight_quota: int = Field(default=0, ge=0)
    #: Each tenant's share of an event bus's rules (a trigger takes one per pattern; AWS allows 300 per
    #: bus by default, adjustable) and of its rules with wildcard filters (30 per bus, not adjustable).
    #: Shares that add up past AWS's quota are fine until the bus is full: then creating a trigger
    #: answers 409 naming the quota, for every tenant alike.
    max_trigger_rules: int = Field(default=50, ge=0, le=10_000)
    max_wildcard_rules: int = Field(default=3, ge=0, le=30)
    #: Each tenant's share of the account's Step Functions state machines (one per workflow; AWS
    #: allows 100,000 an account): past it, publishing a new workflow answers 409.
    max_workflows: int = Field(default=500, ge=0, le=100_000)
    #: Days a finished task is kept before DynamoDB TTL removes it.
    retention_days: int = Field(default=30, ge=1, le=3650)
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365] = 30
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Keep tables (and their data) when the stack is deleted, and refuse table deletion meanwhile.
    retain_data: bool = True
    #: Worker batches in flight per lane: the event source mapping's MaximumConcurrency (2-1000).
    lane_concurrency: dict[str, int] = Field(default_factory=lambda: {"high": 10, "default": 10, "low": 5})
    #: Records per worker invocation. The worker runs a batch's records at the same time, so a batch
    #: takes as long as its slowest task (at most 900 s, inside the worker's 15 minutes). 10 makes
    #: one invocation and one receive/delete serve ten tasks under load; at low load batches are
    #: smaller anyway, because the mapping does not wait to fill them.
    worker_batch_size: int = Field(default=10, ge=1, le=10)
    reserved_concurrency: ReservedConcurrency = ReservedConcurrency()
    api_throttle: ApiThrottle = ApiThrottle()
    tenants: dict[str, TenantConfig] = Field(min_length=1)
    targets: TargetAllowList = TargetAllowList()
    #: Target patterns every tenant may call, on top of its own ``allowed_targets``.
    shared_targets: tuple[str, ...] = ()
    #: Circuit breaker per tenant and target, defaults of a retry policy's ``breaker``: this many
    #: timeouts in a row open it (0: no breakers), for this long.
    breaker_timeouts: int = Field(default=3, ge=0, le=1000)
    breaker_open_ms: int = Field(default=30_000, ge=1_000, le=3_600_000)
    #: CodeDeploy traffic shifting for every function alias.
    deployment: Literal["canary_10_percent_5_minutes", "linear_10_percent_every_1_minute", "all_at_once"] = (
        "canary_10_percent_5_minutes"
    )
    #: Subscribed to the stack's alarm topic when set (AWS mails a confirmation link: until someone
    #: follows it, nothing is delivered).
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    #: An OTLP/HTTP collector every function also exports metrics and traces to (README
    #: "Observability"); None: CloudWatch EMF only. Its base URL (``/v1/traces`` is appended).
    otlp_endpoint: str | None = None
    #: The share of tasks and runs whose traces are exported (metrics are never sampled).
    otlp_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from taskplane.settings import PlatformSettings

        return PlatformSettings(otlp_endpoint=value).otlp_endpoint or None  # the code's own rule

    #: An existing SNS topic (a team's pager or chat topic) every alarm also notifies. Its own policy
    #: must let ``cloudwatch.amazonaws.com`` publish from this account (see docs/DEPLOY.md).
    alarm_topic_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
    )
    #: The account's Lambda concurrent-executions quota in the stack's region (1,000 unless raised;
    #: new accounts may have less). Reservations must leave AWS's 100 unreserved executions.
    account_concurrency_limit: int = Field(default=1000, ge=10)

    @field_validator("shared_targets")
    @classmethod
    def _shared_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return _check_target_patterns(patterns)

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, tenants: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        for name in tenants:
            if not re.match(_NAME, name):
                raise ValueError(f"tenant name {name!r} must match {_NAME}")
        return tenants

    @field_validator("lane_concurrency")
    @classmethod
    def _lanes(cls, lanes: dict[str, int]) -> dict[str, int]:
        if set(lanes) != set(LANES):
            raise ValueError(f"lane_concurrency needs exactly the lanes {list(LANES)}, got {sorted(lanes)}")
        for lane, value in lanes.items():
            if not 2 <= value <= 1000:
                raise ValueError(f"lane_concurrency.{lane} is {value}; SQS MaximumConcurrency is 2-1000")
        return lanes

    @model_validator(mode="after")
    def _tick_reservation_covers_overlap(self) -> EnvironmentConfig:
        # A tick runs a little over a minute, so each shard briefly has two invocations.
        reserved = self.reserved_concurrency.tick
        if reserved is not None and reserved < 2 * self.shards:
            raise ValueError(
                f"reserved_concurrency.tick ({reserved}) is below 2 x shards ({2 * self.shards})"
            )
        return self

    @model_validator(mode="after")
    def _worker_reservation_covers_lanes(self) -> EnvironmentConfig:
        # A reservation below the sum of the lanes' MaximumConcurrency throttles the mappings'
        # invocations, and throttled SQS batches count as receives towards the DLQ.
        reserved = self.reserved_concurrency.worker
        needed = sum(self.lane_concurrency.values())
        if reserved is not None and reserved < needed:
            raise ValueError(
                f"reserved_concurrency.worker ({reserved}) is below the lanes' total MaximumConcurrency ({needed})"
            )
        return self

    @model_validator(mode="after")
    def _reservations_fit_the_account(self) -> EnvironmentConfig:
        # Lambda refuses a reservation that leaves fewer than 100 unreserved concurrent executions:
        # the deploy would fail half way, so say so at synth.
        reserved = {k: v for k, v in self.reserved_concurrency.model_dump().items() if v is not None}
        total = sum(reserved.values())
        room = self.account_concurrency_limit - UNRESERVED_MINIMUM
        if total > room:
            parts = " + ".join(f"{name} {value}" for name, value in sorted(reserved.items()))
            raise ValueError(
                f"reserved_concurrency ({parts} = {total}) leaves fewer than {UNRESERVED_MINIMUM} unreserved "
                f"executions of account_concurrency_limit {self.account_concurrency_limit}: it needs a limit of "
                f"at least {total + UNRESERVED_MINIMUM} (raise the quota, set account_concurrency_limit, or "
                "reserve less)"
            )
        return self

    @property
    def trigger_buses(self) -> list[str]:
        """The external buses some tenant's triggers may listen on (the platform's bus aside)."""
        return sorted({e["bus"] for t in self.tenants.values() for e in t.external_events})

    @property
    def event_bus(self) -> str:
        """The platform's own event bus: events tenants publish, stamped with their name."""
        return f"{self.prefix}-events"

    @property
    def trigger_rule_prefix(self) -> str:
        """Every trigger rule's name starts with it: environments never touch each other's rules."""
        return f"{self.prefix}-trg-"

    def expand(self, pattern: str) -> str:
        return pattern.replace("{prefix}", self.prefix)


def environments(context: Mapping[str, Any]) -> list[EnvironmentConfig]:
    """The environments to build: every one in the context, or the one named by ``-c env=NAME``."""
    raw = context.get(ENVIRONMENTS_KEY)
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(
            f"context {ENVIRONMENTS_KEY!r} must map environment names to settings (see cdk.json)"
        )
    selected = context.get(SELECT_KEY)
    if selected is not None and selected not in raw:
        raise ValueError(f"-c {SELECT_KEY}={selected}: no such environment; known: {sorted(raw)}")
    names = [selected] if selected is not None else sorted(raw)
    return [EnvironmentConfig.model_validate({**raw[name], "name": name}) for name in names]
