"""The timing wheel's tick: ``functions/tick``, invoked by an EventBridge ``rate(1 minute)`` rule per
shard and woken by the functions that write wheel entries due soon.

One rule per shard rather than one fan-out function: scheduled rules cost nothing, each shard's tick
fails and retries on its own, and there is no extra hop adding lateness. A rule sends
``{"shard": i}`` (what ``functions/tick/handler.py`` reads); the lease in the control table keeps a
late or retried invocation from running a shard twice.

The tick runs only while something is due soon (services/tick.py): an invocation with nothing due
within the idle horizon, or whose shard another tick holds for a while yet, ends within tens of
milliseconds. So the rule is a cheap check a minute per shard when idle (about $0.07 a month per
shard, see bench/pricing.py ``idle``), and writers of an entry due before the next check (the api,
the worker, the tick itself for its successor) wake it with an asynchronous invoke of its ``live``
alias (``TASKPLANE_TICK_FUNCTION``, an ARN built from the function's name: the tick's own environment
names it without a reference cycle). Busy, a tick runs up to ``TICK_SPAN_MS`` (5 minutes) and wakes
its successor, which waits for the lease: 6 minutes of timeout cover the span and the hand-over.

Memory: a busy tick holds its shard's due entries in an in-memory heap and sends each batch on time,
mostly waiting for the next due time: 256 MB (a seventh of a vCPU) sends about 600 tasks a second
(bench/capacity.py), and a tick that runs all day at a million tasks a day costs half what 512 MB
would; ``tick_memory_mb`` raises it for busier shards (or add shards). It reads no windowed trigger's
window (it sends a window's end to its lane; the worker closes the window), so no window's size
weighs on its memory, and it has no access to the bucket. Reserved concurrency
(optional) keeps ticks from being throttled by a burst of workers: a throttled tick is late work for
every tenant.

Canary: the rule invokes the tick ``shards`` times a minute (busy or idle), so the platform's 10%
canary would send a new version 0.1 x shards runs a minute, about two in a 5-minute canary of a
four-shard environment and likely none in a one-shard one: no alarm can judge a version that never
runs. The tick's canary therefore shifts :data:`TICK_CANARY_PERCENT` of the runs for the same
interval, and its deployment rolls back on ``tick-errors`` (any failed run in a minute; a tick
should never fail) and ``tick-lag``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.capabilities.function import PlatformFunction, Shared
from infra.capabilities.queues import Queues
from infra.capabilities.storage import SCHEDULES, WHEEL_CONTROL, Storage, grant_items, task_items
from infra.config import EnvironmentConfig
from taskplane.observability import NAMESPACE

MINUTE = cdk.Duration.minutes(1)
#: The tick's function timeout: its longest span (functions/tick/handler.py TICK_SPAN_MS, 5 minutes)
#: plus the hand-over margin and a wait for its predecessor's lease.
TICK_TIMEOUT = cdk.Duration.minutes(6)
#: The count the tick emits for every entry it sends more than ``Ticker.late_after_ms`` (1 s) late.
DISPATCHED_LATE_METRIC = "dispatched_late"
#: Share of tick runs a canary sends to the new version (see the module's docstring).
TICK_CANARY_PERCENT = 50
#: Minutes of the tick's canary, as the platform's other canaries.
TICK_CANARY_MINUTES = 5


def tick_deployment_config(
    scope: Construct, cfg: EnvironmentConfig
) -> codedeploy.ILambdaDeploymentConfig | None:
    """The tick's own canary when the environment deploys by canary (None: the environment's choice)."""
    if not cfg.deployment.startswith("canary_"):
        return None  # linear shifting reaches every run within minutes; all-at-once has no canary
    return codedeploy.LambdaDeploymentConfig(
        scope,
        "TickCanary",
        traffic_routing=codedeploy.TimeBasedCanaryTrafficRouting(
            interval=cdk.Duration.minutes(TICK_CANARY_MINUTES), percentage=TICK_CANARY_PERCENT
        ),
    )


def tick_name(cfg: EnvironmentConfig) -> str:
    return f"{cfg.prefix}-tick"


def tick_alias_arn(stack: cdk.Stack, cfg: EnvironmentConfig) -> str:
    """The ARN of the tick's ``live`` alias, built from its name (no reference to the function, so
    every function's environment, the tick's own included, may carry it)."""
    return stack.format_arn(
        service="lambda",
        resource="function",
        resource_name=f"{tick_name(cfg)}:live",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def settings_fields(stack: cdk.Stack, cfg: EnvironmentConfig) -> dict[str, int | str]:
    """``PlatformSettings`` values this capability decides."""
    return {"wheel_shards": cfg.shards, "tick_function": tick_alias_arn(stack, cfg)}


def grant_wake(role: iam.IRole, stack: cdk.Stack, cfg: EnvironmentConfig) -> None:
    """Let ``role`` wake the tick (invoke its ``live`` alias; asynchronously, by the code)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[tick_alias_arn(stack, cfg)])
    )


def tick_input(shard: int) -> dict[str, int]:
    """The event a shard's rule sends to the tick function."""
    return {"shard": shard}


#: Dimensions of the tick's per-shard gauges (taskplane.observability.MetricsBuffer.shard_gauges).
SHARD_DIMENSIONS = "service,shard"


def per_shard(metric_name: str, stat: str = "Average") -> cw.MathExpression:
    """One line per wheel shard of a per-shard gauge (``wheel_weight``, ``wheel_lag_ms``): a SEARCH,
    so shards added or removed by a reshard show without a deploy of the dashboard."""
    return cw.MathExpression(
        expression=f"SEARCH('{{{NAMESPACE},{SHARD_DIMENSIONS}}} MetricName=\"{metric_name}\"', '{stat}', 60)",
        label="",
        period=MINUTE,
        using_metrics={},
    )


def late_dispatches(label: str) -> cw.MathExpression:
    """Wheel entries dispatched late, summed over tenants and lanes (a Metrics Insights query)."""
    return cw.MathExpression(
        expression=(
            f'SELECT SUM({DISPATCHED_LATE_METRIC}) FROM SCHEMA("{NAMESPACE}", lane, service, target_type, tenant) '
            "WHERE target_type = 'wheel'"
        ),
        label=label,
        period=MINUTE,
        using_metrics={},
    )


class Scheduler(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, shared: Shared, storage: Storage, queues: Queues
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = shared.cfg
        self.fn = PlatformFunction(
            self,
            "Tick",
            shared=shared,
            name="tick",
            description="taskplane tick: dispatches due tasks from the timing wheel to the SQS lanes",
            memory_size=cfg.tick_memory_mb,
            timeout=TICK_TIMEOUT,
            reserved_concurrency=cfg.reserved_concurrency.tick,
            # The rule's check a minute would be a trace a minute (43,800 a month a shard, ~$0.22)
            # of a function that mostly only looks: it is traced when its caller traces.
            tracing=lambda_.Tracing.PASS_THROUGH,
            error_alarm=False,
            deployment_config=tick_deployment_config(self, cfg),
        )
        role = self.fn.role
        # The tick reads and writes items; it never deletes one nor writes in batches. In the shared
        # tables it reaches only the kinds it uses (storage.Items: dynamodb:LeadingKeys): in the control
        # table the shard's lease, resume point and the ring, not breakers, sketches or in-flight
        # counts; a schedule's fire creates its task and moves the schedule to its next fire time, and
        # reaches no trigger, dead letter or trigger window.
        grant_items(storage.wheel, role)
        grant_items(storage.control, role, items=WHEEL_CONTROL)
        grant_items(storage.schedules, role, items=SCHEDULES)
        grant_items(storage.tasks, role, items=task_items(cfg.task_buckets))
        for queue in queues.lanes.values():
            queue.grant(role, "sqs:SendMessage")
        # A busy tick wakes its successor before its span ends.
        grant_wake(role, cdk.Stack.of(self), cfg)

        # A failed tick is superseded by the next minute's, which resumes from the saved point:
        # Lambda's own asynchronous retries (two, up to 6 h later by default) would only pile up.
        # The same holds for wakes (asynchronous invokes): one older than 2 minutes is dropped.
        self.fn.alias.configure_async_invoke(retry_attempts=0, max_event_age=cdk.Duration.minutes(2))
        self.rules = [
            events.Rule(
                self,
                f"Shard{shard}",
                rule_name=f"{cfg.prefix}-tick-{shard}",
                description=f"taskplane tick for wheel shard {shard} of {cfg.shards}",
                schedule=events.Schedule.rate(MINUTE),
                targets=[
                    targets.LambdaFunction(
                        self.fn.alias,
                        event=events.RuleTargetInput.from_object(tick_input(shard)),
                        # A late tick still helps (it resumes from the saved point); one later than
                        # the next minute's is superseded by it.
                        retry_attempts=2,
                        max_event_age=cdk.Duration.minutes(2),
                    )
                ],
            )
            for shard in range(cfg.shards)
        ]
        #: Entries sent more than 1 s after they were due (the alarm and the dashboard use it).
        self.late = late_dispatches("wheel entries dispatched > 1 s late")
        #: Tick invocations per minute: every shard's rule fires once a minute.
        self.invocations = self.fn.alias.metric_invocations(
            period=MINUTE, statistic="Sum", label="tick invocations"
        )
        # A tick never fails by design (a lost lease or a slow target is a normal outcome): one failed
        # run in a minute is a broken tick, and at one run a minute per shard it is the only error
        # signal that can fire inside a canary.
        self.errors_alarm = cw.Alarm(
            self,
            "Errors",
            alarm_name=f"{cfg.prefix}-tick-errors",
            alarm_description=(
                f"{self.fn.function_name}:live failed at least once in a minute (timeouts included): a shard's "
                "due work waits for the next run; rolls back a tick deployment in progress"
            ),
            metric=self.fn.alias.metric_errors(period=MINUTE, statistic="Sum"),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.fn.add_rollback_alarm(self.errors_alarm)
