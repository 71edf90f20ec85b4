"""Events and triggers: the platform's event bus, and the rules the API makes at run time.

Tenants publish events through the platform (``POST /v1/events``, ``eventbridge`` targets); the
platform stamps each with the publishing tenant and puts it on its own bus, ``<prefix>-events``. The
API creates one rule per trigger (named ``<prefix>-trg-<id>``), scoped to its tenant, on that bus or
on an external bus a tenant's configuration names (``external_events``); its target is the trigger's
lane queue, and the worker turns each event into a task. So this construct:

- makes the bus and lets the API, the worker and the step function (and nothing else here) put
  events on it;
- lets the API manage only rules with this environment's prefix, on the buses the environment allows;
- lets only those rules send to the lanes (the lane queues' resource policies), and to the triggers'
  dead-letter queue that every rule's target names (an event it could not put on its lane);
- lets the API (the operators' door: services/trigger_dead_letters.py) read and redrive that queue;
- lets the worker read triggers (kept in the schedules table), and only them.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.capabilities.function import PlatformFunction
from infra.capabilities.queues import Queues
from infra.capabilities.storage import TRIGGERS, Storage, grant_items
from infra.config import EnvironmentConfig
from infra.nag import acknowledge, iam5_resource


def settings_fields(cfg: EnvironmentConfig) -> dict[str, Any]:
    """What the code reads (taskplane.settings) about events and triggers."""
    return {
        "event_bus": cfg.event_bus,
        "trigger_rule_prefix": cfg.trigger_rule_prefix,
        "external_events": {
            name: [dict(e) for e in tenant.external_events]
            for name, tenant in cfg.tenants.items()
            if tenant.external_events
        },
        "max_trigger_rules": cfg.max_trigger_rules,
        "max_wildcard_rules": cfg.max_wildcard_rules,
    }


def rule_names(cfg: EnvironmentConfig) -> list[str]:
    """Rule resource names: ``rule/<name>`` on the default bus, ``rule/<bus>/<name>`` elsewhere."""
    prefix = f"{cfg.trigger_rule_prefix}*"
    buses = [cfg.event_bus, *cfg.trigger_buses]
    return [prefix if bus == "default" else f"{bus}/{prefix}" for bus in buses]


class Triggers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        api: PlatformFunction,
        worker: PlatformFunction,
        storage: Storage,
        queues: Queues,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.bus = events.EventBus(self, "Bus", event_bus_name=cfg.event_bus)
        # POST /v1/events (api) and eventbridge targets (worker; the step function is granted by
        # the stack once it exists): every event they put is stamped with its tenant.
        for fn in (api, worker):
            self.grant_publish(fn.role)
        self.rule_arns = [
            stack.format_arn(service="events", resource="rule", resource_name=name)
            for name in rule_names(cfg)
        ]
        api.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TriggerRules",
                actions=["events:PutRule", "events:PutTargets", "events:RemoveTargets", "events:DeleteRule"],
                resources=self.rule_arns,
            )
        )
        # A trigger's event names its trigger; the worker reads the trigger to build the task (and no
        # schedule: the table holds both).
        grant_items(storage.schedules, worker.role, write=False, items=TRIGGERS)
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
        # An event a rule could not put on its lane goes to the triggers' DLQ (the rules' target's
        # DeadLetterConfig): EventBridge sends it there under the same scope as to the lanes. Without
        # this statement its sends to the DLQ fail too (InvocationsFailedToBeSentToDLQ) and the event
        # is lost after all. SSE-SQS, like the lanes: a customer-managed key would need its key
        # policy to let events.amazonaws.com use it as well.
        queues.trigger_dlq.add_to_resource_policy(
            iam.PolicyStatement(
                sid="TriggerRulesDeadLetters",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queues.trigger_dlq.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": self.rule_arns},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        # Operators list and redrive it through the api function (services/trigger_dead_letters.py):
        # it reads and deletes there, reads every trigger (a Scan), and sends to the lanes (granted).
        queues.trigger_dlq.grant(
            api.role, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"
        )
        storage.schedules.grant(api.role, "dynamodb:Scan")
        arn = "arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/{name}"
        for name in rule_names(cfg):
            acknowledge(
                api.role,
                iam5_resource(arn.format(name=name)),
                "tenants create trigger rules at run time; the API may manage only rules with this "
                "environment's trigger name prefix",
            )

    def grant_publish(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PlatformEvents", actions=["events:PutEvents"], resources=[self.bus.event_bus_arn]
            )
        )
