"""An Idempotency-Key left in progress by an invocation that died expires with that invocation.

Lambda kills a timed-out invocation without running any cleanup, so Powertools' in-progress record
stays behind. Without the invocation's remaining time (register_lambda_context) it blocked every
retry with that key (409) until the key's 24-hour TTL; with it, the key is free once the dead
invocation's time is up, and still refused while the invocation could be running.
"""

from __future__ import annotations

import time

import pytest
from support import api_event

from taskplane.local.context import LocalContext
from taskplane.local.handlers import load_handler

pytestmark = pytest.mark.integration

BODY = {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}}


class InvocationKilled(BaseException):
    """What a Lambda timeout looks like from inside: nothing after it runs."""


def call(context: LocalContext) -> dict:
    handler = load_handler("api").lambda_handler
    event = api_event("POST", "/v1/tasks", BODY, headers={"Idempotency-Key": "order-7"})
    return handler(event, context)


def die_in_the_middle(aws, monkeypatch) -> None:
    store = aws.platform.tasks.store
    real = store.create

    def killed(task):  # the first store dies; later ones go through
        monkeypatch.setattr(store, "create", real)
        raise InvocationKilled

    monkeypatch.setattr(store, "create", killed)


def test_a_key_left_by_a_dead_invocation_is_free_once_its_time_is_up(aws, monkeypatch):
    # Given an invocation with 1 ms left that dies while storing the task
    die_in_the_middle(aws, monkeypatch)
    with pytest.raises(InvocationKilled):
        call(LocalContext(function_name="taskplane-api", timeout_s=0.001))
    time.sleep(0.01)  # the dead invocation's time is up
    # When the client retries with the same key and body
    reply = call(LocalContext(function_name="taskplane-api"))
    # Then the task is accepted (201), not refused as still in progress
    assert reply["statusCode"] == 201, reply["body"]


def test_a_key_is_still_refused_while_its_invocation_could_be_running(aws, monkeypatch):
    # Given an invocation with 15 minutes left that died (or is still running) mid-request
    die_in_the_middle(aws, monkeypatch)
    with pytest.raises(InvocationKilled):
        call(LocalContext(function_name="taskplane-api", timeout_s=900))
    # When the same key comes again at once
    reply = call(LocalContext(function_name="taskplane-api"))
    # Then it is a 409 saying the first request may still be in progress
    assert reply["statusCode"] == 409, reply["body"]
    assert "in progress" in reply["body"]
