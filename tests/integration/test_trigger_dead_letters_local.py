"""The local runtime's event bus (SQLite) dead-letters a delivery its lane refuses the way EventBridge
does for a rule whose target names a dead-letter queue: the put succeeds, the event goes to the
triggers' DLQ with ``RULE_ARN`` and the error, and the operators' list and redrive read it there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane.adapters.sqlite.db import Database
from taskplane.adapters.sqlite.events import SqliteEventBridge, SqliteEventsClient
from taskplane.domain.events import SQS_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


@pytest.fixture
def local(aws_env: None) -> Any:
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.local.resources import create_sqlite_resources

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        backend = wiring.sqlite_backend(":memory:")
        settings = create_sqlite_resources(backend, session)
        platform = wiring.build(settings, session=session, sqlite=backend)
        yield platform, backend
        platform.close()


def publish(platform: Any, detail: dict[str, Any]) -> dict[str, Any]:
    from taskplane.domain.events import EventsPublish

    body = EventsPublish.model_validate(
        {"events": [{"source": "shop.orders", "detail_type": "OrderPlaced", "detail": detail}]}
    )
    (result,) = platform.events.publish("acme", body)
    return result


def test_a_lane_refusing_the_event_sends_it_to_the_triggers_dlq_and_the_put_succeeds():
    # Given a bus whose lane refuses every delivery, and a dead-letter queue
    dead: list[tuple[str, dict[str, str]]] = []

    def refuse(lane: str, body: str) -> None:
        raise RuntimeError("the lane is gone")

    bridge = SqliteEventBridge(Database(":memory:"), refuse, dead_letter=lambda b, a: dead.append((b, a)))
    bridge.create_bus("bus")
    bridge.put_rule("bus", "tp-trg-X", {"source": ["a"]}, "default", '{"x": <aws.events.event.json>}')
    # When an event matches
    answer = SqliteEventsClient(bridge).put_events(
        Entries=[{"EventBusName": "bus", "Source": "a", "DetailType": "t", "Detail": "{}"}]
    )
    # Then the put succeeded (as on EventBridge: the delivery fails later, on its own)
    assert answer["FailedEntryCount"] == 0
    # and the event, as it matched (not the envelope), is in the DLQ naming the rule and the error
    ((body, attributes),) = dead
    assert json.loads(body)["source"] == "a" and "x" not in json.loads(body)
    assert attributes["RULE_ARN"].endswith(":rule/bus/tp-trg-X")
    assert "RuntimeError" in attributes["ERROR_MESSAGE"]


def test_without_a_dlq_a_refused_delivery_still_fails_the_put():
    def refuse(lane: str, body: str) -> None:
        raise RuntimeError("the lane is gone")

    bridge = SqliteEventBridge(Database(":memory:"), refuse)
    bridge.create_bus("bus")
    bridge.put_rule("bus", "r", {"source": ["a"]}, "default", "<aws.events.event.json>")
    answer = SqliteEventsClient(bridge).put_events(
        Entries=[{"EventBusName": "bus", "Source": "a", "DetailType": "t", "Detail": "{}"}]
    )
    assert answer["FailedEntryCount"] == 1  # never lost silently: the publisher retries


def test_an_event_too_large_for_its_lane_is_listed_for_the_operator_with_its_trigger(local):
    platform, backend = local
    # Given a trigger, and an event whose lane envelope is over SQS's largest message
    from taskplane.domain.triggers import TriggerCreate

    trigger = platform.triggers.create(
        "acme", TriggerCreate.model_validate({"event_pattern": {"source": ["shop.orders"]}, "task": ECHO})
    )
    bridge = backend.bridge
    # (put straight on the bus: POST /v1/events keeps details to 64 KB; an external bus does not)
    bridge.put_event(
        platform.settings.event_bus,
        "shop.orders",
        "OrderPlaced",
        {"taskplane_tenant": "acme", "pad": "x" * SQS_MAX_MESSAGE_BYTES},
    )
    # Then nothing reached the lane, and the operator sees the event under its trigger and tenant
    lane = backend.queues.receive_message(QueueUrl=platform.settings.queue_urls["default"])
    assert lane == {}
    (item,) = platform.trigger_dead_letters.list()
    assert (item["trigger_id"], item["tenant"]) == (trigger.trigger_id, "acme")
    assert "shorter than" in item["error_message"]
    # and a redrive keeps it, saying why (it cannot reach its trigger through a lane)
    (result,) = platform.trigger_dead_letters.redrive()
    assert result["outcome"] == "kept" and "at most" in result["error"]


def test_a_small_event_still_reaches_its_lane_locally(local):
    platform, backend = local
    from taskplane.domain.triggers import TriggerCreate

    platform.triggers.create(
        "acme", TriggerCreate.model_validate({"event_pattern": {"source": ["shop.orders"]}, "task": ECHO})
    )
    assert "event_id" in publish(platform, {"order": 1})
    messages = backend.queues.receive_message(QueueUrl=platform.settings.queue_urls["default"])["Messages"]
    assert json.loads(messages[0]["Body"])["event"]["detail"]["order"] == 1
    assert platform.trigger_dead_letters.list() == []
