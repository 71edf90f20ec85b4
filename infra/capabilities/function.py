"""One platform function as every capability wants it: arm64 Python, traced, logged, canary-deployed.

Each function gets its own role (its log group and whatever its capability grants, nothing else), its
own log group with a retention, a ``live`` alias that everything invokes, an error-rate alarm on that
alias, and a CodeDeploy deployment group that shifts traffic to a new version and rolls back when any
of its alarms fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.capabilities.layers import ARCHITECTURE, RUNTIME
from infra.config import EnvironmentConfig
from infra.nag import acknowledge
from taskplane.observability import NAMESPACE

ROOT = Path(__file__).resolve().parents[2]

DEPLOYMENT_CONFIGS = {
    "canary_10_percent_5_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "linear_10_percent_every_1_minute": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    "all_at_once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}

R = logs.RetentionDays
#: Days (as ``EnvironmentConfig.log_retention_days`` allows them) -> the CDK enum.
RETENTION = {
    1: R.ONE_DAY, 3: R.THREE_DAYS, 5: R.FIVE_DAYS, 7: R.ONE_WEEK, 14: R.TWO_WEEKS, 30: R.ONE_MONTH,
    60: R.TWO_MONTHS, 90: R.THREE_MONTHS, 120: R.FOUR_MONTHS, 150: R.FIVE_MONTHS, 180: R.SIX_MONTHS,
    365: R.ONE_YEAR,
}  # fmt: skip

#: An alias's error rate (percent) above which its deployment rolls back and operators are paged.
ERROR_RATE_PERCENT = 5
#: ... but only once this many invocations failed in the minute: one error in three calls is noise.
MIN_ERRORS = 3
#: Invocations a minute the api, worker and step functions must see during a deploy for their canary
#: to tell a broken release (every call of the new version fails) from a good one, in at least 9 of
#: 10 deploys; tests/infra computes it from the alarms. Below it a broken release can pass its canary
#: and is caught by the alarms after the deploy instead (docs/DEPLOY.md). The tick's rate is known:
#: one run a minute per shard.
CANARY_TRAFFIC_PER_MINUTE = 60


@dataclass(frozen=True)
class Shared:
    """What every function of one stack shares."""

    cfg: EnvironmentConfig
    layers: list[lambda_.ILayerVersion]
    application: codedeploy.LambdaApplication
    functions_dir: Path
    platform_env: dict[str, str]


def powertools_env(cfg: EnvironmentConfig) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": "taskplane",
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": cfg.log_level,
        # Payloads and results are tenants' data: never copy them into traces or logs.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    }


class PlatformFunction(Construct):
    """``functions/<name>`` as a Lambda function with its ``live`` alias and canary deployment.

    ``error_alarm=False`` for a function whose error rate says nothing a canary could use: the step
    function raises a workflow node's failure so Step Functions can retry and catch it (an error-rate
    alarm would page for tenants' failures and roll good deployments back), and the tick runs once a
    minute per shard (an error *rate* over a minute can never reach ``MIN_ERRORS``). Their
    capabilities attach alarms that can fire instead (``add_rollback_alarm``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: Shared,
        name: str,
        description: str,
        memory_size: int,
        timeout: cdk.Duration,
        reserved_concurrency: int | None = None,
        environment: dict[str, str] | None = None,
        error_alarm: bool = True,
        tracing: lambda_.Tracing = lambda_.Tracing.ACTIVE,
        deployment_config: codedeploy.ILambdaDeploymentConfig | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = shared.cfg
        self.function_name = f"{cfg.prefix}-{name}"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{self.function_name}",
            retention=RETENTION[cfg.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # An own role instead of the default one: no AWSLambdaBasicExecutionRole (logs:* on every
        # log group); this function may write to its own log group only.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.function_name}: its log group plus the grants of its capability",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(
                str(shared.functions_dir / name), exclude=["**/__pycache__", "**/*.pyc"]
            ),
            layers=shared.layers,
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            tracing=tracing,
            environment={**powertools_env(cfg), **shared.platform_env, **(environment or {})},
        )
        self.alias = lambda_.Alias(self, "Live", alias_name="live", version=self.function.current_version)
        self.error_rate_alarm: cw.Alarm | None = None
        if error_alarm:
            self.error_rate_alarm = cw.Alarm(
                self,
                "ErrorRate",
                alarm_name=f"{self.function_name}-error-rate",
                alarm_description=(
                    f"{self.function_name}:live: more than {ERROR_RATE_PERCENT}% of invocations failed "
                    f"(and at least {MIN_ERRORS}) in 2 consecutive minutes; rolls back a deployment in progress"
                ),
                metric=cw.MathExpression(
                    expression=f"IF(errors >= {MIN_ERRORS}, 100 * errors / invocations, 0)",
                    using_metrics={
                        "errors": self.alias.metric_errors(period=cdk.Duration.minutes(1), statistic="Sum"),
                        "invocations": self.alias.metric_invocations(
                            period=cdk.Duration.minutes(1), statistic="Sum"
                        ),
                    },
                    period=cdk.Duration.minutes(1),
                    label=f"{name} error rate (%)",
                ),
                threshold=ERROR_RATE_PERCENT,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
        self.alarms: list[cw.IAlarm] = [self.error_rate_alarm] if self.error_rate_alarm else []
        self.deployment = codedeploy.LambdaDeploymentGroup(
            self,
            "Deployment",
            application=shared.application,
            deployment_group_name=self.function_name,
            alias=self.alias,
            deployment_config=deployment_config or DEPLOYMENT_CONFIGS[cfg.deployment],
            alarms=list(self.alarms),
            # Rolling back on alarms is switched on even before an alarm is attached: capabilities add
            # theirs afterwards (add_rollback_alarm), and tests/infra requires at least one per group.
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "only actions that take no resource: X-Ray trace writes (and log delivery set-up for state machines); "
            "tests/infra fails on any data action granted on *",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 is the runtime the platform targets; the dependency layer's wheels are built for cp312",
        )
        acknowledge(
            self.deployment,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
            "AWS's own least-privilege policy for CodeDeploy shifting Lambda alias traffic",
        )

    def add_rollback_alarm(self, alarm: cw.IAlarm) -> None:
        """Roll a deployment of this function back when ``alarm`` fires too."""
        self.deployment.add_alarm(alarm)
        self.alarms.append(alarm)
