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
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.capabilities.function import PlatformFunction, Shared
from infra.capabilities.queues import Queues
from infra.capabilities.storage import Storage
from infra.config import EnvironmentConfig
from taskplane.observability import NAMESPACE

MINUTE = cdk.Duration.minutes(1)
#: The count the tick emits for every entry it sends more than ``Ticker.late_after_ms`` (1 s) late.
DISPATCHED_LATE_METRIC = "dispatched_late"


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
        )
        role = self.fn.role
        storage.wheel.grant_read_write_data(role)
        storage.control.grant_read_write_data(role)  # the shard's lease and resume point
        # A schedule's fire creates its task and moves the schedule to its next fire time.
        storage.schedules.grant_read_write_data(role)
        storage.tasks.grant_read_write_data(role)
        for queue in queues.lanes.values():
            queue.grant_send_messages(role)

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
