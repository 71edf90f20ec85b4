"""Operating it: alarms to one topic, the dashboard, canary deployments with rollback, workflows' IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_synth import Synth, shared_root, synthesized

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Alarm name (without the prefix) -> properties, plus the logical id under ``"_id"``."""
    return {
        a["Properties"]["AlarmName"].removeprefix(synth.cfg.prefix + "-"): {**a["Properties"], "_id": k}
        for k, a in synth.resources("AWS::CloudWatch::Alarm").items()
    }


def test_the_alarms_the_issue_names_exist_and_notify_the_topic(synth: Synth) -> None:
    found = alarms(synth)
    topic = {"Ref": synth.logical_id("topic")}

    # Then: DLQ not empty, tick lag (and ticks stopped), error rates of the api, worker, tick and API 5xx
    assert set(found) == {
        "dlq-not-empty",
        "tick-lag",
        "tick-stopped",
        "api-error-rate",
        "worker-error-rate",
        "tick-error-rate",
        "api-5xx-rate",
    }
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        assert alarm["AlarmDescription"], name
    dlq = found["dlq-not-empty"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert dlq["Dimensions"] == [
        {
            "Name": "QueueName",
            "Value": {"Fn::GetAtt": [synth.logical_id("dlq"), "QueueName"]},
        }
    ]
    # a tick that never runs reports nothing: missing data must count as breaching there
    assert found["tick-stopped"]["TreatMissingData"] == "breaching"
    assert found["tick-stopped"]["Threshold"] == 4 * synth.cfg.shards
    assert "dispatched_late" in found["tick-lag"]["Metrics"][0]["Expression"]
    # and the alarm mail is subscribed
    (subscription,) = synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


def test_error_rates_ignore_single_errors_and_need_two_bad_minutes(synth: Synth) -> None:
    for name in ("api-error-rate", "worker-error-rate", "tick-error-rate", "api-5xx-rate"):
        alarm = alarms(synth)[name]
        (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
        assert expression.startswith("IF("), name  # fewer than MIN_ERRORS errors a minute count as 0%
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Threshold"]) == (2, 2, 5), name


def test_every_function_deploys_through_a_canary_that_rolls_back(synth: Synth) -> None:
    groups = {g["Properties"]["DeploymentGroupName"].removeprefix("tp-test-"): g["Properties"]
              for g in synth.resources("AWS::CodeDeploy::DeploymentGroup").values()}  # fmt: skip
    found = alarms(synth)
    assert set(groups) == {"api", "worker", "tick", "step"}
    for name, group in groups.items():
        assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes", name
        assert group["DeploymentStyle"] == {
            "DeploymentOption": "WITH_TRAFFIC_CONTROL",
            "DeploymentType": "BLUE_GREEN",
        }
        assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"} <= set(
            group["AutoRollbackConfiguration"]["Events"]
        )
    rollback = {
        name: {a["Name"]["Ref"] for a in g.get("AlarmConfiguration", {}).get("Alarms", [])}
        for name, g in groups.items()
    }
    assert rollback["api"] == {found["api-error-rate"]["_id"], found["api-5xx-rate"]["_id"]}
    assert rollback["worker"] == {found["worker-error-rate"]["_id"]}
    assert rollback["tick"] == {found["tick-error-rate"]["_id"]}
    # the step function's errors are workflow nodes' failures by design: no error alarm to roll back on
    assert rollback["step"] == set()
    for name in ("api", "worker", "tick"):
        assert "DEPLOYMENT_STOP_ON_ALARM" in groups[name]["AutoRollbackConfiguration"]["Events"]
    # and the traffic CodeDeploy shifts is the alias everything invokes, on a version of the function
    aliases = synth.resources("AWS::Lambda::Alias")
    assert len(aliases) == 4
    for alias in aliases.values():
        assert alias["Properties"]["Name"] == "live"
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]


def test_the_dashboard_shows_what_operators_need(synth: Synth) -> None:
    (board,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = board["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    for title in (
        "Submissions per lane",
        "Dispatch lateness",
        "Queue depth per lane",
        "Dead letters",
        "Outcomes",
        "Lambda errors",
        "Lambda throttles",
        "Tick lag",
        "API requests, 4xx, 5xx",
        "Alarms",
    ):
        assert title in body, title
    # the platform's EMF metrics are summed over their dimensions (service, tenant, target type, lane)
    assert 'SEARCH(\'{taskplane,lane,service,target_type,tenant} MetricName=\\"submitted\\"' in body


def test_workflows_role_and_the_apis_rights_stop_at_the_name_prefix(synth: Synth) -> None:
    assert synth.has_workflows
    # Given the execution role of every state machine
    role = synth.template["Resources"][synth.logical_id("workflows.role")]["Properties"]
    assert role["RoleName"] == "tp-test-workflows"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "states.amazonaws.com"
    }
    invoke = [s for s in synth.statements_of("workflows.role") if s["Action"] == "lambda:InvokeFunction"]
    assert invoke and synth.logical_id("workflows.alias") in json.dumps(invoke)

    # Then the API manages only state machines named with the prefix, and passes only that role
    api = {s.get("Sid"): s for s in synth.statements_of("api.role")}
    manage = api["ManageWorkflowStateMachines"]
    assert (
        "states:CreateStateMachine" in manage["Action"]
        and "states:PublishStateMachineVersion" in manage["Action"]
    )
    assert json.dumps(manage["Resource"]).endswith(':stateMachine:tp-test-wf-*"]]}')
    passrole = api["PassWorkflowRole"]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}
    assert passrole["Resource"] == {"Fn::GetAtt": [synth.logical_id("workflows.role"), "Arn"]}
    # and the settings the code reads name that same role, prefix and the step alias
    from taskplane.settings import PlatformSettings

    if "state_machine_prefix" not in PlatformSettings.model_fields:
        assert "step" in synth.stubbed, "the step function exists but the settings name no state machines"
        return
    (_, env) = next(
        (k, f["Properties"]["Environment"]["Variables"])
        for k, f in synth.resources("AWS::Lambda::Function").items()
        if f["Properties"]["FunctionName"] == "tp-test-api"
    )
    assert env["TASKPLANE_STATE_MACHINE_PREFIX"] == "tp-test-wf-"
    assert "role/tp-test-workflows" in json.dumps(env["TASKPLANE_STATE_MACHINE_ROLE_ARN"])
    assert "function:tp-test-step:live" in json.dumps(env["TASKPLANE_STEP_FUNCTION_ARN"])


def test_trigger_rules_may_send_to_the_lanes_and_nothing_else_may(synth: Synth) -> None:
    prefix = synth.cfg.trigger_rule_prefix
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        allows = [s for s in statements if s["Effect"] == "Allow"]
        for allow in allows:
            assert allow["Principal"] == {"Service": "events.amazonaws.com"}
            assert allow["Action"] == "sqs:SendMessage"
            arns = json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
            assert f"{prefix}*" in arns and "taskplane-trigger" not in arns, arns
            assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
