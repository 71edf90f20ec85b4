"""Shared fixtures: moto with the platform's resources, real-shaped events, API and SQS helpers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support import Reply, api_event

#: Records boto3 calls when TASKPLANE_RECORD_AWS_CALLS is set (tests/iam checks them against IAM).
pytest_plugins = ["aws_calls"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@dataclass
class Aws:
    session: Any
    settings: Any
    platform: Any

    def client(self, name: str) -> Any:
        return self.session.client(name)

    def queue_depth(self, lane: str = "default") -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.settings.queue_urls[lane],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def aws(aws_env: None, request: pytest.FixtureRequest) -> Iterator[Aws]:
    """moto with every table and queue created and the process-wide platform wired to it.

    Parametrize indirectly with ``{"buckets": n}`` or ``{"clock": FixedClock()}`` to change them.
    """
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.local import moto_patches
    from taskplane.local.resources import create_resources

    moto_patches.apply()
    options = getattr(request, "param", {}) or {}
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session, buckets=options.get("buckets", 1))
        clock = options.get("clock")
        if callable(clock) and not hasattr(clock, "now_ms"):
            clock = clock()  # a factory, so parametrized tests each get a fresh clock
        platform = wiring.build(settings, session=session, clock=clock)
        wiring.use(platform)
        try:
            yield Aws(session=session, settings=settings, platform=platform)
        finally:
            wiring.use(None)


# -- API Gateway events ---------------------------------------------------------------------------
@pytest.fixture
def api(aws: Aws) -> Any:
    """Call the api handler with a real-shaped event: ``api("POST", "/v1/tasks", body)``."""
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler

    handler = load_handler("api").lambda_handler
    # One request at a time, as in one Lambda execution environment (the resolver keeps the current
    # event on the app object); tests that call from several threads queue here, like the gateway.
    one_at_a_time = threading.Lock()

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        with one_at_a_time:
            response = handler(
                api_event(method, path, body, **kwargs), LocalContext(function_name="taskplane-api")
            )
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        raw = response.get("body")
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = raw
        return Reply(status=response["statusCode"], body=parsed, headers=headers)

    return call


# -- SQS -> worker --------------------------------------------------------------------------------
@pytest.fixture
def drain(aws: Aws) -> Any:
    """Receive what is on the lanes and feed it to the worker handler like the event source mapping.

    ``drain(rounds=..., lanes=...)`` returns the list of worker responses; failed records are left
    on the queue (made visible again at once, so tests need not wait for the visibility timeout).
    """
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import to_record

    worker = load_handler("worker").lambda_handler
    sqs = aws.client("sqs")

    def run(rounds: int = 1, lanes: tuple[str, ...] = ("high", "default", "low")) -> list[dict[str, Any]]:
        responses = []
        for _ in range(rounds):
            for lane in lanes:
                url = aws.settings.queue_urls[lane]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    continue
                event = {"Records": [to_record(m, arn) for m in messages]}
                response = worker(event, LocalContext(function_name="taskplane-worker"))
                responses.append(response)
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                for m in messages:
                    if m["MessageId"] in failed:
                        sqs.change_message_visibility(
                            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                        )
                    else:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return responses

    return run
