"""Settings read once from the environment by a handler and passed down as plain values.

The names here are shared by the CDK app (which sets them) and the local runtime (which sets them
for moto); keep them in this one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

ENV_TASKS_TABLE = "TASKPLANE_TASKS_TABLE"
ENV_IDEMPOTENCY_TABLE = "TASKPLANE_IDEMPOTENCY_TABLE"
ENV_CONTROL_TABLE = "TASKPLANE_CONTROL_TABLE"
ENV_QUEUE_HIGH = "TASKPLANE_QUEUE_HIGH_URL"
ENV_QUEUE_DEFAULT = "TASKPLANE_QUEUE_DEFAULT_URL"
ENV_QUEUE_LOW = "TASKPLANE_QUEUE_LOW_URL"
ENV_DLQ = "TASKPLANE_DLQ_URL"
ENV_TASK_BUCKETS = "TASKPLANE_TASK_BUCKETS"
ENV_RETENTION_DAYS = "TASKPLANE_RETENTION_DAYS"
ENV_WHEEL_TABLE = "TASKPLANE_WHEEL_TABLE"
ENV_WHEEL_SHARDS = "TASKPLANE_WHEEL_SHARDS"
ENV_SCHEDULES_TABLE = "TASKPLANE_SCHEDULES_TABLE"
ENV_WORKFLOWS_TABLE = "TASKPLANE_WORKFLOWS_TABLE"
ENV_RUNS_TABLE = "TASKPLANE_RUNS_TABLE"
ENV_STEP_FUNCTION_ARN = "TASKPLANE_STEP_FUNCTION_ARN"
ENV_STATE_MACHINE_ROLE_ARN = "TASKPLANE_STATE_MACHINE_ROLE_ARN"
ENV_STATE_MACHINE_PREFIX = "TASKPLANE_STATE_MACHINE_PREFIX"
ENV_STATE_MACHINE_LOG_GROUP_ARN = "TASKPLANE_STATE_MACHINE_LOG_GROUP_ARN"

# Hardening (README "Hardening"): backpressure thresholds and what HTTP targets may reach.
ENV_MAX_LANE_DEPTH = "TASKPLANE_MAX_LANE_DEPTH"
ENV_TENANT_INFLIGHT_QUOTA = "TASKPLANE_TENANT_INFLIGHT_QUOTA"
ENV_MAX_TRIGGER_RULES = "TASKPLANE_MAX_TRIGGER_RULES"
ENV_MAX_WILDCARD_RULES = "TASKPLANE_MAX_WILDCARD_RULES"
ENV_MAX_WORKFLOWS = "TASKPLANE_MAX_WORKFLOWS"
ENV_ALLOW_PRIVATE_HTTP = "TASKPLANE_ALLOW_PRIVATE_HTTP"
ENV_BREAKER_TIMEOUTS = "TASKPLANE_BREAKER_TIMEOUTS"
#: JSON {"<tenant>" or "*": ["lambda:orders-*", "http:api.example.com", ...]}
ENV_TARGET_ALLOWLISTS = "TASKPLANE_TARGET_ALLOWLISTS"
ENV_TARGETS_ALLOWED_BY_DEFAULT = "TASKPLANE_TARGETS_ALLOWED_BY_DEFAULT"
#: JSON {"<tenant>": [{"name", "labels", "percent", "lambda_alias" | "http_host"}, ...]} (domain/gray.py)
ENV_TASK_ROUTES = "TASKPLANE_TASK_ROUTES"
ENV_BREAKER_OPEN_MS = "TASKPLANE_BREAKER_OPEN_MS"
#: The tick function (its alias ARN) that writers of wheel entries due soon invoke to wake an idle tick.
ENV_TICK_FUNCTION = "TASKPLANE_TICK_FUNCTION"
# Events and triggers (domain/events.py, domain/triggers.py): the platform's own bus, the name
# prefix of every trigger rule, and the events from outside the platform each tenant may listen to.
ENV_EVENT_BUS = "TASKPLANE_EVENT_BUS"
ENV_TRIGGER_RULE_PREFIX = "TASKPLANE_TRIGGER_RULE_PREFIX"
#: JSON {"<tenant>": [{"bus": "default", "sources": ["aws.s3", "com.example.*"]}, ...]}
ENV_EXTERNAL_EVENTS = "TASKPLANE_EXTERNAL_EVENTS"
#: The queue where EventBridge puts a trigger's event it could not deliver to its lane (every rule's
#: target names it); its URL for reading, its ARN for the rules' DeadLetterConfig.
ENV_TRIGGER_DLQ_URL = "TASKPLANE_TRIGGER_DLQ_URL"
ENV_TRIGGER_DLQ_ARN = "TASKPLANE_TRIGGER_DLQ_ARN"
# Large payloads, results and node outputs (domain/blobs.py): the bucket, and where the URLs handed to
# clients point (empty: S3 itself; the local runtime points them at its local S3 endpoint).
ENV_BLOB_BUCKET = "TASKPLANE_BLOB_BUCKET"
ENV_BLOB_URL_ENDPOINT = "TASKPLANE_BLOB_URL_ENDPOINT"

# Observability (README "Observability"): OTLP/HTTP export of metrics and traces besides EMF, when set.
#: Base URL of an OTLP/HTTP receiver (a collector), e.g. http://localhost:4318; /v1/traces and
#: /v1/metrics are appended. Empty: no OTLP export (the OpenTelemetry SDK is never imported).
ENV_OTLP_ENDPOINT = "TASKPLANE_OTLP_ENDPOINT"
#: The share of tasks and runs whose traces are exported (0..1; metrics are never sampled).
ENV_OTLP_SAMPLE_RATIO = "TASKPLANE_OTLP_SAMPLE_RATIO"

LANES: tuple[str, ...] = ("high", "default", "low")
#: A lane message that fails this many deliveries goes to the DLQ (the CDK app and the local
#: runtime's queues use the same number).
MAX_RECEIVE_COUNT = 5

#: The settings that are policy, not the names of resources: what an operator chooses. The local
#: runtime keeps friendly defaults for them but never overrides one set in the environment.
POLICY_VARIABLES: tuple[str, ...] = (
    ENV_ALLOW_PRIVATE_HTTP,
    ENV_TARGETS_ALLOWED_BY_DEFAULT,
    ENV_TARGET_ALLOWLISTS,
    ENV_EXTERNAL_EVENTS,
    ENV_TASK_ROUTES,
    ENV_MAX_LANE_DEPTH,
    ENV_TENANT_INFLIGHT_QUOTA,
    ENV_MAX_TRIGGER_RULES,
    ENV_MAX_WILDCARD_RULES,
    ENV_MAX_WORKFLOWS,
    ENV_BREAKER_TIMEOUTS,
    ENV_BREAKER_OPEN_MS,
    ENV_RETENTION_DAYS,
    ENV_OTLP_ENDPOINT,
    ENV_OTLP_SAMPLE_RATIO,
)


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None or value == "" else value.strip().lower() in ("1", "true", "yes", "on")


class PlatformSettings(BaseModel):
    tasks_table: str = "taskplane-tasks"
    idempotency_table: str = "taskplane-idempotency"
    control_table: str = "taskplane-control"
    queue_urls: dict[str, str] = Field(default_factory=dict)
    dlq_url: str = ""
    #: the triggers' dead-letter queue (EventBridge's, for events it could not put on a lane)
    trigger_dlq_url: str = ""
    trigger_dlq_arn: str = ""
    # Tasks of one tenant are spread over this many partitions (fixed for the life of the table).
    task_buckets: int = Field(default=1, ge=1, le=64)
    retention_days: int = Field(default=30, ge=1, le=3650)
    wheel_table: str = "taskplane-wheel"
    # Wheel shards, each with its own tick lease (fixed for the life of the wheel table).
    wheel_shards: int = Field(default=1, ge=1, le=256)
    schedules_table: str = "taskplane-schedules"
    # Workflows: definitions and the run ledger, the step function the compiled state machines call,
    # the role they run as, the name prefix of every state machine the API creates (its IAM grants
    # depend on it) and, optionally, where executions log.
    workflows_table: str = "taskplane-workflows"
    runs_table: str = "taskplane-runs"
    step_function_arn: str = ""
    state_machine_role_arn: str = ""
    state_machine_prefix: str = "taskplane-wf-"
    state_machine_log_group_arn: str = ""
    # Backpressure: a lane deeper than this answers 429 (0: no limit); a tenant with this many tasks
    # accepted and not ended answers 429 (0: no quota, and no counting writes).
    max_lane_depth: int = Field(default=50_000, ge=0)
    tenant_inflight_quota: int = Field(default=0, ge=0)
    # HTTP targets may reach private, loopback and link-local addresses (never in AWS by default;
    # the local runtime allows them so that demos can call localhost).
    allow_private_http: bool = False
    # Per-target circuit breakers, the defaults of a retry policy's ``breaker``: this many timeouts in
    # a row open one (0: no breakers at all); it stays open breaker_open_ms before one probe may go.
    # The window's error-rate rule keeps the policy's defaults (10 s, 50%, 10 calls).
    breaker_timeouts: int = Field(default=3, ge=0, le=1000)
    # Per-tenant target allow-lists (domain/allowlist.py); a tenant without one is denied every
    # non-builtin target unless targets_allowed_by_default (the local runtime turns it on).
    target_allowlists: dict[str, list[str]] = Field(default_factory=dict)
    targets_allowed_by_default: bool = False
    # Gray release for tasks: per-tenant rules (RouteRule fields) sending tasks to an alias or host.
    task_routes: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    breaker_open_ms: int = Field(default=30_000, ge=1_000, le=3_600_000)
    # The tick function to wake (asynchronously) when an entry lands due before the shard's next
    # check and no tick runs; empty: nobody is woken, the shard's rule finds it within a minute.
    tick_function: str = ""
    # The platform's own event bus (tenants call it "taskplane"); trigger rules are named with this
    # prefix; per tenant, the external buses and sources its triggers may listen to.
    event_bus: str = "taskplane-events"
    trigger_rule_prefix: str = "taskplane-trg-"
    external_events: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    # Each tenant's share of a bus's EventBridge rules (a trigger takes one per pattern; a bus holds 300
    # by default) and of its rules with wildcard filters (30 a bus, not adjustable): one tenant cannot
    # use up the bus every tenant's triggers share.
    max_trigger_rules: int = Field(default=50, ge=0, le=10_000)
    max_wildcard_rules: int = Field(default=3, ge=0, le=30)
    # Each tenant's share of the account's state machines (one per workflow; Step Functions allows
    # 100,000 an account): one tenant cannot use up what every tenant's workflows share.
    max_workflows: int = Field(default=500, ge=0, le=100_000)
    # The bucket of large values (empty: none, and values over the inline limit are refused).
    blob_bucket: str = ""
    blob_url_endpoint: str = ""
    # OTLP export besides EMF (taskplane/otlp.py): where, and the share of traces kept.
    otlp_endpoint: str = ""
    otlp_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("an OTLP endpoint is an http(s) URL such as http://localhost:4318")
            if parts.query or parts.fragment:
                raise ValueError("an OTLP endpoint is a base URL without a query or fragment")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformSettings:
        queue_urls = {
            lane: env[var]
            for lane, var in (
                ("high", ENV_QUEUE_HIGH),
                ("default", ENV_QUEUE_DEFAULT),
                ("low", ENV_QUEUE_LOW),
            )
            if env.get(var)
        }
        defaults = cls()
        return cls(
            tasks_table=env.get(ENV_TASKS_TABLE, defaults.tasks_table),
            idempotency_table=env.get(ENV_IDEMPOTENCY_TABLE, defaults.idempotency_table),
            control_table=env.get(ENV_CONTROL_TABLE, defaults.control_table),
            queue_urls=queue_urls,
            dlq_url=env.get(ENV_DLQ, ""),
            trigger_dlq_url=env.get(ENV_TRIGGER_DLQ_URL, ""),
            trigger_dlq_arn=env.get(ENV_TRIGGER_DLQ_ARN, ""),
            task_buckets=int(env.get(ENV_TASK_BUCKETS, defaults.task_buckets)),
            retention_days=int(env.get(ENV_RETENTION_DAYS, defaults.retention_days)),
            wheel_table=env.get(ENV_WHEEL_TABLE, defaults.wheel_table),
            wheel_shards=int(env.get(ENV_WHEEL_SHARDS, defaults.wheel_shards)),
            schedules_table=env.get(ENV_SCHEDULES_TABLE, defaults.schedules_table),
            workflows_table=env.get(ENV_WORKFLOWS_TABLE, defaults.workflows_table),
            runs_table=env.get(ENV_RUNS_TABLE, defaults.runs_table),
            step_function_arn=env.get(ENV_STEP_FUNCTION_ARN, ""),
            state_machine_role_arn=env.get(ENV_STATE_MACHINE_ROLE_ARN, ""),
            state_machine_prefix=env.get(ENV_STATE_MACHINE_PREFIX, defaults.state_machine_prefix),
            state_machine_log_group_arn=env.get(ENV_STATE_MACHINE_LOG_GROUP_ARN, ""),
            max_lane_depth=int(env.get(ENV_MAX_LANE_DEPTH, defaults.max_lane_depth)),
            tenant_inflight_quota=int(env.get(ENV_TENANT_INFLIGHT_QUOTA, defaults.tenant_inflight_quota)),
            allow_private_http=_flag(env.get(ENV_ALLOW_PRIVATE_HTTP), defaults.allow_private_http),
            breaker_timeouts=int(env.get(ENV_BREAKER_TIMEOUTS, defaults.breaker_timeouts)),
            target_allowlists=json.loads(env.get(ENV_TARGET_ALLOWLISTS) or "{}"),
            task_routes=json.loads(env.get(ENV_TASK_ROUTES) or "{}"),
            targets_allowed_by_default=_flag(
                env.get(ENV_TARGETS_ALLOWED_BY_DEFAULT), defaults.targets_allowed_by_default
            ),
            breaker_open_ms=int(env.get(ENV_BREAKER_OPEN_MS, defaults.breaker_open_ms)),
            tick_function=env.get(ENV_TICK_FUNCTION, ""),
            event_bus=env.get(ENV_EVENT_BUS) or defaults.event_bus,
            trigger_rule_prefix=env.get(ENV_TRIGGER_RULE_PREFIX) or defaults.trigger_rule_prefix,
            external_events=json.loads(env.get(ENV_EXTERNAL_EVENTS) or "{}"),
            max_trigger_rules=int(env.get(ENV_MAX_TRIGGER_RULES) or defaults.max_trigger_rules),
            max_wildcard_rules=int(env.get(ENV_MAX_WILDCARD_RULES) or defaults.max_wildcard_rules),
            max_workflows=int(env.get(ENV_MAX_WORKFLOWS) or defaults.max_workflows),
            blob_bucket=env.get(ENV_BLOB_BUCKET, ""),
            blob_url_endpoint=env.get(ENV_BLOB_URL_ENDPOINT, ""),
            otlp_endpoint=env.get(ENV_OTLP_ENDPOINT) or "",
            otlp_sample_ratio=float(env.get(ENV_OTLP_SAMPLE_RATIO) or defaults.otlp_sample_ratio),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` return these settings (local runtime, CDK)."""
        env = {
            ENV_TASKS_TABLE: self.tasks_table,
            ENV_IDEMPOTENCY_TABLE: self.idempotency_table,
            ENV_CONTROL_TABLE: self.control_table,
            ENV_DLQ: self.dlq_url,
            ENV_TRIGGER_DLQ_URL: self.trigger_dlq_url,
            ENV_TRIGGER_DLQ_ARN: self.trigger_dlq_arn,
            ENV_TASK_BUCKETS: str(self.task_buckets),
            ENV_RETENTION_DAYS: str(self.retention_days),
            ENV_WHEEL_TABLE: self.wheel_table,
            ENV_WHEEL_SHARDS: str(self.wheel_shards),
            ENV_SCHEDULES_TABLE: self.schedules_table,
            ENV_WORKFLOWS_TABLE: self.workflows_table,
            ENV_RUNS_TABLE: self.runs_table,
            ENV_STEP_FUNCTION_ARN: self.step_function_arn,
            ENV_STATE_MACHINE_ROLE_ARN: self.state_machine_role_arn,
            ENV_STATE_MACHINE_PREFIX: self.state_machine_prefix,
            ENV_STATE_MACHINE_LOG_GROUP_ARN: self.state_machine_log_group_arn,
            ENV_MAX_LANE_DEPTH: str(self.max_lane_depth),
            ENV_TENANT_INFLIGHT_QUOTA: str(self.tenant_inflight_quota),
            ENV_ALLOW_PRIVATE_HTTP: "true" if self.allow_private_http else "false",
            ENV_BREAKER_TIMEOUTS: str(self.breaker_timeouts),
            ENV_TARGET_ALLOWLISTS: json.dumps(self.target_allowlists),
            ENV_TARGETS_ALLOWED_BY_DEFAULT: "true" if self.targets_allowed_by_default else "false",
            ENV_TASK_ROUTES: json.dumps(self.task_routes),
            ENV_BREAKER_OPEN_MS: str(self.breaker_open_ms),
            ENV_TICK_FUNCTION: self.tick_function,
            ENV_EVENT_BUS: self.event_bus,
            ENV_TRIGGER_RULE_PREFIX: self.trigger_rule_prefix,
            ENV_EXTERNAL_EVENTS: json.dumps(self.external_events),
            ENV_MAX_TRIGGER_RULES: str(self.max_trigger_rules),
            ENV_MAX_WILDCARD_RULES: str(self.max_wildcard_rules),
            ENV_MAX_WORKFLOWS: str(self.max_workflows),
            ENV_BLOB_BUCKET: self.blob_bucket,
            ENV_BLOB_URL_ENDPOINT: self.blob_url_endpoint,
            ENV_OTLP_ENDPOINT: self.otlp_endpoint,
            ENV_OTLP_SAMPLE_RATIO: repr(self.otlp_sample_ratio),
        }
        for lane, var in (("high", ENV_QUEUE_HIGH), ("default", ENV_QUEUE_DEFAULT), ("low", ENV_QUEUE_LOW)):
            if lane in self.queue_urls:
                env[var] = self.queue_urls[lane]
        return env
