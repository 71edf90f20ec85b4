"""SQS priority lanes (high / default / low), the dead-letter queue, and the triggers' dead-letter queue.

A lane message that fails ``MAX_RECEIVE_COUNT`` deliveries (a poison message, or a worker that keeps
crashing on it) moves to the DLQ; tasks whose retries are exhausted are sent there by the worker
itself. The visibility timeout is 6 x the worker's timeout, as AWS advises for an event source
mapping: a batch whose invocation is retried after throttling stays hidden meanwhile.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.nag import acknowledge
from taskplane.settings import LANES, MAX_RECEIVE_COUNT

#: The worker's timeout; the lanes' visibility timeout is derived from it.
WORKER_TIMEOUT = cdk.Duration.minutes(15)
VISIBILITY_TIMEOUT = cdk.Duration.seconds(6 * WORKER_TIMEOUT.to_seconds())


class Queues(Construct):
    """``self.lanes[lane]``, ``self.dlq`` and ``self.trigger_dlq``, encrypted (SSE-SQS) and TLS-only."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.dlq = self._dead_letters("DeadLetters", f"{cfg.prefix}-dlq")
        # Where EventBridge puts a trigger's event it could not put on its lane (every trigger rule's
        # target names it; its resource policy is the triggers construct's). An operator redrives it
        # (docs/DEPLOY.md, "Triggers' dead letters").
        self.trigger_dlq = self._dead_letters("TriggerDeadLetters", f"{cfg.prefix}-trigger-dlq")
        acknowledge(
            self.trigger_dlq,
            "AwsSolutions-SQS3",
            "it is a dead-letter queue: EventBridge's, named by every trigger rule's target (DeadLetterConfig) "
            "rather than by a queue's redrive policy, which is all cdk-nag looks for",
        )
        self.lanes: dict[str, sqs.Queue] = {
            lane: sqs.Queue(
                self,
                f"Lane{lane.capitalize()}",
                queue_name=f"{cfg.prefix}-{lane}",
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                visibility_timeout=VISIBILITY_TIMEOUT,
                # Lane messages are due within 15 minutes (SQS DelaySeconds); 4 days covers an outage.
                retention_period=cdk.Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVE_COUNT),
            )
            for lane in LANES
        }

    def _dead_letters(self, construct_id: str, name: str) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # The longest SQS allows: dead letters wait for a person (or a redrive) to look at them.
            retention_period=cdk.Duration.days(14),
        )
