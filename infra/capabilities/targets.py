"""What task targets the platform may call: the same allow-list for the worker and the step function."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from infra.config import EnvironmentConfig
from infra.nag import acknowledge, iam5_resource


def target_arns(stack: cdk.Stack, cfg: EnvironmentConfig) -> dict[str, list[str]]:
    """IAM resources for ``lambda:InvokeFunction``, ``sqs:SendMessage`` and ``events:PutEvents``."""
    allow = cfg.targets
    return {
        "lambda:InvokeFunction": [
            _arn(stack, "lambda", "function", cfg.expand(n), cdk.ArnFormat.COLON_RESOURCE_NAME)
            for n in allow.lambda_functions
        ],
        "sqs:SendMessage": [_arn(stack, "sqs", None, cfg.expand(n), None) for n in allow.sqs_queues],
        "events:PutEvents": [
            _arn(stack, "events", "event-bus", cfg.expand(n), cdk.ArnFormat.SLASH_RESOURCE_NAME)
            for n in allow.event_buses
        ],
    }


def grant_task_targets(role: iam.IRole, cfg: EnvironmentConfig) -> None:
    """Only the Lambda functions, queues and buses the environment allows as task targets."""
    for sid, (action, resources) in zip(
        ("LambdaTargets", "SqsTargets", "EventBridgeTargets"),
        target_arns(cdk.Stack.of(role), cfg).items(),
        strict=True,
    ):
        role.add_to_principal_policy(iam.PolicyStatement(sid=sid, actions=[action], resources=resources))
    for pattern in nag_patterns(cfg):
        acknowledge(
            role,
            iam5_resource(pattern),
            "task targets are named by tenants at run time; the allow-list in cdk.json bounds them to this name prefix",
        )


def nag_patterns(cfg: EnvironmentConfig) -> list[str]:
    """The allow-list as cdk-nag prints it: pseudo parameters as <AWS::...>; only wildcard entries."""
    arn = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
    allow = cfg.targets
    patterns = [
        *(_pattern(arn, "lambda", "function:", cfg.expand(n)) for n in allow.lambda_functions),
        *(_pattern(arn, "sqs", "", cfg.expand(n)) for n in allow.sqs_queues),
        *(_pattern(arn, "events", "event-bus/", cfg.expand(n)) for n in allow.event_buses),
    ]
    return [p for p in patterns if "*" in p]


def _pattern(arn: str, service: str, resource: str, name: str) -> str:
    return name if name.startswith("arn:") else arn.format(service=service, resource=resource + name)


def _arn(stack: cdk.Stack, service: str, resource: str | None, name: str, style: cdk.ArnFormat | None) -> str:
    if name.startswith("arn:"):
        return name
    if resource is None:
        return stack.format_arn(service=service, resource=name)
    return stack.format_arn(service=service, resource=resource, resource_name=name, arn_format=style)
