"""The triggers' dead-letter queue under moto: every rule's target names it, and operators list and
redrive what EventBridge put there (services/trigger_dead_letters.py).

moto neither fails a delivery to SQS nor sends to a rule's DeadLetterConfig, so the tests put in the
DLQ what EventBridge puts there (the event as it matched, with ``RULE_ARN``, ``ERROR_CODE``,
``ERROR_MESSAGE`` and ``RETRY_ATTEMPTS`` attributes: EventBridge User Guide, "Using dead-letter queues
to process undelivered events") and check what the rules carry, as AWS would read them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane.adapters.triggers import TriggerRules
from taskplane.domain.events import SQS_MAX_MESSAGE_BYTES
from taskplane.domain.states import TaskState
from taskplane.domain.triggers import RULE_RETRY_ATTEMPTS, RULE_RETRY_MAX_AGE_S

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def trigger(api: Any, tenant: str = "acme", **body: Any) -> dict[str, Any]:
    body = {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO, **body}
    reply = api("POST", "/v1/triggers", body, tenant=tenant)
    assert reply.status == 201, reply.body
    return reply.body


def correlating(api: Any) -> dict[str, Any]:
    """A trigger correlating orders and payments: two rules, one per event pattern."""
    return trigger(
        api,
        event_pattern=None,
        correlate={
            "key": "$.detail.order",
            "within_ms": 60_000,
            "events": [{"source": ["shop.orders"]}, {"source": ["shop.payments"]}],
        },
    )


def targets(aws: Any, rule: str) -> list[dict[str, Any]]:
    return aws.client("events").list_targets_by_rule(Rule=rule, EventBusName=aws.settings.event_bus)[
        "Targets"
    ]


def operate(api_handler: Any, **request: Any) -> dict[str, Any]:
    from taskplane.local.context import LocalContext

    answer = api_handler(request, LocalContext(function_name="taskplane-api"))
    assert isinstance(answer, dict)
    return answer


@pytest.fixture
def api_handler(aws: Any) -> Any:
    from taskplane.local.handlers import load_handler

    return load_handler("api").lambda_handler


def dead_event(
    aws: Any,
    rule: str,
    *,
    tenant: str = "acme",
    event_id: str = "e-1",
    detail: dict[str, Any] | None = None,
    bus: str | None = None,
    body: str | None = None,
    size: int | None = None,
) -> None:
    """What EventBridge puts in the DLQ for an event a rule could not deliver to its lane."""
    bus = bus or aws.settings.event_bus
    event = {
        "version": "0",
        "id": event_id,
        "detail-type": "OrderPlaced",
        "source": "shop.orders",
        "account": "123456789012",
        "time": "2026-12-07T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"order": 42, "taskplane_tenant": tenant, **(detail or {})},
    }
    if size is not None:  # padded to exactly ``size`` bytes of JSON
        event["detail"]["pad"] = ""
        event["detail"]["pad"] = "x" * (size - len(json.dumps(event)))
    where = rule if bus == "default" else f"{bus}/{rule}"
    attributes = {
        "RULE_ARN": f"arn:aws:events:us-east-1:123456789012:rule/{where}",
        "TARGET_ARN": "arn:aws:sqs:us-east-1:123456789012:taskplane-default",
        "ERROR_CODE": "SDK_CLIENT_ERROR",
        "ERROR_MESSAGE": "Failed to send message to the SQS queue: KMS access denied",
        "EXHAUSTED_RETRY_CONDITION": "MaximumEventAgeInSeconds",
        "RETRY_ATTEMPTS": "27",
    }
    aws.client("sqs").send_message(
        QueueUrl=aws.settings.trigger_dlq_url,
        MessageBody=body if body is not None else json.dumps(event),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def dlq_depth(aws: Any) -> int:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.settings.trigger_dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_every_rule_target_names_the_triggers_dlq_and_an_explicit_retry_policy(aws, api):
    # Given a plain trigger and a correlating one (two rules)
    plain = trigger(api)
    corr = correlating(api)
    dlq_arn = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.settings.trigger_dlq_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    # Then each of the three rules' one target names the DLQ and the retry policy
    rules = [plain["rule_name"], corr["rule_name"], f"{corr['rule_name']}-1"]
    for rule in rules:
        (target,) = targets(aws, rule)
        assert target["DeadLetterConfig"] == {"Arn": dlq_arn}, rule
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": RULE_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": RULE_RETRY_MAX_AGE_S,
        }, rule
    # and the retry policy is within what EventBridge accepts (60 s to 24 h, 0 to 185 attempts)
    assert 60 <= RULE_RETRY_MAX_AGE_S <= 86_400 and 0 <= RULE_RETRY_ATTEMPTS <= 185


def test_a_dead_event_is_listed_for_the_operator_and_a_redrive_starts_its_task_once(
    aws, api, drain, api_handler
):
    # Given a trigger whose rule could not put one event on its lane
    made = trigger(api)
    dead_event(aws, made["rule_name"])
    # When the operator lists the triggers' DLQ
    listed = operate(api_handler, taskplane_operation="list-trigger-dead-letters")["results"]
    # Then it names the trigger, its tenant, why EventBridge gave up, and the event
    (item,) = listed
    assert item["trigger_id"] == made["trigger_id"] and item["tenant"] == "acme"
    assert item["error_code"] == "SDK_CLIENT_ERROR" and "KMS" in item["error_message"]
    assert (item["event_id"], item["source"], item["retry_attempts"]) == ("e-1", "shop.orders", "27")
    # and listing took nothing away
    assert dlq_depth(aws) == 1
    # When the operator (the cause fixed) redrives, and the worker drains the lanes
    (result,) = operate(api_handler, taskplane_operation="redrive-trigger-dead-letters")["results"]
    assert result["outcome"] == "redriven" and result["tenant"] == "acme", result
    drain()
    # Then the task the event should have started ran, with the event as its payload, and the DLQ is empty
    items = api("GET", "/v1/tasks").body["items"]
    (task,) = [t for t in items if t.get("trigger_id") == made["trigger_id"]]
    assert task["state"] == TaskState.SUCCEEDED.value
    assert dlq_depth(aws) == 0
    # And the same event dead-lettered again (a second rule failure, a retried redrive) starts nothing new
    dead_event(aws, made["rule_name"])
    operate(api_handler, taskplane_operation="redrive-trigger-dead-letters")
    drain()
    assert len([t for t in api("GET", "/v1/tasks").body["items"] if t.get("trigger_id")]) == 1


def test_a_correlating_triggers_dead_event_goes_back_with_its_pattern(aws, api, drain, api_handler):
    corr = correlating(api)
    # Given the second rule's event dead-lettered
    dead_event(aws, f"{corr['rule_name']}-1")
    # When it is redriven
    (result,) = operate(api_handler, taskplane_operation="redrive-trigger-dead-letters")["results"]
    assert result["outcome"] == "redriven"
    # Then the lane message names pattern 1, as the rule's own envelope would
    body = json.loads(
        aws.client("sqs").receive_message(QueueUrl=aws.settings.queue_urls["default"])["Messages"][0]["Body"]
    )
    assert (body["trigger_id"], body["tenant"], body["pattern"]) == (corr["trigger_id"], "acme", 1)
    assert body["event"]["id"] == "e-1"


def test_dead_events_of_deleted_or_foreign_rules_are_dropped_and_unreadable_ones_kept(aws, api, api_handler):
    gone = trigger(api)
    assert api("DELETE", f"/v1/triggers/{gone['trigger_id']}").status == 204
    kept = trigger(api)
    dead_event(aws, gone["rule_name"], event_id="of-a-deleted-trigger")
    dead_event(aws, "someone-elses-rule", event_id="foreign")
    dead_event(aws, kept["rule_name"], body="not json")
    results = operate(api_handler, taskplane_operation="redrive-trigger-dead-letters")["results"]
    outcomes = sorted((str(r["trigger_id"]), r["outcome"]) for r in results)
    assert outcomes == sorted(
        [(gone["trigger_id"], "dropped"), ("None", "dropped"), (kept["trigger_id"], "kept")]
    ), results
    (unreadable,) = [r for r in results if r["outcome"] == "kept"]
    assert "not an event" in unreadable["error"]
    # the one kept is still there, visible again at once for the next look
    assert dlq_depth(aws) == 1
    (item,) = operate(api_handler, taskplane_operation="list-trigger-dead-letters")["results"]
    assert item["trigger_id"] == kept["trigger_id"]
    # and nothing reached a lane
    assert aws.queue_depth("default") == 0


def test_an_event_too_large_for_a_lane_stays_in_the_dlq_named_as_such(aws, api, api_handler):
    made = trigger(api)
    # Given an event SQS takes as it is, but not in its lane envelope (trigger id and tenant around it)
    dead_event(aws, made["rule_name"], size=SQS_MAX_MESSAGE_BYTES - 20)
    (result,) = operate(api_handler, taskplane_operation="redrive-trigger-dead-letters")["results"]
    assert result["outcome"] == "kept" and "at most" in result["error"], result
    assert dlq_depth(aws) == 1 and aws.queue_depth("default") == 0


def test_refresh_gives_rules_made_before_the_dlq_their_dead_letter_config(aws, api, api_handler):
    # Given a trigger whose rule was made by a release whose targets named no DLQ
    made = trigger(api)
    old = TriggerRules(aws.client("events"), aws.client("sqs"), aws.settings.queue_urls)
    stored = aws.platform.triggers.get("acme", made["trigger_id"])
    old.refresh(stored, "default")
    (target,) = targets(aws, made["rule_name"])
    assert "DeadLetterConfig" not in target
    # When the operator runs the refresh (once, after deploying this release)
    answer = operate(api_handler, taskplane_operation="refresh-trigger-rules")
    # Then every rule carries it again, and running it twice changes nothing
    assert answer["results"] == {"triggers": 1, "rules": 1}
    (target,) = targets(aws, made["rule_name"])
    assert target["DeadLetterConfig"]["Arn"].endswith(":taskplane-trigger-dlq")
    assert target["InputTransformer"]["InputTemplate"].startswith('{"trigger_id"')
    assert operate(api_handler, taskplane_operation="refresh-trigger-rules") == answer


def test_refresh_in_parts_refreshes_every_trigger_once(aws, api, api_handler):
    made = [trigger(api, tenant=t) for t in ("acme", "globex", "acme", "initech", "globex")]
    parts = [
        operate(api_handler, taskplane_operation="refresh-trigger-rules", segment=i, segments=3)["results"]
        for i in range(3)
    ]
    assert sum(p["triggers"] for p in parts) == len(made)
    assert sum(p["rules"] for p in parts) == len(made)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"taskplane_operation": "drop-everything"}, "unknown operation"),
        ({"taskplane_operation": "list-trigger-dead-letters", "limit": 0}, "limit"),
        ({"taskplane_operation": "redrive-trigger-dead-letters", "limit": "10"}, "limit"),
        ({"taskplane_operation": "refresh-trigger-rules", "segments": 0}, "segments"),
        ({"taskplane_operation": "refresh-trigger-rules", "segment": 2, "segments": 2}, "segment"),
    ],
)
def test_a_bad_operator_request_is_answered_never_raised(aws, api_handler, request_, error):
    answer = operate(api_handler, **request_)
    assert error in answer["error"]


def test_no_http_request_reaches_the_operators_door(aws, api):
    # API Gateway builds the event: a body or header naming the operation is only a request
    reply = api("POST", "/v1/events", {"taskplane_operation": "redrive-trigger-dead-letters"})
    assert reply.status == 400


class RefusingTargets:
    """An ``events`` client whose PutTargets answers 200 with the target in FailedEntries (as EventBridge
    does for a target it refuses, e.g. a DLQ ARN it cannot use)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def put_targets(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "FailedEntryCount": 1,
            "FailedEntries": [
                {"TargetId": "taskplane-lane", "ErrorCode": "ValidationException", "ErrorMessage": "bad DLQ"}
            ],
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_target_eventbridge_refuses_fails_the_create_and_leaves_no_rule_behind(aws, api):
    events = aws.client("events")
    rules = TriggerRules(RefusingTargets(events), aws.client("sqs"), aws.settings.queue_urls, "arn:aws:sqs:x")
    aws.platform.triggers.rules = rules
    reply = api("POST", "/v1/triggers", {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO})
    # Then the create is a 503 naming EventBridge's refusal (never a rule matching events with no target)
    assert reply.status == 503 and "refused the rule's target" in reply.body["error"]["message"], reply.body
    assert events.list_rules(EventBusName=aws.settings.event_bus)["Rules"] == []
    assert api("GET", "/v1/triggers").body["items"] == []


def test_an_external_bus_s_dead_event_finds_its_trigger_without_a_stamp_and_starts_its_task(aws, drain):
    # Given acme's trigger on the account's default bus (an external source it is allowed)
    from taskplane import wiring
    from taskplane.domain.triggers import TriggerCreate
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler

    settings = aws.settings.model_copy(
        update={"external_events": {"acme": [{"bus": "default", "sources": ["ec2.like"]}]}}
    )
    aws.platform = wiring.build(settings, session=aws.session)
    wiring.use(aws.platform)
    made = aws.platform.triggers.create(
        "acme",
        TriggerCreate.model_validate(
            {"event_pattern": {"source": ["ec2.like"]}, "bus": "default", "task": ECHO}
        ),
    )
    # When its rule could not deliver an event from outside the platform (no tenant stamped in it)
    event = {"version": "0", "id": "ext-1", "source": "ec2.like", "detail-type": "x", "detail": {"i": 1}}
    attributes = {
        "RULE_ARN": f"arn:aws:events:us-east-1:123456789012:rule/{made.rule_name}",
        "ERROR_CODE": "SDK_CLIENT_ERROR",
        "ERROR_MESSAGE": "throttled",
    }
    aws.client("sqs").send_message(
        QueueUrl=aws.settings.trigger_dlq_url,
        MessageBody=json.dumps(event),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    handler = load_handler("api").lambda_handler
    answer = handler(
        {"taskplane_operation": "redrive-trigger-dead-letters"}, LocalContext(function_name="taskplane-api")
    )
    # Then it found the trigger among all (a rule on the default bus), went back, and its task ran
    (result,) = answer["results"]
    assert (result["outcome"], result["tenant"]) == ("redriven", "acme"), result
    drain()
    items, _ = aws.platform.tasks.list("acme", limit=10)
    (task,) = [t for t in items if t.trigger_id == made.trigger_id]
    assert task.state is TaskState.SUCCEEDED and task.payload["id"] == "ext-1"
