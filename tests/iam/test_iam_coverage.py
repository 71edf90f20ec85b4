"""Every AWS call the integration suite makes is one its function's role allows (least privilege, proven).

moto enforces no IAM, so a missing grant would first show as AccessDenied in AWS. ``make test`` runs
the suite with ``tests/aws_calls.py`` recording each boto3 call (service, operation, the parameters
that name its resource, and the platform function whose code made it), then this module: each call
becomes the IAM requests AWS would authorize (action, resource ARN, condition keys: a DynamoDB
request's ``dynamodb:LeadingKeys`` are the partition keys it names), evaluated
against the policies of that function's role in the synthesized template. A call the role would
deny fails the test; a grant no call used is listed, and must be one of :data:`EXPECTED_UNUSED`
(each with the reason it stays), so a new over-grant fails too.

Shared tables hold several item kinds; a function that needs only some is granted them by partition
key (infra/capabilities/storage.py ``Items``), and :data:`REACH` states what each function may read and
write of every kind, checked against the template with keys made by the adapters themselves.

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

from infra.capabilities.storage import LEADING_KEY_ACTIONS

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


def leading(call: dict[str, Any], keys: list[str] | None, action: str = "") -> dict[str, Any]:
    """The ``dynamodb:LeadingKeys`` of a request: the partition keys it names (tests/aws_calls.py).

    An item action always names them; one the recorder could not read would pass every
    ``ForAllValues`` condition unchecked, so it fails here instead.
    """
    if not action or action in LEADING_KEY_ACTIONS:
        assert keys, (
            f"no partition key recorded for {call['operation']} ({call.get('test')}): teach leading_keys"
        )
        return {"dynamodb:LeadingKeys": list(keys)}
    return {}


def requests(call: dict[str, Any], workflows_role_arn: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """What AWS authorizes for one call: ``[(action, [resource ARNs, any may match], condition keys)]``."""
    service, op, p, target = call["service"], call["operation"], call["params"], call["target"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{}}"
    if service == "dynamodb":
        named = p.get("LeadingKeys")
        if op == "BatchWriteItem" or op == "BatchGetItem":  # one request per table, all its keys at once
            return [
                (f"dynamodb:{op}", [table.format(deployed(t))], leading(call, named[t]))
                for t in p["RequestItems"]
            ]
        if op == "TransactWriteItems":  # each item on its own
            return [
                (f"dynamodb:{TRANSACT[k]}", [table.format(deployed(t))], leading(call, [key]))
                for (k, t), key in zip(p["TransactItems"], named, strict=True)
            ]
        action = f"dynamodb:{op}"
        return [(action, [table.format(deployed(p["TableName"]))], leading(call, named, action))]
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


def like(value: str, pattern: str) -> bool:
    """IAM's ``StringLike``: ``*`` any run of characters, ``?`` one, everything else itself (case
    counts; no ``[...]`` classes, unlike fnmatch)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


#: Condition operators on one value (the request's) against the policy's values, any one enough;
#: a negated operator holds when the value matches none of them.
OPERATORS = {
    "StringEquals": lambda value, expected: value in expected,
    "StringLike": lambda value, expected: any(like(value, e) for e in expected),
    "StringNotLike": lambda value, expected: not any(like(value, e) for e in expected),
}


def holds(operator: str, value: Any, expected: list[str]) -> bool:
    """One condition of a statement, as IAM evaluates it.

    ``ForAllValues:<op>``: every value of the request's set passes ``<op>``; a request without the key
    (an empty set) passes too, which is why such a condition must only sit on actions that carry it.
    A single-valued operator fails when the request lacks the key.
    """
    qualifier, _, base = operator.rpartition(":")
    if base not in OPERATORS or qualifier not in ("", "ForAllValues"):
        raise AssertionError(f"no evaluation for the condition operator {operator}: add one")
    test = OPERATORS[base]
    if qualifier == "ForAllValues":
        return all(test(v, expected) for v in value or [])
    return value is not None and not isinstance(value, list) and test(value, expected)


def allowed(
    statements: list[dict[str, Any]], action: str, resources: list[str], context: dict[str, Any]
) -> list[tuple[int, str, str]]:
    """The grants that allow the request: (statement index, its action, its resource) each.

    IAM: an identity policy's Allow statements (none here denies), any one of them enough, and one
    allows only when all of its conditions hold (operators and keys are ANDed, a key's values ORed).
    """
    granted = []
    for i, st in enumerate(statements):
        if st["effect"] != "Allow":
            continue
        actions = [a for a in st["actions"] if fnmatch.fnmatchcase(action.lower(), a.lower())]
        patterns = [p for p in st["resources"] if any(fnmatch.fnmatchcase(r, p) for r in resources)]
        if not actions or not patterns:
            continue
        ok = all(
            holds(operator, context.get(key), expected if isinstance(expected, list) else [expected])
            for operator, keys in st["condition"].items()
            for key, expected in keys.items()
        )
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


#: Partition key patterns of narrowed grants the suite may not reach, and why each stays:
#: (function, "reads" / "writes" / "reads and writes", pattern) -> reason.
EXPECTED_UNUSED_KEYS: dict[tuple[str, str, str], str] = {
    ("step", "reads", "V#*"): "a node's workflow version (services/steps.py Catalog.load, GetItem V#...) is "
    "read once per process; in the suite the API's publish, in the same process, has mostly cached it "
    "already (WorkflowStore.version's cache): reached in some runs, not in others",
}


def access_of(actions: list[str]) -> str:
    reads = any(a.rsplit(":", 1)[1].startswith(("Get", "BatchGet", "Query")) for a in actions)
    writes = any(not a.rsplit(":", 1)[1].startswith(("Get", "BatchGet", "Query")) for a in actions)
    return "reads and writes" if reads and writes else "reads" if reads else "writes"


def test_every_item_kind_a_narrowed_grant_names_is_used(calls: list[dict[str, Any]], synth: Any) -> None:
    # Given every narrowed statement (dynamodb:LeadingKeys patterns) of every function's role
    statements = {fn: role_statements(synth, fn) for fn in FUNCTIONS}
    patterns = {
        (fn, i, pattern)
        for fn in FUNCTIONS
        for i, st in enumerate(statements[fn])
        for pattern in st["condition"].get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys", [])
    }
    assert patterns

    # When the recorded calls are authorized, noting which pattern each partition key matched
    used = set()
    for call in calls:
        if call["function"] is None or call["service"] != "dynamodb":
            continue
        fn = call["function"]
        for action, resources, context in requests(call, ""):
            for i in {i for i, _, _ in allowed(statements[fn], action, resources, context)}:
                for pattern in st_like(statements[fn][i]):
                    if any(like(key, pattern) for key in context.get("dynamodb:LeadingKeys", [])):
                        used.add((fn, i, pattern))

    # Then every item kind a grant names is one some call reaches, or one the list explains
    unused = {(fn, access_of(statements[fn][i]["actions"]), p) for fn, i, p in patterns - used}
    unexplained = sorted(unused - set(EXPECTED_UNUSED_KEYS))
    assert unexplained == [], f"narrowed grants name kinds no call reaches (remove or explain): {unexplained}"
    # and the list names only kinds still granted (one the suite reaches only sometimes may stay)
    granted = {(fn, access_of(statements[fn][i]["actions"]), p) for fn, i, p in patterns}
    stale = sorted(set(EXPECTED_UNUSED_KEYS) - granted)
    assert stale == [], f"EXPECTED_UNUSED_KEYS names kinds no longer granted: {stale}"


def st_like(statement: dict[str, Any]) -> list[str]:
    return statement["condition"].get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys", [])


def test_the_mapping_knows_what_aws_authorizes() -> None:
    # A transaction is authorized per item and table; a batch send as SendMessage; a bare function
    # name as the platform's live alias, a target's as the allow-listed name
    assert requests(
        {"service": "dynamodb", "operation": "TransactWriteItems", "target": False,
         "params": {"TransactItems": [["ConditionCheck", "taskplane-tasks"], ["Put", "taskplane-wheel"]],
                    "LeadingKeys": ["acme#0", "1#60000"]}},
        "",
    ) == [
        ("dynamodb:ConditionCheckItem", [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tp-test-tasks"],
         {"dynamodb:LeadingKeys": ["acme#0"]}),
        ("dynamodb:PutItem", [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tp-test-wheel"],
         {"dynamodb:LeadingKeys": ["1#60000"]}),
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


# -- item kinds in shared tables (dynamodb:LeadingKeys) ---------------------------------------------


def table_arn(kind: str) -> list[str]:
    return [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{DEPLOYED}{kind}"]


def keys(*values: str) -> dict[str, Any]:
    return {"dynamodb:LeadingKeys": list(values)}


def foreign_and_own_items() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """(kinds the tick must not reach, kinds it uses): name -> (table, partition key), each key made
    by the adapter that writes it, for an AWS tenant id (an API key id) and a local tenant name."""
    from taskplane.adapters import breakers, dead_letters, latency, task_store, windows
    from taskplane.adapters.ring_store import RING_KEY
    from taskplane.adapters.run_store import RunStore
    from taskplane.adapters.schedule_store import ScheduleStore
    from taskplane.adapters.triggers import TriggerStore
    from taskplane.adapters.wheel_store import _lease_key
    from taskplane.domain.wheel import partition

    foreign, own = {}, {}
    for tenant in ("a1b2c3d4e5", "acme"):
        foreign |= {
            f"trigger of {tenant}": ("schedules", TriggerStore._pk(tenant)),
            f"dead letter of {tenant}": ("tasks", dead_letters._pk(tenant)),
            f"trigger window key of {tenant}": ("tasks", windows._trigger_pk(tenant, "01J0TRIGGER")),
            f"trigger window of {tenant}": ("tasks", windows._window_pk(tenant, "01J0TRIGGER", "01J0W")),
            f"one-letter window of {tenant}": ("tasks", windows._window_pk(tenant, "t", "w")),
            f"breaker of {tenant}": ("control", breakers._key(f"{tenant}#lambda:resize")["pk"]["S"]),
            f"sketch of {tenant}": ("control", latency._sketch_pk(tenant, "lambda:x", 60_000, 0)["pk"]["S"]),
            f"sketch parts of {tenant}": ("control", latency._parts_pk(tenant, "lambda:x")["pk"]["S"]),
            f"sketch index of {tenant}": ("control", latency._index_pk(tenant)["pk"]["S"]),
            f"in-flight count of {tenant}": ("control", f"inflight#{tenant}"),
            f"run of {tenant}": ("runs", RunStore._pk(tenant, "01J0RUN")),
        }
        schedule_key = ScheduleStore._key(None, tenant, "s1")  # type: ignore[arg-type]
        own |= {
            f"schedule of {tenant}": ("schedules", schedule_key["pk"]["S"]),
            f"task of {tenant}, bucket 0": ("tasks", task_store._pk(tenant, "01J0TASKAAAA", 1)),
            f"task of {tenant}, last bucket": ("tasks", f"{tenant}#{TASK_BUCKETS - 1}"),
        }
    own |= {
        "lease of shard 2": ("control", _lease_key(2)["pk"]["S"]),
        "shard ring": ("control", RING_KEY["pk"]["S"]),
        "wheel entry": ("wheel", partition(2, 1_700_000_000_000)),
    }
    return foreign, own


#: The test environment's task buckets (tests/infra/infra_synth.py TEST_ENV).
TASK_BUCKETS = 2


def test_the_tick_reaches_only_the_item_kinds_it_uses(synth: Any) -> None:
    # Given the tick's role, and an item of every kind the shared tables hold
    assert synth.cfg.task_buckets == TASK_BUCKETS
    statements = role_statements(synth, "tick")
    foreign, own = foreign_and_own_items()

    # When the tick would read or write an item of a kind it does not use (a trigger, a dead letter,
    # a window, a breaker, a sketch, a count, a run), AWS refuses every action
    reached = [
        f"{action} on {name} ({table} {key!r})"
        for name, (table, key) in foreign.items()
        for action in ("GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem")
        if allowed(statements, f"dynamodb:{action}", table_arn(table), keys(key))
    ]
    assert reached == []
    # and so would the coverage check, were the tick's code to make such a call
    recorded = {"function": "tick", "service": "dynamodb", "operation": "GetItem", "target": False,
                "params": {"TableName": "taskplane-schedules", "LeadingKeys": [foreign["trigger of acme"][1]]}}  # fmt: skip
    assert [allowed(statements, *request) for request in requests(recorded, "")] == [[]]
    # and a request that names one of its own items beside a foreign one is refused whole
    table, key = foreign["trigger of acme"]
    assert not allowed(statements, "dynamodb:PutItem", table_arn(table), keys("acme", key))
    # while every kind it uses stays open to the actions it makes
    closed = [
        f"{action} on {name}"
        for name, (table, key) in own.items()
        for action in ("GetItem", "PutItem", "UpdateItem")
        if not allowed(statements, f"dynamodb:{action}", table_arn(table), keys(key))
    ]
    assert closed == []


def every_item_kind(tenant: str) -> dict[str, tuple[str, str]]:
    """One item of every kind the platform's tables hold: name -> (table, partition key), each key made
    by the adapter that writes it (storage.py's docstring lists them)."""
    from taskplane.adapters import breakers, dead_letters, latency, task_store, windows
    from taskplane.adapters.ring_store import RING_KEY
    from taskplane.adapters.run_store import RunStore
    from taskplane.adapters.schedule_store import ScheduleStore
    from taskplane.adapters.triggers import TriggerStore
    from taskplane.adapters.wheel_store import _lease_key
    from taskplane.domain.wheel import partition

    return {
        "task": ("tasks", task_store._pk(tenant, "01J0TASKAAAB", TASK_BUCKETS)),
        "dead letter": ("tasks", dead_letters._pk(tenant)),
        "trigger window key": ("tasks", windows._trigger_pk(tenant, "01J0TRIGGER")),
        "trigger window": ("tasks", windows._window_pk(tenant, "01J0TRIGGER", "01J0W")),
        "lease": ("control", _lease_key(1)["pk"]["S"]),
        "ring": ("control", RING_KEY["pk"]["S"]),
        "breaker": ("control", breakers._key(f"{tenant}#lambda:resize")["pk"]["S"]),
        "sketch": ("control", latency._sketch_pk(tenant, "lambda:x", 60_000, 0)["pk"]["S"]),
        "sketch parts": ("control", latency._parts_pk(tenant, "lambda:x")["pk"]["S"]),
        "sketch index": ("control", latency._index_pk(tenant)["pk"]["S"]),
        "in-flight count": ("control", f"inflight#{tenant}"),
        "schedule": ("schedules", ScheduleStore._key(None, tenant, "s1")["pk"]["S"]),  # type: ignore[arg-type]
        "trigger": ("schedules", TriggerStore._pk(tenant)),
        "wheel entry": ("wheel", partition(1, 1_700_000_000_000)),
        "run": ("runs", RunStore._pk(tenant, "01J0RUN")),
        "run listing": ("runs", f"L#{tenant}#flow"),
        "workflow": ("workflows", f"W#{tenant}"),
        "workflow version": ("workflows", f"V#{tenant}#flow"),
        "idempotency record": ("idempotency", "taskplane-api.create#5d41402abc4b2a76b9719d911017c592"),
    }


_ALL = ("task", "dead letter", "trigger window key", "trigger window")
_SKETCHES = ("breaker", "sketch", "sketch parts", "sketch index")
#: What each function may do to each kind of item (r: GetItem, w: PutItem and UpdateItem; a kind not
#: named: neither): the inventory of tests/aws_calls.py's recordings, kept as the grants' contract.
REACH: dict[str, dict[str, str]] = {
    "api": {
        **dict.fromkeys(_ALL, "rw"),
        **dict.fromkeys(("lease", "ring", *_SKETCHES), "r"),
        "in-flight count": "rw",
        "schedule": "rw",
        "trigger": "rw",
        "wheel entry": "w",
        **dict.fromkeys(("run", "run listing", "workflow", "workflow version", "idempotency record"), "rw"),
    },
    "worker": {
        **dict.fromkeys(_ALL, "rw"),
        "lease": "r",  # a retry or watch due soon wakes its tick unless the lease shows one running
        "ring": "r",
        **dict.fromkeys(_SKETCHES, "rw"),
        "sketch index": "w",
        "in-flight count": "w",
        "trigger": "r",
        "wheel entry": "w",
    },
    "tick": {"task": "rw", "lease": "rw", "ring": "rw", "schedule": "rw", "wheel entry": "rw"},
    "step": {**dict.fromkeys(_SKETCHES, "rw"), "run": "rw", "run listing": "rw", "workflow version": "r"},
}


def test_each_function_reaches_only_the_item_kinds_it_uses(synth: Any) -> None:
    # Given every function's role, and an item of every kind for a tenant as AWS names it (an API key
    # id) and as a local environment does
    for tenant in ("a1b2c3d4e5", "acme"):
        kinds = every_item_kind(tenant)
        assert {k for reach in REACH.values() for k in reach} <= set(kinds)
        for fn in FUNCTIONS:
            statements = role_statements(synth, fn)

            # When the function reads and writes one item of each kind
            reach = {}
            for kind, (table, key) in kinds.items():
                can = {
                    action: bool(allowed(statements, f"dynamodb:{action}", table_arn(table), keys(key)))
                    for action in ("GetItem", "PutItem", "UpdateItem")
                }
                assert can["PutItem"] == can["UpdateItem"], (fn, kind, "PutItem and UpdateItem go together")
                reach[kind] = ("r" if can["GetItem"] else "") + ("w" if can["PutItem"] else "")

            # Then AWS allows exactly what REACH says, and refuses every other kind
            expected = {kind: REACH[fn].get(kind, "") for kind in kinds}
            assert reach == expected, (
                fn,
                tenant,
                {k: (reach[k], expected[k]) for k in kinds if reach[k] != expected[k]},
            )


def test_a_partition_condition_binds_every_action_it_grants(synth: Any) -> None:
    # Given every statement of every function's role that names partition keys
    conditioned = [
        (fn, st)
        for fn in FUNCTIONS
        for st in role_statements(synth, fn)
        if any("dynamodb:LeadingKeys" in by_key for by_key in st["condition"].values())
    ]
    # (the tick's three narrowed tables at least)
    assert len([fn for fn, _ in conditioned if fn == "tick"]) >= 3
    for fn, st in conditioned:
        # Then each grants only actions whose requests carry the keys (any other would pass the
        # ForAllValues condition on every item), with the ForAllValues qualifier the key needs
        assert set(st["actions"]) <= LEADING_KEY_ACTIONS, (fn, st["actions"])
        assert all(op.startswith("ForAllValues:") for op in st["condition"]), (fn, st["condition"])


def test_conditions_are_evaluated_as_iam_does() -> None:
    # ForAllValues holds for every value of the request, and for a request that names none
    assert holds("ForAllValues:StringLike", ["wheel#1", "wheel#ring"], ["wheel#*"])
    assert not holds("ForAllValues:StringLike", ["wheel#1", "breaker#x"], ["wheel#*"])
    assert holds("ForAllValues:StringLike", [], ["wheel#*"])
    assert holds("ForAllValues:StringLike", None, ["wheel#*"])
    # a negated operator holds when no value matches any pattern
    assert holds("ForAllValues:StringNotLike", ["acme", "a1b2"], ["*#*"])
    assert not holds("ForAllValues:StringNotLike", ["acme", "trg#acme"], ["*#*"])
    # ? is one character, * any run; [ is itself, and case counts
    assert like("acme#1", "*#?") and not like("acme#12", "*#?") and not like("acme#", "*#?")
    assert like("a[1]", "a[1]") and not like("a1", "a[1]") and not like("Wheel#1", "wheel#*")
    # a single-valued operator needs the key
    assert not holds("StringEquals", None, ["x"]) and holds("StringEquals", "x", ["x"])
    with pytest.raises(AssertionError, match="no evaluation"):
        holds("ForAnyValue:StringLike", ["x"], ["x"])
    # and a request's keys come with it: a batch names all its keys in a table at once, a
    # transaction's items one each
    batch = {"service": "dynamodb", "operation": "BatchGetItem", "target": False,
             "params": {"RequestItems": ["taskplane-control"],
                        "LeadingKeys": {"taskplane-control": ["sketch#a", "sketch#b"]}}}  # fmt: skip
    assert requests(batch, "") == [
        ("dynamodb:BatchGetItem", table_arn("control"), keys("sketch#a", "sketch#b"))
    ]
    transaction = {"service": "dynamodb", "operation": "TransactWriteItems", "target": False,
                   "params": {"TransactItems": [["Put", "taskplane-schedules"], ["Put", "taskplane-wheel"]],
                              "LeadingKeys": ["acme", "0#60000"]}}  # fmt: skip
    assert [r[2] for r in requests(transaction, "")] == [keys("acme"), keys("0#60000")]
    unread = {"service": "dynamodb", "operation": "GetItem", "target": False,
              "params": {"TableName": "taskplane-control"}}  # fmt: skip
    with pytest.raises(AssertionError, match="no partition key recorded"):
        requests(unread, "")


def test_the_recorder_reads_every_tables_partition_key() -> None:
    from aws_calls import PARTITION_KEYS, leading_keys

    from infra.capabilities.storage import TABLES

    assert {spec.partition_key for spec in TABLES} <= set(PARTITION_KEYS)
    query = {"KeyConditionExpression": "#p = :v AND begins_with(sk, :s)", "ExpressionAttributeNames":
             {"#p": "pk"}, "ExpressionAttributeValues": {":v": {"S": "trg#acme"}, ":s": {"S": "x"}}}  # fmt: skip
    assert leading_keys("Query", query) == ["trg#acme"]
    put = {"TableName": "t", "Item": {"id": {"S": "fn#hash"}, "data": {"S": "x"}}}
    assert leading_keys("PutItem", put) == ["fn#hash"]
    writes = {"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "a#0"}}}},
                                     {"DeleteRequest": {"Key": {"pk": {"S": "a#1"}}}}]}}  # fmt: skip
    assert leading_keys("BatchWriteItem", writes) == {"t": ["a#0", "a#1"]}
