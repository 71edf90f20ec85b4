"""domain/secrets.py and the one place target failures are told (TargetRunners.run): no secret of an
attempt survives into the text the platform builds from it, and what a target answers is valid text."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import pytest

from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.domain.secrets import is_secret_name, mask_text, scrub, secret_values

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "x-api-key",
        "X-Auth-Token",
        "password",
        "db_passwd",
        "client_secret",
        "api_key",
        "apiKey",
        "access_key",
        "refresh_token",
        "Cookie",
        "session_id",
        "credentials",
        "private-key",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["author", "user", "order_id", "keyboard", "passenger", "note", "bypass_cache"]
)
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_secret_values_finds_every_kind_and_nothing_else():
    # Given a target and an envelope holding secrets in each place a caller may put one
    target = {
        "type": "http",
        "url": "https://hooks.example.com/in?token=qs-secret-1&page=2",
        "headers": {"Authorization": "Bearer hdr-secret-2", "accept": "application/json"},
    }
    envelope = {
        "payload": {
            "password": "pl-secret-3",
            "nested": [{"client_secret": "pl-secret-4", "pin_code": 1234}],
            "credentials": {"user": "ada-the-user", "key": ["pl-secret-5"]},
            "api_key": 987654,
            "note": "plain text",
        }
    }
    # When collected / Then exactly the secrets are found, longest first
    found = secret_values(target, envelope)
    assert set(found) == {
        "qs-secret-1",
        "Bearer hdr-secret-2",
        "hdr-secret-2",
        "pl-secret-3",
        "pl-secret-4",
        "ada-the-user",
        "pl-secret-5",
        "987654",
    }
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)


def test_user_info_of_any_url_in_the_attempt_is_secret():
    assert secret_values({"deps": {"a": "see https://ada:pw-secret-6@db.example/x"}}) == ["pw-secret-6"]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("authorization: Bearer abc123xyz, status 401", "authorization: Bearer ***, status 401"),
        ('{"password": "hunter22", "user": "ada"}', '{"password": "***", "user": "ada"}'),
        ("GET https://ada:hunter22@db.example/x failed", "GET https://***@db.example/x failed"),
        ("retry with client_secret=abc123&x=1", "retry with client_secret=***&x=1"),
        ("written by author: Ada", "written by author: Ada"),
    ],
)
def test_mask_text(text, kept):
    assert mask_text(text) == kept


def test_scrub_blanks_known_secrets_wherever_they_are_quoted():
    assert scrub("rejected pl-secret-3 (pl-secret-3!)", ["pl-secret-3"]) == "rejected *** (***!)"


# -- TargetRunners.run tells failures safely ---------------------------------------------------


class FakeLambda:
    """A Lambda client whose function fails quoting its whole event, or answers ``result``."""

    def __init__(self, result: Any = None, error: dict[str, Any] | None = None) -> None:
        self.result, self.error = result, error

    def invoke(self, FunctionName: str, InvocationType: str, Payload: str) -> dict[str, Any]:
        if self.error is not None:
            body = {**self.error, "errorMessage": f"{self.error['errorMessage']} {Payload}"}
            return {"Payload": io.BytesIO(json.dumps(body).encode()), "FunctionError": "Unhandled"}
        return {"Payload": io.BytesIO(json.dumps(self.result).encode())}


def test_a_function_that_quotes_its_event_in_its_error_is_told_without_the_secrets():
    # Given a function that fails with its whole event (payload secrets included) in the message
    runners = TargetRunners(
        lambda_client=FakeLambda(error={"errorType": "ValueError", "errorMessage": "bad:"})
    )
    envelope = {"task_id": "t1", "attempt": 1, "payload": {"password": "pw-secret-77", "order": "A-1"}}
    # When it runs
    with pytest.raises(TargetFailure) as caught:
        runners.run({"type": "lambda", "function": "charge"}, envelope, 5)
    # Then the failure keeps its type and the rest of the text, not the secret
    assert caught.value.error_type == "ValueError" and caught.value.retryable
    assert "pw-secret-77" not in caught.value.message and "A-1" in caught.value.message


def test_what_a_target_answers_is_valid_text():
    # Given a function answering (or failing with) lone surrogates
    ok = TargetRunners(lambda_client=FakeLambda(result={"\ud800": ["a\udfffb"]}))
    bad = TargetRunners(
        lambda_client=FakeLambda(error={"errorType": "Boom\ud800", "errorMessage": "x\udc00"})
    )
    target = {"type": "lambda", "function": "f"}
    # When they run / Then the result and the failure hold U+FFFD instead, and encode as UTF-8
    assert ok.run(target, {"payload": None}, 5) == {"\ufffd": ["a\ufffdb"]}
    with pytest.raises(TargetFailure) as caught:
        bad.run(target, {"payload": None}, 5)
    assert caught.value.error_type == "Boom\ufffd"
    caught.value.message.encode("utf-8")


def test_a_stored_url_with_user_info_never_reaches_urllib():
    # Given an http target with user info (refused at submit since this rule; a record from before it)
    target = {"type": "http", "url": "http://ada:pw-secret-88@127.0.0.1/hook"}
    # urllib's own message would quote the password (it reads "pw-secret-88@127.0.0.1" as a port)
    with pytest.raises(Exception) as raw:
        urllib.request.urlopen(target["url"], timeout=1)
    assert "pw-secret-88" in str(raw.value)
    # When the runner gets it / Then it fails for good, saying to use a header, without the password
    with pytest.raises(TargetFailure) as caught:
        TargetRunners().run(target, {"payload": None}, 5)
    assert caught.value.error_type == "InvalidTarget" and not caught.value.retryable
    assert "header" in caught.value.message and "pw-secret-88" not in str(caught.value)


@pytest.mark.parametrize(
    "target",
    [
        {"type": "http", "url": "https://ada:pw@hooks.example.com/x"},
        {"type": "http", "url": "https://token-only@hooks.example.com/x"},
        {"type": "sqs", "queue_url": "https://ada:pw@sqs.us-east-1.amazonaws.com/1/q"},
    ],
)
def test_the_target_model_refuses_user_info(target):
    # Given a target URL with user info / When validated as any task body (the model every door uses)
    from pydantic import ValidationError

    from taskplane.domain.models import TaskSubmit

    with pytest.raises(ValidationError) as caught:
        TaskSubmit.model_validate({"target": target})
    # Then it is refused, saying where credentials go
    (error,) = caught.value.errors()
    assert "header" in error["msg"] and error["loc"][-1] in ("url", "queue_url")
