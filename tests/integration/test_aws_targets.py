"""AWS targets (sqs, eventbridge, lambda) under moto, and the in-process Lambda seam."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from moto import mock_aws

from taskplane.adapters.targets import TargetFailure, TargetRunners, is_retryable_aws_error
from taskplane.local.lambdas import create_local_functions, install_local_lambdas, load_functions_file

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ENVELOPE = {"task_id": "tsk_7", "attempt": 1, "payload": {"order": 9}}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def sqs(aws: boto3.session.Session) -> Any:
    return aws.client("sqs")


@pytest.fixture
def lambda_client(aws: boto3.session.Session) -> Any:
    return aws.client("lambda")


def failure_of(runners: TargetRunners, target: dict, envelope: dict = ENVELOPE) -> TargetFailure:
    with pytest.raises(TargetFailure) as caught:
        runners.run(target, envelope, 5)
    return caught.value


def receive_one(sqs: Any, queue_url: str) -> dict:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1, messages
    return messages[0]


# -- sqs ---------------------------------------------------------------------------------------


def test_sqs_target_delivers_the_envelope(sqs):
    # Given a queue and runners with an injected client
    queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    runners = TargetRunners(sqs_client=sqs)
    # When the sqs target runs
    result = runners.run({"type": "sqs", "queue_url": queue_url}, ENVELOPE, 5)
    # Then the queue holds the envelope as JSON, under the returned message id
    message = receive_one(sqs, queue_url)
    assert json.loads(message["Body"]) == ENVELOPE
    assert result == {"message_id": message["MessageId"]}


def test_clients_are_made_lazily_from_the_session(aws, sqs):
    # Given runners that only have a session
    queue_url = sqs.create_queue(QueueName="lazy")["QueueUrl"]
    runners = TargetRunners(session=aws)
    # When the sqs target runs
    runners.run({"type": "sqs", "queue_url": queue_url}, ENVELOPE, 5)
    # Then the message arrived
    assert json.loads(receive_one(sqs, queue_url)["Body"]) == ENVELOPE


def test_sqs_target_with_a_missing_queue_is_not_retryable(sqs):
    # Given a queue URL that does not exist
    missing = f"https://sqs.{REGION}.amazonaws.com/123456789012/no-such-queue"
    # When the sqs target runs
    failure = failure_of(TargetRunners(sqs_client=sqs), {"type": "sqs", "queue_url": missing})
    # Then it fails for good, with the AWS error code as its type
    assert failure.retryable is False
    assert failure.error_type in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


# -- eventbridge -------------------------------------------------------------------------------


def test_eventbridge_target_puts_an_event_that_reaches_a_rule_target(aws, sqs):
    # Given a rule on the default bus that forwards taskplane events to a queue
    # (moto really delivers events to SQS rule targets, so delivery is checked end to end)
    events = aws.client("events")
    queue_url = sqs.create_queue(QueueName="events-sink")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="to-sink", EventPattern=json.dumps({"source": ["taskplane"]}))
    events.put_targets(Rule="to-sink", Targets=[{"Id": "sink", "Arn": queue_arn}])
    target = {"type": "eventbridge", "bus": "default", "source": "taskplane", "detail_type": "taskplane.task"}
    # When the eventbridge target runs
    result = TargetRunners(events_client=events).run(target, ENVELOPE, 5)
    # Then the event reached the queue with the envelope as its detail
    event = json.loads(receive_one(sqs, queue_url)["Body"])
    assert event["detail"] == ENVELOPE
    assert event["source"] == "taskplane"
    assert event["detail-type"] == "taskplane.task"
    assert result == {"event_id": event["id"]}


def test_eventbridge_target_with_a_missing_bus_is_not_retryable(aws):
    # Given a bus that does not exist
    target = {"type": "eventbridge", "bus": "no-such-bus", "source": "taskplane", "detail_type": "x"}
    # When the eventbridge target runs
    failure = failure_of(TargetRunners(events_client=aws.client("events")), target)
    # Then it fails for good
    assert (failure.error_type, failure.retryable) == ("ResourceNotFoundException", False)


def test_eventbridge_rejected_entries_are_retryable():
    # Given PutEvents that accepts the call but fails the entry (moto never does; a stub does)
    class RejectingEvents:
        def put_events(self, Entries: list) -> dict:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
            }

    target = {"type": "eventbridge", "bus": "default", "source": "taskplane", "detail_type": "x"}
    # When the eventbridge target runs
    failure = failure_of(TargetRunners(events_client=RejectingEvents()), target)
    # Then it is a retryable failure naming the entry's error
    assert failure.retryable is True
    assert failure.error_type == "ThrottlingException"
    assert "Rate exceeded" in failure.message


# -- lambda ------------------------------------------------------------------------------------


def _describe(event: Any, context: Any) -> dict:
    return {
        "event": event,
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "has_request_id": bool(context.aws_request_id),
        "time_left": context.get_remaining_time_in_millis() > 0,
    }


def _explode(event: Any, context: Any) -> None:
    raise ValueError("bad order 9")


@pytest.fixture
def local_lambdas(lambda_client: Any) -> Iterator[Any]:
    functions = {"describe": _describe, "explode": _explode, "answer": lambda event, context: 42}
    create_local_functions(lambda_client, functions)
    uninstall = install_local_lambdas(functions)
    yield lambda_client
    uninstall()


def test_lambda_target_returns_the_function_result(local_lambdas):
    # Given an in-process function behind a moto Lambda
    runners = TargetRunners(lambda_client=local_lambdas)
    # When the lambda target runs
    result = runners.run({"type": "lambda", "function": "describe"}, ENVELOPE, 5)
    # Then the function got the envelope and a context, and its return value is the result
    assert result == {
        "event": ENVELOPE,
        "function_name": "describe",
        "arn": f"arn:aws:lambda:{REGION}:123456789012:function:describe",
        "memory": 256,
        "has_request_id": True,
        "time_left": True,
    }


def test_lambda_target_accepts_an_arn_and_scalar_results(local_lambdas):
    # Given a function addressed by ARN that returns a number
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:answer"
    # When the lambda target runs
    result = TargetRunners(lambda_client=local_lambdas).run({"type": "lambda", "function": arn}, ENVELOPE, 5)
    # Then the number is the result
    assert result == 42


def test_lambda_function_errors_are_retryable_and_keep_their_type(local_lambdas):
    # Given a function that raises ValueError
    # When the lambda target runs
    failure = failure_of(
        TargetRunners(lambda_client=local_lambdas), {"type": "lambda", "function": "explode"}
    )
    # Then the failure carries the exception's type and message and may be retried
    assert (failure.error_type, failure.message, failure.retryable) == ("ValueError", "bad order 9", True)


def test_lambda_target_with_a_missing_function_is_not_retryable(local_lambdas):
    # Given no function by that name
    # When the lambda target runs
    failure = failure_of(TargetRunners(lambda_client=local_lambdas), {"type": "lambda", "function": "ghost"})
    # Then it fails for good
    assert (failure.error_type, failure.retryable) == ("ResourceNotFoundException", False)


def test_lambda_client_is_made_lazily_from_the_session(aws, local_lambdas):
    # Given runners that only have a session
    runners = TargetRunners(session=aws)
    # When the lambda target runs
    result = runners.run({"type": "lambda", "function": "answer"}, ENVELOPE, 5)
    # Then the function ran
    assert result == 42


# -- the in-process seam -----------------------------------------------------------------------


def test_functions_outside_the_dict_keep_moto_behaviour(lambda_client):
    # Given one function routed in-process and one that is not
    create_local_functions(lambda_client, ["mine", "theirs"])
    uninstall = install_local_lambdas({"mine": lambda event, context: "mine"})
    try:
        # When both are invoked
        mine = lambda_client.invoke(FunctionName="mine", Payload=b"{}")
        theirs = lambda_client.invoke(FunctionName="theirs", Payload=b"{}")
    finally:
        uninstall()
    # Then only the routed one ran in-process; moto (without Docker) fails the other
    assert json.loads(mine["Payload"].read()) == "mine"
    assert "FunctionError" not in mine
    assert theirs.get("FunctionError")


def test_installs_stack_and_uninstall_restores_moto(lambda_client):
    from moto.awslambda.models import LambdaFunction

    # Given moto's own invoke method and two installs naming the same function
    original = LambdaFunction._invoke_lambda
    create_local_functions(lambda_client, ["fn", "other"])
    first = install_local_lambdas({"fn": lambda e, c: "first", "other": lambda e, c: "other"})
    second = install_local_lambdas({"fn": lambda e, c: "second"})

    def call(name: str) -> Any:
        return json.loads(lambda_client.invoke(FunctionName=name)["Payload"].read())

    try:
        # Then the later install wins for the shared name and the earlier still serves the rest
        assert (call("fn"), call("other")) == ("second", "other")
        # When the later one is undone, the earlier one serves again
        second()
        second()  # a second call does nothing
        assert call("fn") == "first"
        assert LambdaFunction._invoke_lambda is not original
    finally:
        first()
    # And when both are undone, moto's method is back
    assert LambdaFunction._invoke_lambda is original


def test_handler_results_json_cannot_write_are_marshal_errors(lambda_client):
    # Given a function returning something that is not JSON
    create_local_functions(lambda_client, ["weird"])
    uninstall = install_local_lambdas({"weird": lambda e, c: {1, 2}})
    try:
        # When it is invoked
        failure = failure_of(
            TargetRunners(lambda_client=lambda_client), {"type": "lambda", "function": "weird"}
        )
    finally:
        uninstall()
    # Then it fails like the Lambda runtime does
    assert failure.error_type == "Runtime.MarshalError"


def test_create_local_functions_skips_existing_and_uses_a_given_role(aws, lambda_client):
    # Given a role made by the caller and a function that already exists
    iam = aws.client("iam")
    role = iam.create_role(RoleName="mine", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    create_local_functions(lambda_client, ["kept"], role_arn=role)
    before = lambda_client.get_function(FunctionName="kept")["Configuration"]["CodeSha256"]
    # When it is asked for that function and a new one
    create_local_functions(lambda_client, ["kept", "fresh"], role_arn=role)
    # Then the existing one is untouched and the new one uses the role
    assert lambda_client.get_function(FunctionName="kept")["Configuration"]["CodeSha256"] == before
    fresh = lambda_client.get_function(FunctionName="fresh")["Configuration"]
    assert (fresh["Role"], fresh["Runtime"], fresh["Handler"]) == (role, "python3.12", "index.handler")


def test_load_functions_file_prefers_the_functions_dict(tmp_path: Path):
    # Given a file with FUNCTIONS and other handler-shaped functions
    path = tmp_path / "with_dict.py"
    path.write_text(
        textwrap.dedent(
            """
            def charge(event, context):
                return "charged"

            def unlisted(event, context):
                return "nope"

            FUNCTIONS = {"charge-card": charge}
            """
        )
    )
    # When it is loaded
    functions = load_functions_file(str(path))
    # Then only the dict's entries are taken, under its names
    assert list(functions) == ["charge-card"]
    assert functions["charge-card"]({}, None) == "charged"


def test_load_functions_file_takes_public_event_context_functions(tmp_path: Path):
    # Given a file without FUNCTIONS
    path = tmp_path / "plain.py"
    path.write_text(
        textwrap.dedent(
            """
            from os.path import join  # imported (and takes two arguments): not a handler

            def send_email(event, context):
                return {"sent": event["to"]}

            def with_default(event, context=None):
                return 1

            def _private(event, context):
                return 2

            def one_arg(event):
                return 3

            def three_args(a, b, c):
                return 4

            LIMIT = 3
            """
        )
    )
    # When it is loaded
    functions = load_functions_file(str(path))
    # Then the public (event, context) functions defined there are taken
    assert sorted(functions) == ["send_email", "with_default"]
    assert functions["send_email"]({"to": "a@b.c"}, None) == {"sent": "a@b.c"}


def test_load_functions_file_rejects_files_without_handlers(tmp_path: Path):
    # Given files with no handler and with a malformed FUNCTIONS
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    bad = tmp_path / "bad.py"
    bad.write_text("FUNCTIONS = {'x': 1}\n")
    # When they are loaded, Then each is refused
    with pytest.raises(ValueError):
        load_functions_file(str(empty))
    with pytest.raises(TypeError):
        load_functions_file(str(bad))
    with pytest.raises(FileNotFoundError):
        load_functions_file(str(tmp_path / "missing.py"))


def test_loaded_functions_run_behind_moto(tmp_path: Path, lambda_client):
    # Given a functions file loaded, created and installed
    path = tmp_path / "fns.py"
    path.write_text("def double(event, context):\n    return event['payload'] * 2\n")
    functions = load_functions_file(str(path))
    create_local_functions(lambda_client, functions)
    uninstall = install_local_lambdas(functions)
    try:
        # When the lambda target runs
        result = TargetRunners(lambda_client=lambda_client).run(
            {"type": "lambda", "function": "double"}, {"task_id": "t", "attempt": 1, "payload": 21}, 5
        )
    finally:
        uninstall()
    # Then the file's function computed the result
    assert result == 42


# -- error classification (stubbed clients: moto cannot produce these) -------------------------


class _RaisingLambda:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def invoke(self, **kwargs: Any) -> Any:
        raise self.exc


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Invoke",
    )


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("TooManyRequestsException", 429, True),
        ("ThrottlingException", 400, True),
        ("ServiceException", 500, True),
        ("SomethingNew", 503, True),
        ("EC2ThrottledException", 502, True),
        ("ENILimitReachedException", 502, True),
        ("ResourceConflictException", 409, True),
        ("ResourceNotFoundException", 404, False),
        ("InvalidParameterValueException", 400, False),
        ("AccessDeniedException", 403, False),
        ("RequestTooLargeException", 413, False),
        ("ValidationException", 400, False),
        ("KMSAccessDeniedException", 502, False),
        ("SomethingElse", 400, False),
    ],
)
def test_lambda_client_errors_are_classified(code, status, retryable):
    # Given Invoke failing with an AWS error
    runners = TargetRunners(lambda_client=_RaisingLambda(_client_error(code, status)))
    # When the lambda target runs
    failure = failure_of(runners, {"type": "lambda", "function": "f"})
    # Then the code is the error type and retryability follows the documented table
    assert (failure.error_type, failure.retryable) == (code, retryable)
    assert is_retryable_aws_error(code, status) is retryable


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (ReadTimeoutError(endpoint_url="https://lambda"), "Timeout"),
        (ConnectTimeoutError(endpoint_url="https://lambda"), "Timeout"),
        (EndpointConnectionError(endpoint_url="https://lambda"), "ConnectionError"),
    ],
)
def test_lambda_network_errors_are_retryable(exc, error_type):
    # Given Invoke failing on the network
    runners = TargetRunners(lambda_client=_RaisingLambda(exc))
    # When the lambda target runs
    failure = failure_of(runners, {"type": "lambda", "function": "f"})
    # Then it is retryable
    assert (failure.error_type, failure.retryable) == (error_type, True)


def test_function_errors_without_an_error_type_are_function_errors():
    # Given Invoke answering a function error whose payload is not the usual object
    class Payload:
        def read(self) -> bytes:
            return b"Task timed out after 3.00 seconds"

    class TimedOut:
        def invoke(self, **kwargs: Any) -> dict:
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": Payload()}

    # When the lambda target runs
    failure = failure_of(TargetRunners(lambda_client=TimedOut()), {"type": "lambda", "function": "f"})
    # Then it is a retryable FunctionError carrying the text
    assert (failure.error_type, failure.retryable) == ("FunctionError", True)
    assert "timed out" in failure.message


@pytest.mark.parametrize(
    "target",
    [{"type": "lambda"}, {"type": "sqs", "queue_url": ""}, {"type": "eventbridge", "bus": "default"}],
)
def test_targets_missing_fields_are_invalid(target):
    # Given a target without its required field
    # When it runs (no client is needed to notice)
    failure = failure_of(TargetRunners(), target)
    # Then it fails for good
    assert (failure.error_type, failure.retryable) == ("InvalidTarget", False)
