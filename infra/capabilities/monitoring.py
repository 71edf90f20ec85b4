"""The operators' view: one CloudWatch dashboard and the alarms that page, through one SNS topic.

Alarms: the DLQ is not empty; the triggers' DLQ is not empty (events EventBridge could not put on a
lane); a function's error rate (made by each ``PlatformFunction``, which also
rolls its deployments back); the API's 5xx rate (rolls the api function back too); tick errors, tick
lag (wheel entries dispatched late) and ticks that stopped running; the step function's own failures.
The platform's own metrics are Powertools EMF documents with the dimensions (service, tenant,
target_type, lane), so the dashboard sums them with SEARCH expressions.

Delivery: a topic policy replaces SNS's default one, and ``enforce_ssl`` writes one holding only the
TLS Deny, so the topic's policy also allows ``cloudwatch.amazonaws.com`` to publish, for this
account's alarms of this stack only (``aws:SourceAccount`` and the alarms' ARNs). People get the
alarms through ``alarm_email`` (an e-mail subscription) and/or ``alarm_topic_arn`` (an existing topic
every alarm also notifies).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.capabilities.function import ERROR_RATE_PERCENT, MIN_ERRORS, PlatformFunction
from infra.capabilities.queues import Queues
from infra.capabilities.scheduler import Scheduler, late_dispatches, per_shard
from infra.config import EnvironmentConfig
from taskplane.observability import NAMESPACE
from taskplane.settings import LANES

MINUTE = cdk.Duration.minutes(1)
#: Dimensions of every taskplane EMF metric (see taskplane.observability.MetricsBuffer).
EMF_DIMENSIONS = "lane,service,target_type,tenant"


def emf_total(
    metric_name: str, label: str, *, lane: str | None = None, stat: str = "Sum"
) -> cw.MathExpression:
    """The sum over every tenant and target type (and lane, unless one is given) of a platform metric."""
    where = f' lane="{lane}"' if lane else ""
    search = f"SEARCH('{{{NAMESPACE},{EMF_DIMENSIONS}}} MetricName=\"{metric_name}\"{where}', '{stat}', 60)"
    return cw.MathExpression(expression=f"SUM({search})", label=label, period=MINUTE, using_metrics={})


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        functions: Sequence[PlatformFunction],
        queues: Queues,
        rest_api: apigw.RestApi,
        api_function: PlatformFunction,
        scheduler: Scheduler,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            topic_name=f"{cfg.prefix}-alarms",
            display_name=f"taskplane {cfg.name} alarms",
            enforce_ssl=True,
        )
        if cfg.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(cfg.alarm_email))
        #: Topics every alarm notifies: the stack's own, and the environment's existing one if any.
        self.topics: list[sns.ITopic] = [self.topic]
        if cfg.alarm_topic_arn:
            self.topics.append(sns.Topic.from_topic_arn(self, "ExistingAlarmTopic", cfg.alarm_topic_arn))
        if not (cfg.alarm_email or cfg.alarm_topic_arn):
            cdk.Annotations.of(self).add_warning_v2(
                "taskplane:alarms-reach-nobody",
                f"environment {cfg.name!r} sets neither alarm_email nor alarm_topic_arn: its alarms notify a "
                "topic nobody is subscribed to (see docs/DEPLOY.md, 'Alarms')",
            )

        self.dlq_alarm = self._not_empty(
            "DeadLetters",
            queues.dlq,
            f"{cfg.prefix}-dlq-not-empty",
            "Tasks failed for good or lane messages could not be processed: see GET /v1/dead-letters",
        )
        self.trigger_dlq_alarm = self._not_empty(
            "TriggerDeadLetters",
            queues.trigger_dlq,
            f"{cfg.prefix}-trigger-dlq-not-empty",
            "EventBridge could not put trigger events on their lanes (a queue policy, a key, a quota, "
            "an event too large for SQS) and kept them in the triggers' DLQ: fix the cause, then list "
            "and redrive them (docs/DEPLOY.md, 'Triggers' dead letters')",
        )
        server_errors = rest_api.metric_server_error(period=MINUTE, statistic="Sum")
        requests = rest_api.metric_count(period=MINUTE, statistic="Sum")
        self.api_5xx_alarm = cw.Alarm(
            self,
            "Api5xx",
            alarm_name=f"{cfg.prefix}-api-5xx-rate",
            alarm_description=(
                f"More than {ERROR_RATE_PERCENT}% of API requests answered 5xx in 2 consecutive minutes "
                "(the contract allows none for any input); rolls back an api deployment in progress"
            ),
            metric=cw.MathExpression(
                expression=f"IF(e >= {MIN_ERRORS}, 100 * e / n, 0)",
                using_metrics={"e": server_errors, "n": requests},
                period=MINUTE,
                label="API 5xx rate (%)",
            ),
            threshold=ERROR_RATE_PERCENT,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        api_function.add_rollback_alarm(self.api_5xx_alarm)

        alarms: list[cw.Alarm] = [self.dlq_alarm, self.trigger_dlq_alarm]
        # Every function's rollback alarms (error rates, tick errors, the step's platform errors, 5xx).
        for fn in functions:
            alarms += [a for a in fn.alarms if isinstance(a, cw.Alarm) and a not in alarms]
        # Tick lag: the tick counts every entry it sends more than 1 s after it was due. Two
        # minutes in a row of late dispatches is a tick that cannot keep up (or ran late).
        self.tick_lag_alarm = cw.Alarm(
            self,
            "TickLag",
            alarm_name=f"{cfg.prefix}-tick-lag",
            alarm_description=(
                "Wheel entries were dispatched more than 1 s after they were due in 2 consecutive minutes: "
                "delayed tasks and schedules run late"
            ),
            metric=scheduler.late,
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        scheduler.fn.add_rollback_alarm(self.tick_lag_alarm)
        self.tick_stopped_alarm = self._tick_stopped(cfg, scheduler)
        alarms += [self.tick_lag_alarm, self.tick_stopped_alarm]
        actions = [cw_actions.SnsAction(topic) for topic in self.topics]
        for alarm in alarms:
            alarm.add_alarm_action(*actions)
            alarm.add_ok_action(*actions)
        # A stopped tick reports nothing at all, which this alarm shows as INSUFFICIENT_DATA: notify it.
        self.tick_stopped_alarm.add_insufficient_data_action(*actions)
        self.alarms = alarms
        self._allow_alarms_to_publish(alarms)

        self.dashboard = self._dashboard(cfg, functions, queues, rest_api, alarms, scheduler)

    def _tick_stopped(self, cfg: EnvironmentConfig, scheduler: Scheduler) -> cw.Alarm:
        """Ticks that stopped running (a shard's rule, or all of them), quiet on a fresh stack.

        A tick that does not run lags without bound and reports nothing, so the alarm counts runs:
        fewer than one per shard in each of 5 minutes in a row is a shard that stopped. Missing data
        is left *missing*: a fresh stack has no datapoint yet and the alarm stays INSUFFICIENT_DATA,
        the state it is created in, so nothing is sent (actions run on a change of state). Once the
        ticks have run, the alarm is OK; if every tick stops, the whole evaluation range goes missing
        and the alarm moves to INSUFFICIENT_DATA, which notifies like ALARM does. Treating missing
        data as breaching instead would page on every fresh stack for its first minutes; treating
        it as not breaching would hide a complete stop.
        """
        return cw.Alarm(
            self,
            "TickStopped",
            alarm_name=f"{cfg.prefix}-tick-stopped",
            alarm_description=(
                f"Fewer than {cfg.shards} tick runs a minute (one per shard) for 5 minutes in a row; "
                "INSUFFICIENT_DATA here means no tick ran at all: delayed tasks and schedules are not dispatched"
            ),
            metric=scheduler.fn.alias.metric_invocations(period=MINUTE, statistic="Sum"),
            threshold=cfg.shards,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=5,
            datapoints_to_alarm=5,
            treat_missing_data=cw.TreatMissingData.MISSING,
        )

    def _not_empty(self, construct_id: str, queue: sqs.IQueue, name: str, description: str) -> cw.Alarm:
        """An alarm on a dead-letter queue's first message (each one waits for a person)."""
        return cw.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=queue.metric_approximate_number_of_messages_visible(period=MINUTE, statistic="Maximum"),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _allow_alarms_to_publish(self, alarms: Sequence[cw.Alarm]) -> None:
        """CloudWatch may publish to the stack's topic, for these alarms of this account only."""
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account},
                    "ArnLike": {"aws:SourceArn": [alarm.alarm_arn for alarm in alarms]},
                },
            )
        )

    def _dashboard(
        self,
        cfg: EnvironmentConfig,
        functions: Sequence[PlatformFunction],
        queues: Queues,
        rest_api: apigw.RestApi,
        alarms: Sequence[cw.Alarm],
        scheduler: Scheduler,
    ) -> cw.Dashboard:
        board = cw.Dashboard(self, "Dashboard", dashboard_name=f"{cfg.prefix}-platform")
        board.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=3),
        )
        board.add_widgets(
            cw.GraphWidget(
                title="Submissions per lane (tasks/min)",
                left=[emf_total("submitted", lane, lane=lane) for lane in LANES],
                width=8,
            ),
            cw.GraphWidget(
                title="Outcomes (tasks/min)",
                left=[
                    emf_total("succeeded", "succeeded"),
                    emf_total("retried", "retried"),
                    emf_total("failed", "failed"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Target call duration (ms, max over tenants)",
                left=[
                    cw.MathExpression(
                        expression=(
                            f"MAX(SEARCH('{{{NAMESPACE},{EMF_DIMENSIONS}}} MetricName=\"duration\"', '{stat}', 60))"
                        ),
                        label=stat,
                        period=MINUTE,
                        using_metrics={},
                    )
                    for stat in ("p50", "p99")
                ],
                width=8,
            ),
        )
        lateness: list[cw.IMetric] = [
            q.metric_approximate_age_of_oldest_message(
                period=MINUTE, statistic="Maximum", label=f"{lane} oldest (s)"
            )
            for lane, q in queues.lanes.items()
        ]
        board.add_widgets(
            cw.GraphWidget(
                title="Queue depth per lane (visible + in flight)",
                left=[
                    cw.MathExpression(
                        expression=f"visible_{lane} + inflight_{lane}",
                        using_metrics={
                            f"visible_{lane}": q.metric_approximate_number_of_messages_visible(
                                period=MINUTE, statistic="Maximum"
                            ),
                            f"inflight_{lane}": q.metric_approximate_number_of_messages_not_visible(
                                period=MINUTE, statistic="Maximum"
                            ),
                        },
                        label=lane,
                        period=MINUTE,
                    )
                    for lane, q in queues.lanes.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Dispatch lateness: oldest waiting delivery per lane (s); late wheel dispatches (right)",
                left=lateness,
                right=[late_dispatches("dispatched > 1 s late")],
                width=8,
            ),
            cw.GraphWidget(
                title="Dead letters (DLQ depth; triggers' DLQ depth)",
                left=[
                    queues.dlq.metric_approximate_number_of_messages_visible(
                        period=MINUTE, statistic="Maximum", label="tasks"
                    ),
                    queues.trigger_dlq.metric_approximate_number_of_messages_visible(
                        period=MINUTE, statistic="Maximum", label="trigger events"
                    ),
                ],
                width=8,
            ),
        )
        board.add_widgets(
            cw.GraphWidget(
                title="Lambda errors",
                left=[fn.function.metric_errors(period=MINUTE, label=fn.function_name) for fn in functions],
                width=6,
            ),
            cw.GraphWidget(
                title="Lambda throttles",
                left=[
                    fn.function.metric_throttles(period=MINUTE, label=fn.function_name) for fn in functions
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Lambda duration p99 (ms)",
                left=[
                    fn.function.metric_duration(period=MINUTE, statistic="p99", label=fn.function_name)
                    for fn in functions
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Lambda concurrent executions",
                left=[
                    fn.function.metric(
                        "ConcurrentExecutions", period=MINUTE, statistic="Maximum", label=fn.function_name
                    )
                    for fn in functions
                ],
                width=6,
            ),
        )
        api_widgets: list[cw.IWidget] = [
            cw.GraphWidget(
                title="API requests, 4xx, 5xx",
                left=[
                    rest_api.metric_count(period=MINUTE, statistic="Sum", label="requests"),
                    rest_api.metric_client_error(period=MINUTE, statistic="Sum", label="4xx"),
                    rest_api.metric_server_error(period=MINUTE, statistic="Sum", label="5xx"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="API latency (ms)",
                left=[rest_api.metric_latency(period=MINUTE, statistic=s, label=s) for s in ("p50", "p99")],
                width=6,
            ),
            cw.GraphWidget(
                title="Tick lag: runs per minute (one per shard) and late wheel dispatches",
                left=[scheduler.invocations],
                right=[late_dispatches("dispatched > 1 s late")],
                width=6,
            ),
        ]
        board.add_widgets(*api_widgets)
        board.add_widgets(
            cw.GraphWidget(
                title="Wheel shards: weight on the ring (lowered while a shard's tick lags; 0 = draining)",
                left=[per_shard("wheel_weight")],
                left_y_axis=cw.YAxisProps(min=0, max=1),
                width=12,
            ),
            cw.GraphWidget(
                title="Wheel shards: tick lag (ms, the most an entry left after its send time)",
                left=[per_shard("wheel_lag_ms", "Maximum")],
                width=12,
            ),
        )
        return board
