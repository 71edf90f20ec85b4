"""Every AWS call the integration suite makes is one its function's role allows (least privilege, proven).

moto enforces no IAM, so a missing grant would first show as AccessDenied in AWS. ``make test`` runs
the suite with ``tests/aws_calls.py`` recording each boto3 call (service, operation, the parameters
that name its resource, and the platform function whose code made it), then this module: each call
becomes the IAM requests AWS would authorize (action, resource ARN, condition keys), evaluated
against the policies of that function's role in the synthesized template. A call the role would
deny fails the test; a grant no call used is listed, and must be one of :data:`EXPECTED_UNUSED`
(each with the reason it stays), so a new over-grant fails too.

Local names are the template's with another prefix (``taskplane-tasks`` there is ``tp-test-tasks``
here); a task target's name ``x`` is taken as the allow-listed ``tp-test-target-x``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.infra

RECORDS = os.environ.get("TASKPLANE_RECORD_AWS_CALLS", "")
REGION, ACCOUNT = "us-east-1", "123456789012"
DEPLOYED = "tp-test-"
FUNCTIONS = ("api", "worker", "tick", "step")

#: Grants no recorded call uses, and why each stays. Anything else unused fails the test.
EXPECTED_UNUSED: dict[tuple[str, str], str] = {
    **{
        (fn, action): "Lambda writes the function's logs and traces itself, not the function's code"
        for fn in FUNCTIONS
        for action in (
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
        )
    },
    **{
        ("worker", action): "the lanes' event source mappings poll and delete with the worker's role"
        for action in (
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        )
    },
    ("step", "events:PutEvents"): "EventBridge targets of workflow nodes: no integration test runs one",
    ("worker", "events:PutEvents"): "EventBridge targets: the suite publishes through the runners "
    "(test_aws_targets.py) and POST /v1/events, not through a worker task",
    **{
        (fn, "sqs:SendMessage"): "SQS targets of the allow-list (the lanes' own sends are used)"
        for fn in ("step",)
    },
    (
        "step",
        "lambda:InvokeFunction",
    ): "the allow-list's full ARN (another account's function) is never called here",
    ("worker", "lambda:InvokeFunction"): "task targets: the suite calls Lambda targets through the runners "
    "(test_aws_targets.py) and through workflow nodes, not through a worker task; and the tick's live alias "
    "(a retry or watch due soon wakes it: the api's wake, test_wheel.py, makes the same call)",
    ("worker", "sqs:SendMessage"): "a delivery goes back onto its own lane (the suite's retried tasks are on "
    "'default'); SQS targets as for Lambda",
    (
        "api",
        "logs:CreateLogDelivery",
    ): "state machine log delivery (CreateStateMachine with a logging configuration)",
    **{
        (
            "api",
            action,
        ): "state machine log delivery: set up by Step Functions as the caller of CreateStateMachine"
        for action in (
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        )
    },
    **{
        ("api", action): "trigger rules on every bus a tenant may listen on (the platform's and each "
        "external_events bus): the suite makes and removes rules on some of them only"
        for action in ("events:PutRule", "events:PutTargets", "events:RemoveTargets", "events:DeleteRule")
    },
    **{
        (
            "worker",
            action,
        ): "triggers (infra/capabilities/triggers.py, grant_read_data on the schedules table): the "
        "worker reads a trigger with GetItem only; that file belongs to the trigger redesign (issue 12)"
        for action in (
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DescribeTable",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:Query",
            "dynamodb:Scan",
        )
    },
}

#: Item reads and writes are granted per table in pairs (GetItem+Query, PutItem+UpdateItem:
#: storage.grant_items); the suite need not use both halves on every table.
PAIRED: dict[tuple[str, str], str] = {
    (fn, action): "item reads (GetItem+Query) and writes (PutItem+UpdateItem) are granted in pairs"
    for fn in FUNCTIONS
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem")
}

pytestmark = [pytest.mark.infra]


@pytest.fixture(scope="module")
def calls() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(Path(RECORDS).glob("calls-*.json")):
        found += json.loads(path.read_text())
    assert found, f"no recorded calls in {RECORDS!r}: run through `make test`"
    return found


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from infra_synth import shared_root, synthesized

    return synthesized(shared_root(tmp_path_factory))


# -- the template's resources as ARNs --------------------------------------------------------------

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


def render(value: Any, resources: dict[str, Any]) -> str:
    """A CloudFormation value as the string AWS would see (pseudo parameters of the test account)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p, resources) for p in parts)
    if "Ref" in value:
        name = value["Ref"]
        if name in PSEUDO:
            return PSEUDO[name]
        resource = resources[name]
        props = resource["Properties"]
        if resource["Type"] == "AWS::Lambda::Alias":
            function = render({"Ref": props["FunctionName"]["Ref"]}, resources)
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{props['Name']}"
        if resource["Type"] == "AWS::Lambda::Function":
            return props["FunctionName"]
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::Events::EventBus"):
            return props.get("TableName") or props["Name"]
        return f"<{name}>"
    if "Fn::GetAtt" in value:
        name, attribute = value["Fn::GetAtt"]
        resource = resources[name]
        props = resource["Properties"]
        kind = resource["Type"]
        if attribute == "Arn" and kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{props['TableName']}"
        if attribute == "Arn" and kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{props['QueueName']}"
        if attribute == "Arn" and kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{props['FunctionName']}"
        if attribute == "Arn" and kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{render(props.get('RoleName', name), resources)}"
        if attribute == "Arn" and kind == "AWS::Events::EventBus":
            return f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{props['Name']}"
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{BUCKET}"  # named by CloudFormation: the test's name for it
        if attribute == "Arn" and kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{props['LogGroupName']}:*"
        return f"<{name}.{attribute}>"
    return f"<{next(iter(value))}>"


def role_statements(synth: Any, function: str) -> list[dict[str, Any]]:
    resources = synth.template["Resources"]
    found = []
    for st in synth.statements_of(f"{function}.role"):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        targets = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        found.append(
            {
                "sid": st.get("Sid"),
                "effect": st["Effect"],
                "actions": actions,
                "resources": [render(r, resources) for r in targets],
                "condition": st.get("Condition", {}),
            }
        )
    return found


# -- calls as IAM requests ------------------------------------------------------------------------


#: Platform resources as the tests name them (``<any prefix>-<kind>``) and as the template does.
_PLATFORM = re.compile(
    r"^[a-z0-9-]+?-(?P<kind>tasks|idempotency|control|wheel|schedules|workflows|runs|high|default|low|trigger-dlq|dlq"
    r"|api|worker|tick|step|events|blobs|wf-.*|trg-.*)$"
)


#: What the checks call the platform's bucket (its real name is CloudFormation's choice).
BUCKET = "platform-bucket"


def deployed(name: str) -> str:
    """A local platform resource's name in the test environment's template (``tp-test-<kind>``)."""
    match = _PLATFORM.match(name)
    return DEPLOYED + match.group("kind") if match else name


def target_name(name: str) -> str:
    """A task target's name as the allow-list has it (a platform resource keeps its own)."""
    return deployed(name) if _PLATFORM.match(name) else f"{DEPLOYED}target-{name}"


def lambda_arn(name: str, qualifier: str | None, target: bool) -> str:
    parts = name.split(":")
    if name.startswith("arn:"):
        function, qualifier = parts[6], parts[7] if len(parts) > 7 else qualifier
    else:
        function = parts[0]
        qualifier = parts[1] if len(parts) > 1 else qualifier
    function = target_name(function) if target else deployed(function)
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
    # A platform function is always called through its live alias (settings name it so in AWS).
    if not target and qualifier is None:
        qualifier = "live"
    return f"{arn}:{qualifier}" if qualifier else arn


def states_arn(arn: str) -> str:
    """A state machine, version, alias or execution ARN as the template's environment names it."""
    kind = "stateMachine" if ":stateMachine:" in arn else "execution"
    rest = arn.split(f":{kind}:", 1)[1]
    return f"arn:aws:states:{REGION}:{ACCOUNT}:{kind}:{deployed(rest)}"


SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def requests(call: dict[str, Any], workflows_role_arn: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """What AWS authorizes for one call: ``[(action, [resource ARNs, any may match], condition keys)]``."""
    service, op, p, target = call["service"], call["operation"], call["params"], call["target"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{}}"
    if service == "dynamodb":
        if op == "BatchWriteItem" or op == "BatchGetItem":
            return [(f"dynamodb:{op}", [table.format(deployed(t))], {}) for t in p["RequestItems"]]
        if op == "TransactWriteItems":
            return [
                (f"dynamodb:{TRANSACT[k]}", [table.format(deployed(t))], {}) for k, t in p["TransactItems"]
            ]
        return [(f"dynamodb:{op}", [table.format(deployed(p["TableName"]))], {})]
    if service == "sqs":
        queue = urlparse(p["QueueUrl"]).path.rsplit("/", 1)[-1]
        name = target_name(queue) if target else deployed(queue)
        return [(f"sqs:{SQS_ACTIONS.get(op, op)}", [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"], {})]
    if service == "lambda" and op == "Invoke":
        return [("lambda:InvokeFunction", [lambda_arn(p["FunctionName"], p.get("Qualifier"), target)], {})]
    if service == "stepfunctions":
        action = f"states:{op}"
        for key in ("stateMachineArn", "stateMachineVersionArn", "stateMachineAliasArn", "executionArn"):
            if key in p:
                found = [(action, [states_arn(p[key])], {})]
                break
        else:
            if op == "CreateStateMachineAlias":  # the alias of the machine whose versions it routes to
                version = states_arn(p["routingConfiguration"][0])
                return [(action, [f"{version.rsplit(':', 1)[0]}:{p['name']}", version], {})]
            # CreateStateMachine names the machine; a task token names nothing, and answers a gate of
            # one of the platform's machines
            machine = deployed(p["name"]) if "name" in p else f"{DEPLOYED}wf-any"
            found = [(action, [f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"], {})]
        if p.get("publish"):  # publishing a version while creating or updating the machine
            found.append(("states:PublishStateMachineVersion", found[0][1], {}))
        if op == "CreateStateMachine":
            found.append(
                ("iam:PassRole", [workflows_role_arn], {"iam:PassedToService": "states.amazonaws.com"})
            )
            if p.get("tags"):
                found.append(("states:TagResource", found[0][1], {}))
            if p.get("logging"):
                found.append(("logs:CreateLogDelivery", ["*"], {}))
        return found
    if service == "events":
        bus = p.get("EventBusName", "default")
        if op == "PutEvents":
            buses = p.get("Entries") or ["default"]
            name = target_name if target else deployed  # a task's bus, or the platform's own
            return [
                ("events:PutEvents", [f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name(b)}"], {})
                for b in buses
            ]
        rule = deployed(p.get("Name") or p.get("Rule"))
        bus = deployed(bus)
        path = rule if bus == "default" else f"{bus}/{rule}"
        return [(f"events:{op}", [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{path}"], {})]
    if service == "s3":
        # The platform's bucket (CloudFormation names it; the tests' is <prefix>-blobs).
        obj = f"arn:aws:s3:::{BUCKET}/{{}}"
        tagging = [("s3:PutObjectTagging", [obj.format(p["Key"])], {})] if p.get("Tagging") else []
        if op in ("GetObject", "HeadObject"):
            return [("s3:GetObject", [obj.format(p["Key"])], {})]
        if op == "PutObject":
            return [("s3:PutObject", [obj.format(p["Key"])], {}), *tagging]
        if op == "CopyObject":
            source = p["CopySource"]
            return [
                ("s3:GetObject", [obj.format(source["Key"])], {}),
                ("s3:PutObject", [obj.format(p["Key"])], {}),
                *tagging,
            ]
    raise AssertionError(f"no IAM mapping for {service}.{op}: add one")


def allowed(
    statements: list[dict[str, Any]], action: str, resources: list[str], context: dict[str, str]
) -> list[tuple[int, str, str]]:
    """The grants that allow the request: (statement index, its action, its resource) each.

    IAM: an identity policy's Allow statements (none here denies), any one of them enough.
    """
    granted = []
    for i, st in enumerate(statements):
        if st["effect"] != "Allow":
            continue
        actions = [a for a in st["actions"] if fnmatch.fnmatchcase(action.lower(), a.lower())]
        patterns = [p for p in st["resources"] if any(fnmatch.fnmatchcase(r, p) for r in resources)]
        if not actions or not patterns:
            continue
        ok = True
        for operator, keys in st["condition"].items():
            for key, expected in keys.items():
                expected = expected if isinstance(expected, list) else [expected]
                if operator != "StringEquals" or context.get(key) not in expected:
                    ok = False
        if ok:
            granted += [(i, a, p) for a in actions for p in patterns]
    return granted


def test_every_recorded_call_is_allowed_by_its_functions_role_and_every_grant_is_used(
    calls: list[dict[str, Any]], synth: Any
) -> None:
    # Given each function's role in the synthesized template
    statements = {fn: role_statements(synth, fn) for fn in FUNCTIONS}
    workflows_role = render(
        {"Fn::GetAtt": [synth.logical_id("workflows.role"), "Arn"]}, synth.template["Resources"]
    )
    used: dict[str, set[tuple[int, str, str]]] = defaultdict(set)
    denied, checked, per_function = [], 0, Counter()

    # When every call a function made is turned into the requests AWS would authorize
    for call in calls:
        function = call["function"]
        if function is None:
            continue  # a fixture or a test itself, not a platform function
        for action, resources, context in requests(call, workflows_role):
            checked += call["count"]
            per_function[function] += call["count"]
            granted = allowed(statements[function], action, resources, context)
            if not granted:
                denied.append(
                    f"{function}: {action} on {resources} ({call['operation']} in {call.get('test')})"
                )
            used[function].update(granted)

    # Then the role allows each of them
    assert denied == [], f"{len(denied)} calls the role would deny in AWS:\n" + "\n".join(
        sorted(set(denied))[:40]
    )
    # and every function was exercised (the check is not vacuous)
    assert set(per_function) == set(FUNCTIONS), per_function
    assert checked > 10_000

    # and every grant is used by some call, or is one the list above explains
    unused = {
        (function, action, resource)
        for function in FUNCTIONS
        for i, st in enumerate(statements[function])
        for action in st["actions"]
        for resource in st["resources"]
        if (i, action, resource) not in used[function]
    }
    reasons = {**PAIRED, **EXPECTED_UNUSED}
    explained = {(fn, a, r) for fn, a, r in unused if (fn, a) in reasons}
    print(f"\nIAM coverage: {checked} calls checked ({dict(per_function)}); grants kept unused:")
    for function, action, resource in sorted(explained):
        print(f"  {function}: {action} on {resource}: {reasons[(function, action)]}")
    unexplained = sorted(unused - explained)
    assert unexplained == [], (
        "grants no call uses (remove them, or explain them in EXPECTED_UNUSED):\n"
        + "\n".join(f"  {fn}: {a} on {r}" for fn, a, r in unexplained)
    )
    # and the list explains nothing that is in fact used or no longer granted
    stale = sorted(set(EXPECTED_UNUSED) - {(fn, a) for fn, a, _ in unused})
    assert stale == [], f"EXPECTED_UNUSED names grants that are used or gone: {stale}"


def test_the_mapping_knows_what_aws_authorizes() -> None:
    # A transaction is authorized per item and table; a batch send as SendMessage; a bare function
    # name as the platform's live alias, a target's as the allow-listed name
    assert requests(
        {"service": "dynamodb", "operation": "TransactWriteItems", "target": False,
         "params": {"TransactItems": [["ConditionCheck", "taskplane-tasks"], ["Put", "taskplane-wheel"]]}},
        "",
    ) == [
        ("dynamodb:ConditionCheckItem", [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tp-test-tasks"], {}),
        ("dynamodb:PutItem", [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tp-test-wheel"], {}),
    ]  # fmt: skip
    sqs = {"service": "sqs", "operation": "SendMessageBatch", "target": False,
           "params": {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/taskplane-high"}}  # fmt: skip
    assert requests(sqs, "") == [("sqs:SendMessage", [f"arn:aws:sqs:{REGION}:{ACCOUNT}:tp-test-high"], {})]
    invoke = {
        "service": "lambda",
        "operation": "Invoke",
        "target": True,
        "params": {"FunctionName": "resize"},
    }
    assert requests(invoke, "")[0][1] == [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tp-test-target-resize"]
    # and a statement grants only its actions, on its resources, under its conditions
    st = [{"effect": "Allow", "actions": ["iam:PassRole"], "resources": ["arn:aws:iam::1:role/r"],
           "condition": {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}}]  # fmt: skip
    assert allowed(
        st, "iam:PassRole", ["arn:aws:iam::1:role/r"], {"iam:PassedToService": "states.amazonaws.com"}
    )
    assert not allowed(
        st, "iam:PassRole", ["arn:aws:iam::1:role/r"], {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    assert not allowed(
        st, "iam:PassRole", ["arn:aws:iam::1:role/other"], {"iam:PassedToService": "states.amazonaws.com"}
    )
    assert re.fullmatch(
        r"arn:aws:states:[^:]+:\d+:stateMachine:tp-test-wf-x",
        states_arn("arn:aws:states:us-east-1:123456789012:stateMachine:taskplane-wf-x"),
    )
