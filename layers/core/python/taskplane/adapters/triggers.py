"""Triggers: their items in DynamoDB and their EventBridge rules (one rule per trigger, its target the
trigger's lane queue, the event wrapped by an input transformer that names the trigger and tenant)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.errors import error_code, translate
from taskplane.domain.errors import InvalidRequest, LimitExceeded, Unavailable
from taskplane.domain.triggers import (
    BUS_RULES_QUOTA,
    BUS_WILDCARD_RULES_QUOTA,
    RULE_RETRY_ATTEMPTS,
    RULE_RETRY_MAX_AGE_S,
    Trigger,
)

#: The SQS target's id on every trigger rule.
TARGET_ID = "taskplane-lane"


class TriggerStore:
    """Trigger items share the schedules table under partition ``trg#<tenant>``."""

    def __init__(self, table: str, client: Any) -> None:
        self._table = table
        self._client = client

    @staticmethod
    def _pk(tenant: str) -> str:
        return f"trg#{tenant}"

    def put(self, trigger: Trigger) -> None:
        item = {
            "pk": {"S": self._pk(trigger.tenant)},
            "sk": {"S": trigger.trigger_id},
            "doc": {"S": trigger.model_dump_json()},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except ClientError as exc:
            raise translate(exc, "storing the trigger") from exc

    def get(self, tenant: str, trigger_id: str) -> Trigger | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": self._pk(tenant)}, "sk": {"S": trigger_id}}
            ).get("Item")
        except ClientError as exc:
            raise translate(exc, "reading the trigger") from exc
        return Trigger.model_validate_json(item["doc"]["S"]) if item else None

    def all(self, segment: int = 0, segments: int = 1) -> list[Trigger]:
        """Every tenant's triggers (a Scan of the table: for the operators' rare passes over them all,
        never on a request's path); with ``segments`` > 1, those of one part of a parallel Scan."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": "trg#"}},
        }
        if segments > 1:
            kwargs |= {"Segment": segment, "TotalSegments": segments}
        return _pages(self._client.scan, kwargs, "listing every trigger")

    def list(self, tenant: str) -> list[Trigger]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": self._pk(tenant)}},
            "ScanIndexForward": False,
        }
        return _pages(self._client.query, kwargs, "listing triggers")

    def delete(self, tenant: str, trigger_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table, Key={"pk": {"S": self._pk(tenant)}, "sk": {"S": trigger_id}}
            )
        except ClientError as exc:
            raise translate(exc, "deleting the trigger") from exc


def _pages(call: Any, kwargs: dict[str, Any], doing: str) -> list[Trigger]:
    """Every trigger a paged Query or Scan returns."""
    out: list[Trigger] = []
    while True:
        try:
            resp = call(**kwargs)
        except ClientError as exc:
            raise translate(exc, doing) from exc
        out += [Trigger.model_validate_json(i["doc"]["S"]) for i in resp.get("Items", [])]
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def envelope_template(trigger: Trigger, index: int | None) -> str:
    """The input template of a trigger's rule ``index`` (None: its only rule): its envelope with
    EventBridge's variable for the whole event."""
    return trigger.envelope(index, "<aws.events.event.json>")


class TriggerRules:
    """EventBridge rules that put matching events on a lane queue, wrapped with the trigger's identity.

    Every rule's target names the triggers' dead-letter queue (``dead_letter_arn``) with an explicit
    retry policy (domain/triggers.py ``RULE_RETRY_MAX_AGE_S``): an event EventBridge cannot put on the
    lane (a queue policy, a key, a quota, an event too large for SQS) lands there instead of being
    dropped after a day of retries."""

    def __init__(self, events: Any, sqs: Any, queue_urls: dict[str, str], dead_letter_arn: str = "") -> None:
        self._events = events
        self._sqs = sqs
        self._urls = queue_urls
        self._arns: dict[str, str] = {}
        self._dead_letter_arn = dead_letter_arn

    def target(self, trigger: Trigger, lane: str, index: int | None) -> dict[str, Any]:
        """The rule's one target: the lane, the envelope, the retry policy and the dead-letter queue."""
        target: dict[str, Any] = {
            "Id": TARGET_ID,
            "Arn": self._queue_arn(lane),
            "InputTransformer": {"InputPathsMap": {}, "InputTemplate": envelope_template(trigger, index)},
            "RetryPolicy": {
                "MaximumRetryAttempts": RULE_RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": RULE_RETRY_MAX_AGE_S,
            },
        }
        if self._dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self._dead_letter_arn}
        return target

    def _put_target(self, trigger: Trigger, name: str, lane: str, index: int | None) -> None:
        resp = self._events.put_targets(
            Rule=name, EventBusName=trigger.real_bus, Targets=[self.target(trigger, lane, index)]
        )
        # PutTargets answers 200 with the target refused in FailedEntries (a bad DLQ ARN, say): a rule
        # without its target would match events and put them nowhere.
        for failed in resp.get("FailedEntries") or []:
            raise Unavailable(
                f"EventBridge refused the rule's target: {failed.get('ErrorCode', 'Failed')}: "
                f"{failed.get('ErrorMessage', '')}"
            )

    def refresh(self, trigger: Trigger, lane: str) -> int:
        """Put the current target on each of the trigger's rules again (rules made before the target
        carried its dead-letter queue); the rules refreshed. A rule that is gone is skipped."""
        done = 0
        for index, (name, _) in enumerate(trigger.rules()):
            try:
                self._put_target(trigger, name, lane, index if trigger.rule_patterns else None)
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    continue
                raise translate(exc, "refreshing the trigger's rule") from exc
            except BotoCoreError as exc:
                raise translate(exc, "refreshing the trigger's rule") from exc
            done += 1
        return done

    def _queue_arn(self, lane: str) -> str:
        url = self._urls.get(lane) or self._urls["default"]
        if url not in self._arns:
            attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._arns[url] = attrs["Attributes"]["QueueArn"]
        return self._arns[url]

    def create(self, trigger: Trigger, lane: str) -> None:
        """One rule per pattern of the trigger; when one is refused, those made before it are removed."""
        made: list[str] = []
        try:
            for index, (name, pattern) in enumerate(trigger.rules()):
                made.append(name)  # (first: a rule made whose target was refused is removed too)
                self._create_rule(trigger, lane, name, pattern, index if trigger.rule_patterns else None)
        except Exception:
            for name in made:
                self._delete_rule(trigger, name)
            raise

    def _create_rule(
        self, trigger: Trigger, lane: str, name: str, pattern: dict[str, Any], index: int | None
    ) -> None:
        try:
            self._events.put_rule(
                Name=name,
                EventBusName=trigger.real_bus,
                # The tenant's pattern ANDed with its scope (domain/triggers.py scoped_pattern).
                EventPattern=json.dumps(pattern),
                State="ENABLED",
                Description=f"taskplane trigger {trigger.trigger_id} of tenant {trigger.tenant}",
            )
            self._put_target(trigger, name, lane, index)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("InvalidEventPatternException", "ValidationException"):
                field = "event_pattern" if index is None else f"correlate.events[{index}]"
                raise InvalidRequest(
                    f"EventBridge refused the event pattern: {exc.response['Error'].get('Message', code)}",
                    [{"field": field}],
                ) from exc
            if code == "ResourceNotFoundException":
                raise InvalidRequest(f"event bus {trigger.bus!r} does not exist", [{"field": "bus"}]) from exc
            if code == "LimitExceededException":
                # The bus is full for everyone (its tenants' shares add up to more than AWS allows).
                raise LimitExceeded(
                    f"event bus {trigger.bus!r} holds as many rules as AWS allows ({BUS_RULES_QUOTA} by "
                    f"default, {BUS_WILDCARD_RULES_QUOTA} with wildcard filters): delete a trigger, or ask "
                    "the operator to raise the account's 'Rules per event bus' quota",
                    [{"field": "bus", "problem": "bus_rules_quota"}],
                ) from exc
            raise translate(exc, "creating the trigger's rule") from exc
        except BotoCoreError as exc:
            raise translate(exc, "creating the trigger's rule") from exc

    def delete(self, trigger: Trigger) -> None:
        for name, _ in trigger.rules():
            self._delete_rule(trigger, name)

    def _delete_rule(self, trigger: Trigger, name: str) -> None:
        try:
            self._events.remove_targets(Rule=name, EventBusName=trigger.real_bus, Ids=[TARGET_ID])
            self._events.delete_rule(Name=name, EventBusName=trigger.real_bus)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise translate(exc, "deleting the trigger's rule") from exc
