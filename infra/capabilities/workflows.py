"""DAG workflows on Step Functions: ``functions/step``, the state machines' role, and the API's rights.

Deployed when ``functions/step/handler.py`` exists (the stack checks). The state machines themselves
are not in this template: the API compiles each workflow version to ASL and creates, updates,
versions and aliases them at run time. So this construct gives

- the step function (runs one node's target, writes the run ledger);
- one execution role for every state machine (invoke the step function, log, trace), which the API
  passes to Step Functions;
- the API the right to manage only state machines named ``<prefix>-wf-*`` (and their versions,
  aliases and executions), and to pass only that role, only to Step Functions.

Memory and timeout: like the worker (a node's target is called the same way, up to 900 s).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.capabilities.api import Api
from infra.capabilities.function import RETENTION, PlatformFunction, Shared
from infra.capabilities.queues import WORKER_TIMEOUT
from infra.capabilities.storage import BREAKERS_AND_SKETCHES, VERSIONS, Storage, grant_items, grant_on_items
from infra.capabilities.targets import grant_task_targets
from infra.config import EnvironmentConfig
from infra.nag import acknowledge, iam5_resource
from taskplane.observability import NAMESPACE

#: What functions/step counts for a task that failed through the platform's fault (not the target's).
PLATFORM_ERRORS_METRIC = "step_platform_errors"


def state_machine_prefix(prefix: str) -> str:
    """Every state machine the API creates is named with this prefix (the API's IAM depends on it)."""
    return f"{prefix}-wf-"


def role_name(prefix: str, region: str) -> str:
    """The state machines' role. IAM names are global to the account, so the name carries the region:
    the same environment in two regions of one account must not collide (64 characters at most:
    a 32-character prefix, ``-workflows-`` and the longest region fit)."""
    return f"{prefix}-workflows-{region}"


def log_group_name(prefix: str) -> str:
    return f"/aws/vendedlogs/states/{prefix}-workflows"


def settings_fields(stack: cdk.Stack, cfg: EnvironmentConfig) -> dict[str, str]:
    """Candidates for ``PlatformSettings`` (the stack keeps the ones that are fields).

    ARNs are built from names, not references, so every function can get the same environment
    (the step function's own ARN in its environment would otherwise be a circular reference).
    """
    return {
        "state_machine_prefix": state_machine_prefix(cfg.prefix),
        "state_machine_role_arn": stack.format_arn(
            service="iam", region="", resource="role", resource_name=role_name(cfg.prefix, stack.region)
        ),
        "step_function_arn": stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=f"{cfg.prefix}-step:live",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        ),
        "state_machine_log_group_arn": stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{log_group_name(cfg.prefix)}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        ),
    }


class Workflows(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, shared: Shared, storage: Storage, api: Api
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = shared.cfg
        stack = cdk.Stack.of(self)
        self.fn = PlatformFunction(
            self,
            "Step",
            shared=shared,
            name="step",
            description="taskplane step: runs one workflow node's target and records it in the run ledger",
            memory_size=512,
            timeout=WORKER_TIMEOUT,
            reserved_concurrency=cfg.reserved_concurrency.step,
            # Its errors are workflow nodes' failures, raised for Step Functions' Retry and Catch.
            error_alarm=False,
        )
        # The step function reads a version's definition and writes the run ledger (a node's needs'
        # outputs are one BatchGetItem).
        # (versions only, not the workflows' current records).
        grant_on_items(storage.tables["workflows"], self.fn.role, ["dynamodb:GetItem"], VERSIONS)
        grant_items(storage.tables["runs"], self.fn.role, batch_get=True)
        # Nodes' circuit breakers and duration sketches (timeout_s "auto"), as the worker's; nothing
        # else of the control table (leases, the ring, in-flight counts).
        grant_items(storage.control, self.fn.role, batch_get=True, items=BREAKERS_AND_SKETCHES)
        grant_task_targets(self.fn.role, cfg)
        # Its Lambda errors are mostly tenants' failing targets, so the canary watches the platform's
        # own failures instead: one in a minute is a bug, an unreachable table or a missing grant.
        self.platform_errors_alarm = cw.Alarm(
            self,
            "PlatformErrors",
            alarm_name=f"{cfg.prefix}-step-platform-errors",
            alarm_description=(
                f"{self.fn.function_name} failed a workflow task through the platform's own fault (not the "
                "node's target) at least once in a minute; rolls back a step deployment in progress"
            ),
            metric=cw.MathExpression(
                expression=(
                    f'SELECT SUM({PLATFORM_ERRORS_METRIC}) FROM SCHEMA("{NAMESPACE}", lane, service, '
                    "target_type, tenant) WHERE target_type = 'platform'"
                ),
                label="step platform errors",
                period=cdk.Duration.minutes(1),
                using_metrics={},
            ),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.fn.add_rollback_alarm(self.platform_errors_alarm)

        machines = state_machine_prefix(cfg.prefix)
        machine_arns = [
            # the machine, and its versions and aliases (<machine ARN>:<version or alias>)
            stack.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=f"{machines}*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            ),
        ]
        execution_arns = [
            stack.format_arn(
                service="states",
                resource="execution",
                resource_name=f"{machines}*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
        ]
        # The step function may answer callback tokens (.waitForTaskToken) of its own machines.
        self.fn.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TaskTokens",
                actions=["states:SendTaskSuccess"],
                resources=machine_arns,
            )
        )

        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=log_group_name(cfg.prefix),
            retention=RETENTION[cfg.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "StateMachineRole",
            role_name=role_name(cfg.prefix, stack.region),
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="execution role of every taskplane workflow state machine",
        )
        self.fn.alias.grant_invoke(self.role)
        self.role.add_to_policy(log_delivery())
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="Tracing",
                actions=[
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                resources=["*"],
            )
        )

        api_role = api.fn.role
        for name in ("workflows", "runs"):
            grant_items(storage.tables[name], api_role)
        api_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManageWorkflowStateMachines",
                actions=[
                    "states:CreateStateMachine",
                    "states:UpdateStateMachine",
                    "states:DescribeStateMachine",
                    "states:PublishStateMachineVersion",
                    "states:ListStateMachineVersions",
                    "states:DeleteStateMachineVersion",
                    "states:CreateStateMachineAlias",
                    "states:UpdateStateMachineAlias",
                    "states:StartExecution",
                    "states:ListExecutions",
                    "states:TagResource",
                ],
                resources=machine_arns,
            )
        )
        api_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WorkflowExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=execution_arns,
            )
        )
        # Creating a state machine with logging sets up a log delivery as the caller, too.
        api_role.add_to_principal_policy(log_delivery())
        api_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassWorkflowRole",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}},
            )
        )
        self._acknowledge(cfg, api_role)

    def _acknowledge(self, cfg: EnvironmentConfig, api_role: iam.IRole) -> None:
        machines = state_machine_prefix(cfg.prefix)
        arn = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:{kind}:" + machines + "*"
        reason = "the API creates workflow state machines at run time; grants stop at their name prefix"
        acknowledge(self.fn.role, iam5_resource(arn.format(kind="stateMachine")), reason)
        for kind in ("stateMachine", "execution"):
            acknowledge(api_role, iam5_resource(arn.format(kind=kind)), reason)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "log delivery set-up and X-Ray trace writes take no resource; the role can invoke only the step alias",
        )


def log_delivery() -> iam.PolicyStatement:
    """What Step Functions needs to set up vended log delivery; none of these actions takes a resource."""
    return iam.PolicyStatement(
        sid="StateMachineLogDelivery",
        actions=[
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        ],
        resources=["*"],
    )
