"""The platform's event bus and the trigger rules' permissions, over the synthesized template.

moto enforces no IAM: a trigger the API accepts on a bus its role may not manage would only fail in
AWS (AccessDenied, a 503). These tests join the code's rule (which buses a tenant's triggers may use,
``services/triggers.py``) to the template's grants, so that day comes in `make test` instead.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from infra_synth import Synth, shared_root, synthesized

from taskplane.domain.errors import InvalidRequest
from taskplane.domain.triggers import PLATFORM_BUS, ExternalEvents, rule_name

pytestmark = pytest.mark.infra

ACCOUNT, REGION, PARTITION = "123456789012", "eu-west-1", "aws"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


def resolve(value: Any) -> Any:
    """Fn::Join / Ref of the pseudo parameters (and the bus's own ARN) as plain strings."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(resolve(p)) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION}.get(
            value["Ref"], value["Ref"]
        )
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{value['Fn::GetAtt'][0]}.{value['Fn::GetAtt'][1]}>"
    return value


def allowed(synth: Synth, role: str, action: str, arn: str) -> bool:
    """Whether an Allow statement of ``role``'s policies grants ``action`` on ``arn`` (no Deny exists)."""
    for st in synth.statements_of(role):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if st["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(arn, str(resolve(r))) for r in resources):
            return True
    return False


def env_of(synth: Synth, function_name: str) -> dict[str, Any]:
    return next(
        f["Properties"]["Environment"]["Variables"]
        for f in synth.resources("AWS::Lambda::Function").values()
        if f["Properties"]["FunctionName"] == function_name
    )


def test_the_platform_bus_exists_and_every_function_names_it(synth: Synth) -> None:
    (bus,) = synth.resources("AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == "tp-test-events"
    for fn in ("tp-test-api", "tp-test-worker", "tp-test-step"):
        env = env_of(synth, fn)
        assert env["TASKPLANE_EVENT_BUS"] == "tp-test-events"
        assert env["TASKPLANE_TRIGGER_RULE_PREFIX"] == "tp-test-trg-"
        assert json.loads(env["TASKPLANE_EXTERNAL_EVENTS"]) == {
            "acme": [
                {"bus": "default", "sources": ["aws.s3"]},
                {"bus": "partner-bus", "sources": ["com.partner.*"]},
            ]
        }


def test_only_the_platforms_functions_may_publish_on_its_bus(synth: Synth) -> None:
    # Given the bus's ARN as the template writes it
    (bus_id,) = synth.resources("AWS::Events::EventBus")
    arn = f"<{bus_id}.Arn>"
    # Then the api (POST /v1/events), the worker and the step function (eventbridge targets) may
    # put events there, and the tick may not
    for role in ("api.role", "worker.role", "step.role"):
        assert allowed(synth, role, "events:PutEvents", arn), role
    assert not allowed(synth, "tick.role", "events:PutEvents", arn)


def test_every_trigger_the_api_accepts_is_one_its_role_may_create(synth: Synth) -> None:
    """Walk every (tenant, bus) the code accepts and ask the template whether AWS would allow it."""
    from taskplane.services.triggers import TriggerService

    cfg = synth.cfg
    env = env_of(synth, "tp-test-api")
    external = {
        tenant: [ExternalEvents.model_validate(e) for e in entries]
        for tenant, entries in json.loads(env["TASKPLANE_EXTERNAL_EVENTS"]).items()
    }
    service = TriggerService(
        store=None,  # type: ignore[arg-type]  # only the bus rule is asked
        rules=None,  # type: ignore[arg-type]
        tasks=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        event_bus=env["TASKPLANE_EVENT_BUS"],
        rule_prefix=env["TASKPLANE_TRIGGER_RULE_PREFIX"],
        external=external,
    )
    checked = 0
    for tenant in cfg.tenants:
        for bus in [PLATFORM_BUS, "default", "partner-bus", "someone-elses-bus"]:
            try:
                real = (
                    env["TASKPLANE_EVENT_BUS"] if bus == PLATFORM_BUS else service._external(tenant, bus).bus
                )
            except InvalidRequest:
                continue  # refused with a 400 before any AWS call
            name = rule_name("01ARZ3NDEKTSV4RRFFQ69G5FAV", service.rule_prefix)
            path = name if real == "default" else f"{real}/{name}"
            arn = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{path}"
            for action in (
                "events:PutRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:DeleteRule",
            ):
                assert allowed(synth, "api.role", action, arn), (tenant, bus, action, arn)
            # and the rule may then deliver to every lane
            sends = [
                s
                for policy in synth.resources("AWS::SQS::QueuePolicy").values()
                for s in policy["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Allow" and s.get("Sid") == "TriggerRulesSend"
            ]
            assert len(sends) == 3, sends  # one per lane
            for send in sends:
                patterns = [resolve(a) for a in send["Condition"]["ArnLike"]["aws:SourceArn"]]
                assert any(fnmatch.fnmatchcase(arn, p) for p in patterns), (arn, patterns)
            checked += 1
    # Then the walk was not vacuous: the platform bus for both tenants, two external buses for acme
    assert checked == 4


def test_no_rule_outside_this_environments_prefix_is_manageable(synth: Synth) -> None:
    for bus in ("tp-test-events", "default"):
        other = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{bus}/taskplane-prod-trg-01ARZ3NDEKTSV4RRFFQ69G5FAV"
        if bus == "default":
            other = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/taskplane-prod-trg-01ARZ3NDEKTSV4RRFFQ69G5FAV"
        assert not allowed(synth, "api.role", "events:PutRule", other)


def test_the_bucket_of_large_values_is_private_and_expires_objects_with_their_records(synth: Synth) -> None:
    (bucket_id, bucket) = next(iter(synth.resources("AWS::S3::Bucket").items()))
    props = bucket["Properties"]
    assert "BucketName" not in props  # names are global: CloudFormation picks one
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    from taskplane.domain.blobs import EXPIRY_TAG, expiry_classes

    for days in expiry_classes(synth.cfg.retention_days):
        rule = rules[f"expire-{days}d"]
        assert rule["ExpirationInDays"] == days and rule["Prefix"] == "t/"
        assert rule["TagFilters"] == [{"Key": EXPIRY_TAG, "Value": str(days)}]
    assert rules["uploads"]["ExpirationInDays"] == 1 and rules["uploads"]["Prefix"] == "u/"
    # Only TLS (enforce_ssl) in the bucket policy
    (policy,) = synth.resources("AWS::S3::BucketPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # And every function that handles large values names the bucket
    for fn in ("tp-test-api", "tp-test-worker", "tp-test-step"):
        assert env_of(synth, fn)["TASKPLANE_BLOB_BUCKET"] == {"Ref": bucket_id}


def test_who_may_read_and_write_large_values(synth: Synth) -> None:
    (bucket_id,) = synth.resources("AWS::S3::Bucket")
    owned, upload = f"<{bucket_id}.Arn>/t/acme/payloads/x", f"<{bucket_id}.Arn>/u/acme/up_x"
    for role in ("api.role", "worker.role", "step.role"):
        for action in ("s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"):
            assert allowed(synth, role, action, owned), (role, action)
    assert allowed(synth, "api.role", "s3:GetObject", upload)  # it copies uploads to tasks
    # an upload's URL is signed without a tag, so nobody tags in the uploads' prefix
    assert not allowed(synth, "api.role", "s3:PutObjectTagging", upload)
    assert not allowed(synth, "worker.role", "s3:PutObject", upload)
    # the worker closes windowed triggers' windows (and writes a window's large payload): the tick, which
    # only sends them their ends, has no use for the bucket
    for action in ("s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"):
        assert not allowed(synth, "tick.role", action, owned), action
    assert not allowed(synth, "api.role", "s3:DeleteObject", owned)


# -- the triggers' dead-letter queue ------------------------------------------------------------------


def trigger_dlq(synth: Synth) -> tuple[str, dict[str, Any]]:
    return next(
        (rid, q)
        for rid, q in synth.resources("AWS::SQS::Queue").items()
        if q["Properties"].get("QueueName") == "tp-test-trigger-dlq"
    )


def test_the_triggers_dead_letter_queue_is_encrypted_kept_14_days_and_named_to_every_function(
    synth: Synth,
) -> None:
    # Given the queue every trigger rule's target names as its dead-letter queue
    rid, queue = trigger_dlq(synth)
    props = queue["Properties"]
    # Then it is encrypted like the other queues and keeps what lands there as long as SQS allows
    assert props["SqsManagedSseEnabled"] is True
    assert props["MessageRetentionPeriod"] == 14 * 86400
    # And the code is told where it is: its ARN for the rules' DeadLetterConfig, its URL for reading
    for fn in ("tp-test-api", "tp-test-worker"):
        env = env_of(synth, fn)
        assert env["TASKPLANE_TRIGGER_DLQ_ARN"] == {"Fn::GetAtt": [rid, "Arn"]}
        assert env["TASKPLANE_TRIGGER_DLQ_URL"] == {"Ref": rid}


def test_only_this_environments_trigger_rules_may_send_to_the_triggers_dlq(synth: Synth) -> None:
    rid, _ = trigger_dlq(synth)
    (policy,) = [
        p
        for p in synth.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": rid} in p["Properties"]["Queues"]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (send,) = [s for s in statements if s["Effect"] == "Allow"]
    # EventBridge (and only it) may send, for the rules with this environment's prefix in this account
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"] == {"Fn::GetAtt": [rid, "Arn"]}
    patterns = [resolve(a) for a in send["Condition"]["ArnLike"]["aws:SourceArn"]]
    assert send["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    own = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/tp-test-events/{rule_name('01ARZ3NDEKTSV4RRFFQ69G5FAV', 'tp-test-trg-')}"
    other = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/tp-test-events/taskplane-prod-trg-01ARZ3NDEKTSV4RRFFQ69G5FAV"
    external = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/tp-test-trg-01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert any(fnmatch.fnmatchcase(own, p) for p in patterns)
    assert any(fnmatch.fnmatchcase(external, p) for p in patterns)  # a rule on the default bus
    assert not any(fnmatch.fnmatchcase(other, p) for p in patterns)
    # and the same rules as may send to the lanes (a rule that may reach its lane may reach the DLQ)
    lanes = next(
        s
        for p in synth.resources("AWS::SQS::QueuePolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "TriggerRulesSend"
    )
    assert send["Condition"] == lanes["Condition"]
    # and plain TLS is refused like on every queue
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_the_api_may_list_and_redrive_the_triggers_dlq_and_the_others_may_not(synth: Synth) -> None:
    rid, _ = trigger_dlq(synth)
    arn = f"<{rid}.Arn>"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert allowed(synth, "api.role", action, arn), action
        for role in ("worker.role", "tick.role", "step.role"):
            assert not allowed(synth, role, action, arn), (role, action)


def test_an_event_in_the_triggers_dlq_pages_like_a_task_in_the_dlq(synth: Synth) -> None:
    rid, _ = trigger_dlq(synth)
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
    }
    alarm = alarms["tp-test-trigger-dlq-not-empty"]
    tasks = alarms["tp-test-dlq-not-empty"]
    # on the queue's depth, from its first message
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [rid, "QueueName"]}}]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # reaching the same topics as the tasks' DLQ alarm, both ways
    assert alarm["AlarmActions"] == tasks["AlarmActions"] and alarm["AlarmActions"]
    assert alarm["OKActions"] == tasks["OKActions"]
