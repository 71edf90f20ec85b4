"""Operating it: alarms to one topic, the dashboard, canary deployments with rollback, workflows' IAM."""

from __future__ import annotations

import json
import re
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


def test_the_alarms_the_issue_names_exist_and_notify_the_topics(synth: Synth) -> None:
    found = alarms(synth)
    topic = {"Ref": synth.logical_id("topic")}
    topics = [topic, synth.cfg.alarm_topic_arn]

    # Then: DLQ not empty, the triggers' DLQ not empty, tick errors, lag and stops, error rates of the
    # api and worker, API 5xx, and the step function's own failures
    assert set(found) == {
        "dlq-not-empty",
        "trigger-dlq-not-empty",
        "tick-errors",
        "tick-lag",
        "tick-stopped",
        "api-error-rate",
        "worker-error-rate",
        "api-5xx-rate",
        "step-platform-errors",
    }
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == topics, name
        assert alarm["OKActions"] == topics, name
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
    assert "dispatched_late" in found["tick-lag"]["Metrics"][0]["Expression"]
    # and the alarm mail is subscribed
    (subscription,) = synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Endpoint": "ops@example.com",
        "Protocol": "email",
        "TopicArn": topic,
    }


def test_tick_stopped_is_quiet_on_a_fresh_stack_and_reports_a_real_stop(synth: Synth) -> None:
    stopped = alarms(synth)["tick-stopped"]
    # Runs per minute below one per shard, five minutes in a row: a shard (or all) stopped
    assert (stopped["MetricName"], stopped["Statistic"], stopped["Period"]) == ("Invocations", "Sum", 60)
    assert {"Name": "Resource", "Value": {"Fn::Join": ["", [{"Ref": ANY}, ":live"]]}} != {}
    assert stopped["Threshold"] == synth.cfg.shards
    assert stopped["ComparisonOperator"] == "LessThanThreshold"
    assert (stopped["EvaluationPeriods"], stopped["DatapointsToAlarm"]) == (5, 5)
    # missing data stays missing: a fresh stack (no run yet) is INSUFFICIENT_DATA from creation, which
    # is no change of state and sends nothing; a complete stop turns INSUFFICIENT_DATA after OK, and that
    # change notifies the same topics as ALARM does
    assert stopped["TreatMissingData"] == "missing"
    assert stopped["InsufficientDataActions"] == stopped["AlarmActions"]
    others = {n: a for n, a in alarms(synth).items() if n != "tick-stopped"}
    assert all("InsufficientDataActions" not in a for a in others.values())
    assert all(a["TreatMissingData"] == "notBreaching" for a in others.values())


ANY = object()


def _matches(value: Any, pattern: Any, operator: str) -> bool:
    """One IAM condition value against one request value (CloudFormation tokens compare as data)."""
    import fnmatch

    if isinstance(pattern, str) and isinstance(value, str) and operator in ("ArnLike", "StringLike"):
        return fnmatch.fnmatchcase(value, pattern)
    return value == pattern


def allows(statements: list[dict[str, Any]], request: dict[str, Any]) -> bool:
    """IAM's evaluation for one request on a resource policy: an explicit Deny wins, then any Allow.

    ``request``: principal service, action, resource and the request's condition keys.
    """

    def applies(st: dict[str, Any]) -> bool:
        principal = st["Principal"]
        if principal != "*" and request["service"] not in as_list(principal.get("Service", [])):
            return False
        if request["action"].lower() not in {a.lower() for a in as_list(st["Action"])}:
            return False
        if request["resource"] not in as_list(st["Resource"]):
            return False
        for operator, keys in st.get("Condition", {}).items():
            for key, expected in keys.items():
                actual = request["context"].get(key)
                if operator == "Bool":
                    if str(actual).lower() != str(expected).lower():
                        return False
                elif not any(_matches(actual, e, operator) for e in as_list(expected)):
                    return False
        return True

    if any(applies(st) for st in statements if st["Effect"] == "Deny"):
        return False
    return any(applies(st) for st in statements if st["Effect"] == "Allow")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_alarm_can_publish_to_a_topic_that_reaches_people(synth: Synth) -> None:
    # Given every alarm of the template, and the topic policies
    found = synth.resources("AWS::CloudWatch::Alarm")
    policies = synth.resources("AWS::SNS::TopicPolicy").values()
    subscribed = {
        json.dumps(s["Properties"]["TopicArn"]) for s in synth.resources("AWS::SNS::Subscription").values()
    }
    checked = []

    # When each alarm action is followed to its topic and the topic's policy evaluated for CloudWatch
    for alarm_id, alarm in found.items():
        props = alarm["Properties"]
        actions = props["AlarmActions"]
        assert actions, alarm_id
        own = [a for a in actions if isinstance(a, dict)]
        assert own, f"{alarm_id} notifies no topic of this stack"
        for action in own:
            topic_id = action["Ref"]
            assert synth.template["Resources"][topic_id]["Type"] == "AWS::SNS::Topic"
            (policy,) = [p for p in policies if {"Ref": topic_id} in p["Properties"]["Topics"]]
            statements = policy["Properties"]["PolicyDocument"]["Statement"]
            request = {
                "service": "cloudwatch.amazonaws.com",
                "action": "SNS:Publish",
                "resource": {"Ref": topic_id},
                "context": {
                    "aws:SourceAccount": {"Ref": "AWS::AccountId"},
                    "aws:SourceArn": {"Fn::GetAtt": [alarm_id, "Arn"]},
                    "aws:SecureTransport": "true",
                },
            }
            # Then CloudWatch may publish for this alarm...
            assert allows(statements, request), f"{alarm_id} cannot publish to {topic_id}"
            # ... but not for an alarm of another account, nor one outside this stack, nor without TLS
            assert not allows(
                statements,
                {**request, "context": {**request["context"], "aws:SourceAccount": "999999999999"}},
            )
            other = "arn:aws:cloudwatch:us-east-1:111122223333:alarm:someone-else"
            assert not allows(
                statements, {**request, "context": {**request["context"], "aws:SourceArn": other}}
            )
            assert not allows(
                statements, {**request, "context": {**request["context"], "aws:SecureTransport": "false"}}
            )
            # and someone reads the topic
            assert json.dumps({"Ref": topic_id}) in subscribed
        # (the existing topic's policy belongs to its owner: DEPLOY.md says what it must allow)
        assert [a for a in actions if isinstance(a, str)] == [synth.cfg.alarm_topic_arn]
        checked.append(alarm_id)

    # and the walk was not vacuous: every alarm was followed
    assert sorted(checked) == sorted(found) and len(checked) == 9


# -- canaries ------------------------------------------------------------------------------------------

#: CodeDeploy's predefined Lambda configurations: (percent to the new version, minutes of the canary).
PREDEFINED = {
    "CodeDeployDefault.LambdaCanary10Percent5Minutes": (10, 5),
    "CodeDeployDefault.LambdaCanary10Percent10Minutes": (10, 10),
    "CodeDeployDefault.LambdaCanary10Percent15Minutes": (10, 15),
    "CodeDeployDefault.LambdaCanary10Percent30Minutes": (10, 30),
}


def binomial_at_least(n: int, p: float, k: int) -> float:
    from math import comb

    return sum(comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(k, n + 1))


def fire_probability(alarm: dict[str, Any], *, per_minute: float, percent: float, minutes: int) -> float:
    """How likely ``alarm`` fires inside the canary when every call of the new version fails.

    The alias sends each call to the new version with probability ``percent``; ``per_minute`` calls a
    minute reach the alias. A period's datapoint lands about one period after it closes, so the periods
    that can count are the canary's minus one. ``DatapointsToAlarm`` of ``EvaluationPeriods`` must
    breach; periods before the deploy do not. 0 for an alarm whose metric a failing release does not
    drive (lag, stops).
    """
    import itertools

    periods = [m.get("Period") or m.get("MetricStat", {}).get("Period") for m in alarm.get("Metrics", [])]
    period = alarm.get("Period") or next(p for p in periods if p)
    calls = round(per_minute * period / 60)
    usable = minutes * 60 // period - 1
    m, n = alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]), alarm["EvaluationPeriods"]
    threshold, operator = alarm["Threshold"], alarm["ComparisonOperator"]

    def value(failures: int) -> float | None:
        """The alarm's datapoint for a period with ``failures`` of its ``calls`` failed."""
        if alarm.get("MetricName") == "Errors":
            return failures
        expression = next((x["Expression"] for x in alarm.get("Metrics", []) if "Expression" in x), "")
        if expression.startswith("SELECT SUM(step_platform_errors)"):
            return failures
        guard = re.fullmatch(r"IF\((\w+) >= (\d+), 100 \* \1 / (\w+), 0\)", expression)
        if guard:
            return 100 * failures / calls if failures >= int(guard.group(2)) and calls else 0
        return None

    def breaches(v: float) -> bool:
        return {
            "GreaterThanOrEqualToThreshold": v >= threshold,
            "GreaterThanThreshold": v > threshold,
        }.get(operator, False)

    if value(calls) is None:
        return 0.0
    needed = next((k for k in range(calls + 1) if breaches(value(k) or 0)), None)
    if needed is None or usable < m:
        return 0.0
    p = binomial_at_least(calls, percent / 100, needed)
    fired = 0.0
    for pattern in itertools.product((0, 1), repeat=usable):
        if any(sum(pattern[max(0, j - n + 1) : j + 1]) >= m for j in range(usable)):
            fired += p ** sum(pattern) * (1 - p) ** (usable - sum(pattern))
    return fired


def test_the_canary_model_is_not_vacuous() -> None:
    # Given the tick's old setup: a 10% canary, any error fires, one shard (one run a minute)
    errors = {"MetricName": "Errors", "Period": 60, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
              "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold"}  # fmt: skip
    rate = {"Metrics": [{"Expression": "IF(errors >= 3, 100 * errors / invocations, 0)", "Period": 60}],
            "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 5,
            "ComparisonOperator": "GreaterThanThreshold"}  # fmt: skip
    # Then it rarely fires (0.9^4: no run of the four usable minutes reaches the new version) ...
    assert fire_probability(errors, per_minute=1, percent=10, minutes=5) == pytest.approx(1 - 0.9**4)
    # ... and the old error-rate alarm (3 errors a minute) never does at one or two runs a minute, and
    # next to never at prod's four
    assert fire_probability(rate, per_minute=1, percent=10, minutes=5) == 0
    assert fire_probability(rate, per_minute=2, percent=10, minutes=5) == 0
    assert fire_probability(rate, per_minute=4, percent=10, minutes=5) < 0.001
    # while half the runs on the new version make a failing one visible in 15 of 16 canaries
    assert fire_probability(errors, per_minute=1, percent=50, minutes=5) == pytest.approx(1 - 0.5**4)


def test_every_deployment_group_rolls_back_on_an_alarm_that_fires_at_its_real_rate(synth: Synth) -> None:
    from infra.capabilities.function import CANARY_TRAFFIC_PER_MINUTE

    resources = synth.template["Resources"]
    found = alarms(synth)
    by_id = {a["_id"]: a for a in found.values()}
    groups = synth.resources("AWS::CodeDeploy::DeploymentGroup")
    aliases = {
        a["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"]: alias_id
        for alias_id, a in synth.resources("AWS::Lambda::Alias").items()
    }
    judged = {}
    for group_id, group in groups.items():
        props = group["Properties"]
        name = props["DeploymentGroupName"].removeprefix(synth.cfg.prefix + "-")
        # the traffic the new version gets, and for how long
        config = props["DeploymentConfigName"]
        if isinstance(config, dict):
            routing = resources[config["Ref"]]["Properties"]["TrafficRoutingConfig"]["TimeBasedCanary"]
            percent, minutes = routing["CanaryPercentage"], routing["CanaryInterval"]
        else:
            percent, minutes = PREDEFINED[config]
        # the function's real rate: the tick's from its rules, the others' the documented deploy traffic
        alias_id = aliases[group_id]
        rules = [
            r for r in synth.resources("AWS::Events::Rule").values()
            if any(t["Arn"] == {"Ref": alias_id} for t in r["Properties"].get("Targets", []))
        ]  # fmt: skip
        if rules:
            assert all(r["Properties"]["ScheduleExpression"] == "rate(1 minute)" for r in rules)
            per_minute = float(len(rules))
        else:
            per_minute = CANARY_TRAFFIC_PER_MINUTE
        # Then it rolls back when an alarm fires...
        assert "DEPLOYMENT_STOP_ON_ALARM" in props["AutoRollbackConfiguration"]["Events"], name
        watched = [by_id[a["Name"]["Ref"]] for a in props["AlarmConfiguration"]["Alarms"]]
        # ...and at least one of its alarms fires for a broken release in 9 canaries of 10
        best = max(
            fire_probability(a, per_minute=per_minute, percent=percent, minutes=minutes) for a in watched
        )
        judged[name] = round(best, 3)
        assert best >= 0.9, (name, per_minute, percent, best)
    assert set(judged) == {"api", "worker", "tick", "step"}
    # the tick judges itself from its own three runs a minute, on half of them
    assert synth.cfg.shards == 3 and judged["tick"] == pytest.approx(
        1 - (1 - binomial_at_least(3, 0.5, 1)) ** 4, abs=1e-3
    )


def test_every_function_deploys_through_a_canary_that_rolls_back(synth: Synth) -> None:
    groups = {g["Properties"]["DeploymentGroupName"].removeprefix("tp-test-"): g["Properties"]
              for g in synth.resources("AWS::CodeDeploy::DeploymentGroup").values()}  # fmt: skip
    found = alarms(synth)
    assert set(groups) == {"api", "worker", "tick", "step"}
    for name, group in groups.items():
        if name != "tick":
            assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes", name
        assert group["DeploymentStyle"] == {
            "DeploymentOption": "WITH_TRAFFIC_CONTROL",
            "DeploymentType": "BLUE_GREEN",
        }
        assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"} <= set(
            group["AutoRollbackConfiguration"]["Events"]
        )
    rollback = {
        name: {a["Name"]["Ref"] for a in g.get("AlarmConfiguration", {}).get("Alarms", [])}
        for name, g in groups.items()
    }
    assert rollback["api"] == {found["api-error-rate"]["_id"], found["api-5xx-rate"]["_id"]}
    assert rollback["worker"] == {found["worker-error-rate"]["_id"]}
    assert rollback["tick"] == {found["tick-errors"]["_id"], found["tick-lag"]["_id"]}
    # the step function's Lambda errors are mostly workflow nodes' failures: it watches its own faults
    assert rollback["step"] == {found["step-platform-errors"]["_id"]}
    # and the traffic CodeDeploy shifts is the alias everything invokes, on a version of the function
    aliases = synth.resources("AWS::Lambda::Alias")
    assert len(aliases) == 4
    for alias in aliases.values():
        assert alias["Properties"]["Name"] == "live"
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]


def test_the_step_function_counts_its_own_failures_apart_from_its_nodes(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the step handler whose platform cannot even be built, and one whose node fails
    from functions.step import handler
    from infra.capabilities.workflows import PLATFORM_ERRORS_METRIC
    from taskplane import wiring
    from taskplane.domain.errors import NodeFailed
    from taskplane.local.context import LocalContext

    assert handler.PLATFORM_ERRORS_METRIC == PLATFORM_ERRORS_METRIC  # the alarm reads what is written
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    event = {
        "action": "run",
        "node": "a",
        "run": {"tenant": "acme", "run_id": "r", "workflow": "w", "version": 1, "exec": 1},
    }

    def broken() -> Any:
        raise RuntimeError("no table")

    monkeypatch.setattr(wiring, "platform", broken)
    with pytest.raises(RuntimeError):
        handler.lambda_handler(event, LocalContext(function_name="tp-step"))
    printed = capsys.readouterr().out
    assert f'"{PLATFORM_ERRORS_METRIC}"' in printed and '"target_type": "platform"' in printed.replace(
        '":"', '": "'
    )

    class Steps:
        def handle(self, _event: Any) -> Any:
            raise NodeFailed("a: HTTPError: 500")

    class Platform:
        steps = Steps()
        telemetry = __import__("taskplane.observability", fromlist=["MetricsBuffer"]).MetricsBuffer()
        tracing = __import__("taskplane.tracing", fromlist=["NULL_TRACING"]).NULL_TRACING

    monkeypatch.setattr(wiring, "platform", lambda: Platform())
    with pytest.raises(NodeFailed):
        handler.lambda_handler(event, LocalContext(function_name="tp-step"))
    assert PLATFORM_ERRORS_METRIC not in capsys.readouterr().out


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
        "Wheel shards: weight on the ring",
        "Wheel shards: tick lag",
    ):
        assert title in body, title
    # the platform's EMF metrics are summed over their dimensions (service, tenant, target type, lane)
    assert 'SEARCH(\'{taskplane,lane,service,target_type,tenant} MetricName=\\"submitted\\"' in body
    # and the wheel's shards one line each, whatever their number after a reshard (the tick's gauges)
    assert "SEARCH('{taskplane,service,shard} MetricName=\\\"wheel_weight\\\"', 'Average'" in body
    assert "SEARCH('{taskplane,service,shard} MetricName=\\\"wheel_lag_ms\\\"', 'Maximum'" in body


def test_workflows_role_and_the_apis_rights_stop_at_the_name_prefix(synth: Synth) -> None:
    assert synth.has_workflows
    # Given the execution role of every state machine
    role = synth.template["Resources"][synth.logical_id("workflows.role")]["Properties"]
    # named with the region too: IAM names are global to the account, and one environment may be
    # deployed to several regions of it
    assert role["RoleName"] == {"Fn::Join": ["", ["tp-test-workflows-", {"Ref": "AWS::Region"}]]}
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
    assert ':role/tp-test-workflows-", {"Ref": "AWS::Region"}' in json.dumps(
        env["TASKPLANE_STATE_MACHINE_ROLE_ARN"]
    )
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


def test_the_tick_shifts_to_a_new_version_only_after_the_worker_has(synth: Synth) -> None:
    # A new tick sends lane messages (a window's end) that an older worker cannot read: CloudFormation
    # updates the tick's alias (its CodeDeploy traffic shifting) after the worker's alias update ends
    aliases = synth.resources("AWS::Lambda::Alias")
    by_function = {a["Properties"]["FunctionName"]["Ref"]: (alias_id, a) for alias_id, a in aliases.items()}
    functions = synth.resources("AWS::Lambda::Function")
    named = {f["Properties"]["FunctionName"]: fid for fid, f in functions.items()}
    tick_id, tick_alias = by_function[named[f"{synth.cfg.prefix}-tick"]]
    worker_id, worker_alias = by_function[named[f"{synth.cfg.prefix}-worker"]]
    assert worker_id in tick_alias.get("DependsOn", [])
    assert tick_id not in worker_alias.get("DependsOn", [])
