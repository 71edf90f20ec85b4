"""The timing wheel's tick: ``functions/tick`` on an EventBridge ``rate(1 minute)`` rule per shard.

One rule per shard rather than one fan-out function: scheduled rules cost nothing, each shard's tick
fails and retries on its own, and there is no extra hop adding lateness. A rule sends
``{"shard": i}`` (what ``functions/tick/handler.py`` reads); the lease in the control table keeps a
late or retried invocation from running a shard twice.

Memory and timeout: a tick holds its shard's due entries in an in-memory heap and sends each batch on
time for about a minute (``TICK_SPAN_MS``), every minute, busy or idle: it is the platform's one
always-running cost (GB-seconds x 62 s x 43,200 runs a month per shard, about $18 per shard-month at
512 MB on arm64). 512 MB (about a third of a vCPU) covers sending on the order of a thousand tasks a
second from four sender threads; ``tick_memory_mb`` raises it for busier shards. 2 minutes covers
the span, loading the slot and the hand-over margin. Reserved concurrency (optional) keeps ticks from
being throttled by a burst of workers: a throttled tick is late work for every tenant.

Canary: the tick runs ``shards`` times a minute, so the platform's 10% canary would send a new version
0.1 x shards runs a minute, about two in a 5-minute canary of a four-shard environment and likely none
in a one-shard one: no alarm can judge a version that never runs. The tick's canary therefore shifts
:data:`TICK_CANARY_PERCENT` of the runs for the same interval, and its deployment rolls back on
``tick-errors`` (any failed run in a minute; a tick should never fail) and ``tick-lag``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.capabilities.function import PlatformFunction, Shared
from infra.capabilities.queues import Queues
from infra.capabilities.storage import Storage, grant_items
from infra.config import EnvironmentConfig
from taskplane.observability import NAMESPACE

MINUTE = cdk.Duration.minutes(1)
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


def settings_fields(cfg: EnvironmentConfig) -> dict[str, int]:
    """``PlatformSettings`` values this capability decides."""
    return {"wheel_shards": cfg.shards}


def tick_input(shard: int) -> dict[str, int]:
    """The event a shard's rule sends to the tick function."""
    return {"shard": shard}


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
            timeout=cdk.Duration.minutes(2),
            reserved_concurrency=cfg.reserved_concurrency.tick,
            error_alarm=False,
            deployment_config=tick_deployment_config(self, cfg),
        )
        role = self.fn.role
        # The tick reads and writes items; it never deletes one nor writes in batches.
        grant_items(storage.wheel, role)
        grant_items(storage.control, role)  # the shard's lease and resume point
        # A schedule's fire creates its task and moves the schedule to its next fire time.
        grant_items(storage.schedules, role)
        grant_items(storage.tasks, role)
        for queue in queues.lanes.values():
            queue.grant(role, "sqs:SendMessage")

        # A failed tick is superseded by the next minute's, which resumes from the saved point:
        # Lambda's own asynchronous retries (two, up to 6 h later by default) would only pile up.
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
