"""Event triggers: EventBridge rules, made by the API at run time, that put matching events on a lane.

The API creates one rule per trigger (named by ``taskplane.domain.triggers.rule_name``) on an
allowed bus, its target the trigger's lane queue; the worker turns each event into a task. So this
construct lets the API manage only rules with that name prefix on the buses the environment allows,
lets only those rules send to the lanes, and lets the worker read triggers (kept in the schedules
table). It is built when the code has triggers (``taskplane.domain.triggers``).
"""

from __future__ import annotations

import importlib.util

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.capabilities.function import PlatformFunction
from infra.capabilities.queues import Queues
from infra.capabilities.storage import Storage
from infra.config import EnvironmentConfig
from infra.nag import acknowledge, iam5_resource


def rule_prefix() -> str | None:
    """The name every trigger rule starts with, or None when the code has no triggers yet."""
    if importlib.util.find_spec("taskplane.domain.triggers") is None:
        return None
    from taskplane.domain.triggers import rule_name

    return rule_name("")


def rule_names(cfg: EnvironmentConfig, prefix: str) -> list[str]:
    """Rule resource names (``rule/<name>`` on the default bus, ``rule/<bus>/<name>`` elsewhere)."""
    return [f"{prefix}*" if bus == "default" else f"{bus}/{prefix}*" for bus in cfg.trigger_buses]


class Triggers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        prefix: str,
        api: PlatformFunction,
        worker: PlatformFunction,
        storage: Storage,
        queues: Queues,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.rule_arns = [
            stack.format_arn(service="events", resource="rule", resource_name=name)
            for name in rule_names(cfg, prefix)
        ]
        api.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TriggerRules",
                actions=[
                    "events:PutRule",
                    "events:PutTargets",
                    "events:RemoveTargets",
                    "events:DeleteRule",
                    "events:DescribeRule",
                ],
                resources=self.rule_arns,
            )
        )
        # A trigger's event names its trigger; the worker reads the trigger to build the task.
        storage.schedules.grant_read_data(worker.role)
        for queue in queues.lanes.values():
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="TriggerRulesSend",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={
                        "ArnLike": {"aws:SourceArn": self.rule_arns},
                        "StringEquals": {"aws:SourceAccount": stack.account},
                    },
                )
            )
        arn = "arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/{name}"
        for name in rule_names(cfg, prefix):
            acknowledge(
                api.role,
                iam5_resource(arn.format(name=name)),
                "tenants create trigger rules at run time; the API may manage only rules with the trigger name prefix",
            )
