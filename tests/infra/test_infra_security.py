"""cdk-nag, cfn-lint and least privilege on the synthesized template."""

from __future__ import annotations

import re
from typing import Any

import pytest
from infra_synth import Synth, shared_root, synthesized

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


#: Services whose actions read or write data: none of them may be granted on Resource "*".
DATA_SERVICES = {"dynamodb", "sqs", "lambda", "states", "events", "sns", "s3", "kms", "secretsmanager", "ssm"}
#: Actions that take no resource-level permission, so "*" is their only possible resource.
STAR_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}

#: The acknowledged cdk-nag rules (new ones need a review, not a silent suppression).
ACKNOWLEDGED_RULES = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-L1",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    "AwsSolutions-APIG2",
    "AwsSolutions-APIG3",
    "AwsSolutions-APIG4",
    "AwsSolutions-COG4",
    # the bucket of large values: no access-log bucket (reason on the acknowledgement)
    "AwsSolutions-S1",
    # the triggers' dead-letter queue: EventBridge's DLQ, which cdk-nag cannot see is one
    "AwsSolutions-SQS3",
}


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement with the logical id of the policy or role holding it."""
    found = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy":
            docs = [props["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        else:
            continue
        found += [(logical_id, st) for doc in docs for st in doc["Statement"]]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cdk_nag_finds_nothing_unacknowledged(synth: Synth) -> None:
    # Given the synth ran with the AwsSolutions pack as a validation plugin
    (report,) = synth.report["pluginReports"]

    # Then it passed, with no open finding
    assert synth.error is None, synth.error
    assert report["pluginName"] == "AwsSolutions"
    assert report["conclusion"] == "success"
    assert report["violations"] == []
    # and every acknowledgement is an expected rule with a one-line reason
    suppressed = report["suppressedViolations"]
    rules = {s["ruleName"] for s in suppressed}
    target_patterns = {r for r in rules if r.startswith("AwsSolutions-IAM5[Resource::arn:")}
    # Objects of the platform's own bucket under its two prefixes (infra/capabilities/blobs.py)
    blob_prefixes = {
        r for r in rules if re.fullmatch(r"AwsSolutions-IAM5\[Resource::<Blobs\w+\.Arn>/[tu]/\*\]", r)
    }
    assert len(blob_prefixes) == 2, blob_prefixes
    assert rules - target_patterns - blob_prefixes <= ACKNOWLEDGED_RULES
    for s in suppressed:
        assert s["reason"].strip() and "\n" not in s["reason"], s["ruleName"]


def test_acknowledged_resource_wildcards_are_name_prefixes_only(synth: Synth) -> None:
    # Given every acknowledged IAM5 finding on an ARN pattern
    from infra.capabilities.targets import nag_patterns

    (report,) = synth.report["pluginReports"]
    acknowledged = {
        s["ruleName"].removeprefix("AwsSolutions-IAM5[Resource::").removesuffix("]")
        for s in report["suppressedViolations"]
        if s["ruleName"].startswith("AwsSolutions-IAM5[Resource::arn:")
    }

    # Then each ends in "<name prefix>-*": a family of names we own, never "every function" or "every rule"
    for pattern in acknowledged:
        assert re.fullmatch(r"[a-z][a-z0-9-]*-\*", re.split(r"[:/]", pattern)[-1]), pattern
    # and the task-target ones are exactly the allow-list's (the full ARN in it needs no acknowledgement)
    targets = {p for p in acknowledged if "-target-" in p}
    assert targets == set(nag_patterns(synth.cfg))
    assert len(targets) == 3


def test_cfn_lint_reports_no_errors(synth: Synth) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(synth.template_path, config=ManualArgs())
    # W3005 (a DependsOn also implied by a GetAtt) comes from CDK's own DependsOn entries.
    problems = [str(m) for m in matches if m.rule.id != "W3005"]
    assert problems == []


def test_no_data_action_on_every_resource(synth: Synth) -> None:
    for logical_id, st in statements(synth.template):
        if st["Effect"] != "Allow":
            continue
        actions = as_list(st["Action"])
        assert all(a != "*" and not a.endswith(":*") for a in actions), (logical_id, actions)
        if "*" in as_list(st["Resource"]):
            assert set(actions) <= STAR_ONLY_ACTIONS, (logical_id, actions)
            assert not {a.split(":")[0] for a in actions} & DATA_SERVICES


def test_each_function_role_is_its_own_and_writes_only_its_log_group(synth: Synth) -> None:
    functions = synth.resources("AWS::Lambda::Function")
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles)
    for role_id in roles:
        role = synth.template["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role  # no AWSLambdaBasicExecutionRole (logs:* everywhere)
    for logical_id, st in statements(synth.template):
        if any(a.startswith("logs:") for a in as_list(st["Action"])) and "*" not in as_list(st["Resource"]):
            (resource,) = as_list(st["Resource"])
            assert resource["Fn::GetAtt"][1] == "Arn", logical_id
            assert synth.template["Resources"][resource["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"


def test_target_grants_are_bounded_by_the_allow_list(synth: Synth) -> None:
    # Given the worker's role
    by_sid = {st.get("Sid"): st for st in synth.statements_of("worker.role")}

    # Then invoking, sending and putting events is allowed on the allow-listed names only
    invoke = by_sid["LambdaTargets"]
    rendered = as_list(invoke["Resource"])
    assert "arn:aws:lambda:eu-west-1:111122223333:function:shared-echo" in rendered
    joined = [r for r in rendered if isinstance(r, dict)]
    assert all(str(j).endswith("function:tp-test-target-*']]}") for j in joined), joined
    assert by_sid["SqsTargets"]["Action"] == "sqs:SendMessage"
    assert by_sid["EventBridgeTargets"]["Action"] == "events:PutEvents"
    # and never on the platform's own functions or queues (a tenant could forge lane messages)
    for st in (by_sid["LambdaTargets"], by_sid["SqsTargets"]):
        assert "tp-test-worker" not in str(st["Resource"]) and "tp-test-default" not in str(st["Resource"])


def test_tables_queues_and_topic_are_encrypted_and_tls_only(synth: Synth) -> None:
    for logical_id, table in synth.resources("AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}, logical_id
    for logical_id, queue in synth.resources("AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, logical_id
    policies = synth.resources("AWS::SQS::QueuePolicy")
    assert len(policies) == len(synth.resources("AWS::SQS::Queue"))
    for policy in policies.values():
        (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (topic_policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    (deny,) = [s for s in topic_policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
