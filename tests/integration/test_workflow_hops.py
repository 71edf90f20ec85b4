"""local/workflows.py fixes 6-8 (hops and starts made cheaper) keep moto's answers.

6. JSONPaths parsed once: a cached path evaluates each document afresh and still refuses a bad path.
7. In-process functions invoked directly: the executor gets what moto's Lambda API would answer
   (payload, ``FunctionError``, status), and a function not installed here still goes through the API.
8. A definition parsed once: concurrent executions of one parse each keep their own retry counts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflow_fixtures import WfAws, wait_run
from workflow_fixtures import wf as wf  # the fixtures
from workflow_fixtures import wf_api as wf_api

pytestmark = pytest.mark.integration


def _boom(event: Any, context: Any) -> Any:
    raise ValueError(f"no {event['name']}")


def _echo(event: Any, context: Any) -> Any:
    return {"got": event, "function": context.function_name}


def _text(event: Any, context: Any) -> Any:
    return "plain text"


FUNCTIONS = {"hop-echo": _echo, "hop-boom": _boom, "hop-text": _text}


def _api_answer(wf: WfAws, parameters: dict[str, Any]) -> dict[str, Any]:
    """What the executor made of a Lambda API invoke before fix 7 (lambda_eval_utils._invoke_lambda_function)."""
    from moto.stepfunctions.parser.api import InvocationResponse
    from moto.utilities.collections import select_from_typed_dict

    response = wf.client("lambda").invoke(**parameters)
    text = response["Payload"].read().decode("utf-8")
    try:
        response["Payload"] = json.loads(text)
    except ValueError:
        response["Payload"] = text
    return dict(select_from_typed_dict(typed_dict=InvocationResponse, obj=response))


def _executor_answer(parameters: dict[str, Any]) -> dict[str, Any]:
    from moto.stepfunctions.parser.api import InvocationResponse
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.utilities.collections import select_from_typed_dict

    response = lambda_eval_utils._invoke_lambda_function(dict(parameters), "us-east-1", None)
    return dict(select_from_typed_dict(typed_dict=InvocationResponse, obj=response))


@pytest.mark.parametrize("wf", [{"functions": FUNCTIONS}], indirect=True)
@pytest.mark.parametrize(
    ("function", "payload"),
    [
        ("hop-echo", {"name": "a", "n": [1, 2]}),
        ("arn:aws:lambda:us-east-1:123456789012:function:hop-echo", {"name": "by arn"}),
        ("hop-echo", None),
        ("hop-boom", {"name": "thing"}),
        ("hop-text", {}),
    ],
)
def test_a_direct_invoke_answers_as_the_lambda_api(wf: WfAws, function: str, payload: Any) -> None:
    # Given a local function installed in this process
    parameters: dict[str, Any] = {"FunctionName": function}
    if payload is not None:
        parameters["Payload"] = json.dumps(payload).encode()
    # When moto's executor invokes it (directly) and when the Lambda API does
    direct = _executor_answer(parameters)
    through_api = _api_answer(wf, parameters)
    # Then both answers are the same, an error's FunctionError and message included
    assert direct == through_api
    if function == "hop-boom":
        assert direct["FunctionError"] == "Handled"
        assert direct["Payload"] == {"errorType": "ValueError", "errorMessage": "no thing"}


@pytest.mark.parametrize("wf", [{"functions": FUNCTIONS}], indirect=True)
def test_a_direct_invoke_is_not_taken_for_what_is_not_installed_here(wf: WfAws) -> None:
    from taskplane.local.lambdas import invoke_in_process

    # Given a function moto has but this process does not run, and one moto does not have
    wf.client("lambda").create_function(
        FunctionName="elsewhere",
        Runtime="python3.12",
        Role=wf.client("iam").get_role(RoleName="taskplane-local")["Role"]["Arn"],
        Handler="index.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )
    # Then neither is invoked directly (the Lambda API answers for them)
    assert invoke_in_process("elsewhere", b"{}", "us-east-1") is None
    assert invoke_in_process("missing", b"{}", "us-east-1") is None
    assert (
        invoke_in_process("arn:aws:lambda:eu-west-1:123456789012:function:hop-echo", b"{}", "us-east-1")
        is None
    )
    # And an unknown function is still the API's ResourceNotFoundException to the executor
    with pytest.raises(Exception, match=r"ResourceNotFound|Function not found"):
        _executor_answer({"FunctionName": "missing", "Payload": b"{}"})


def test_a_cached_json_path_reads_each_document_afresh(wf: WfAws) -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    # Given one path text evaluated against two documents
    # Then each answer is its own document's, and a missing path still raises
    assert extract_json("$.run.id", {"run": {"id": "a"}}) == "a"
    assert extract_json("$.run.id", {"run": {"id": "b"}}) == "b"
    assert extract_json("$.items[1]", {"items": [1, 2]}) == 2
    with pytest.raises(Exception, match="could not be found"):
        extract_json("$.run.id", {"other": 1})
    # And ResultPath's parsed path writes into each document, never one it saw before
    parse = result_path.parse
    assert parse("$.out") is parse("$.out")  # kept per text
    first = parse("$.out").update_or_create({"a": 1}, {"x": 1})
    second = parse("$.out").update_or_create({"b": 2}, {"y": 2})
    assert (first, second) == ({"a": 1, "out": {"x": 1}}, {"b": 2, "out": {"y": 2}})
    # And an invalid path still raises each time (nothing kept for it)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017  # jsonpath_ng's own parse error
            parse("$.[")


def test_one_parse_serves_every_execution_each_with_its_own_retries(wf: WfAws, wf_api: Any) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    # Given a workflow whose node fails twice, then succeeds (retried after 1 s)
    published = wf_api(
        "PUT",
        "/v1/workflows/twice",
        {
            "defaults": {"retry": {"max_attempts": 3, "base_delay_ms": 1000, "max_delay_ms": 1000}},
            "nodes": [{"id": "a", "target": {"type": "builtin", "name": "fail"}, "payload": {"times": 2}}],
        },
    )
    assert published.status in (200, 201), published.body
    # When two runs of it go at once (one parsed definition, two executions)
    runs = [wf_api("POST", "/v1/workflows/twice/runs", {"input": {}}).body["run_id"] for _ in range(2)]
    execution = wf.platform.workflows.runs.get("acme", runs[0]).execution_arn
    sfn = wf.client("stepfunctions")
    machine = sfn.describe_execution(executionArn=execution)["stateMachineArn"]
    definition = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
    assert AmazonStateLanguageParser.parse(definition) is AmazonStateLanguageParser.parse(definition)
    # Then each counts its own retries: both succeed at their third attempt
    done = [wait_run(wf_api, run_id, timeout_s=60) for run_id in runs]
    assert [r["state"] for r in done] == ["SUCCEEDED", "SUCCEEDED"], done
    assert [r["nodes"][0]["attempts"] for r in done] == [3, 3]
    # And a definition that does not parse is refused each time (nothing kept for it)
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse('{"StartAt": "x", "States": {"x": {"Type": ')


TOKENS: list[str] = []


def _hold(event: Any, context: Any) -> Any:
    TOKENS.append(event["token"])
    return {}


@pytest.mark.parametrize("wf", [{"functions": {"hold": _hold}}], indirect=True)
def test_a_gate_released_directly_answers_as_the_api(wf: WfAws) -> None:
    import time

    from botocore.exceptions import ClientError

    from taskplane.local.workflows import ROLE_ARN, DirectCallbacks

    sfn = wf.client("stepfunctions")
    direct = DirectCallbacks(sfn, "123456789012", "us-east-1")
    # Given two executions, each waiting on a task token
    wait = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "hold", "Payload": {"token.$": "$$.Task.Token"}},
        "End": True,
    }
    machine = sfn.create_state_machine(
        name="hold", roleArn=ROLE_ARN, definition=json.dumps({"StartAt": "w", "States": {"w": wait}})
    )["stateMachineArn"]
    TOKENS.clear()
    runs = [sfn.start_execution(stateMachineArn=machine, name=f"hold-{i}")["executionArn"] for i in range(2)]

    def settled(arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while (found := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return found

    deadline = time.monotonic() + 30
    while len(TOKENS) < 2:
        assert time.monotonic() < deadline, TOKENS
        time.sleep(0.02)
    first, second = TOKENS
    # When one is released directly and the other through the API
    assert direct.send_task_success(taskToken=first, output='{"via": "direct"}') == {}
    sfn.send_task_success(taskToken=second, output='{"via": "api"}')
    # Then both executions succeed with the output they were sent
    outputs = sorted(json.loads(settled(arn)["output"])["via"] for arn in runs)
    assert outputs == ["api", "direct"]
    # And a used token and a made-up one are refused the same way by both
    for token in (first, "not-a-token"):
        with pytest.raises(ClientError) as by_api:
            sfn.send_task_success(taskToken=token, output="{}")
        with pytest.raises(ClientError) as by_direct:
            direct.send_task_success(taskToken=token, output="{}")
        assert by_direct.value.response["Error"]["Code"] == by_api.value.response["Error"]["Code"]
        assert by_direct.value.response["Error"]["Code"] in {
            "TaskDoesNotExist",
            "InvalidToken",
            "TaskTimedOut",
        }
    # And every other call goes to the client
    assert direct.describe_execution(executionArn=runs[0])["status"] == "SUCCEEDED"
