"""One behaviour, two backends: every contract test runs against the DynamoDB/SQS/EventBridge adapters
on moto and against the SQLite adapters (``adapters/sqlite``), through the ports the services use.

``backend`` is parametrized over both. moto is started once per module (its setup costs ~0.3 s) and
each test works under its own tenant and names, so tests never see each other's data; each SQLite
test gets a fresh in-memory database.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

#: The lane rules under test send what they match to (an SQS queue on moto, a SQLite queue on SQLite).
RULE_LANE = "default"


@dataclass
class Backend:
    name: str
    tenant: str
    tasks: Any
    wheel: Any
    schedules: Any
    workflows: Any
    runs: Any
    dead_letters: Any
    breakers: Any
    inflight: Any
    trigger_store: Any
    trigger_rules: Any
    #: per-target duration sketches (ports.LatencyRecords)
    latency: Any
    #: windowed triggers' windows (adapters.windows.WindowStore or its SQLite twin)
    windows: Any
    #: a new, empty wheel ring store (the ring is one item per deployment: each test gets its own)
    make_rings: Callable[[], Any]
    #: the ``events`` client (``put_events``) EventBus and the eventbridge target runner use
    events_client: Any
    #: the platform bus's real name
    bus: str
    make_idempotency: Callable[[], Any]
    #: wheel entries of (shard, slot), in due order
    wheel_entries: Callable[[int, int], list[Any]]
    #: add a rule on ``bus`` with ``pattern`` that sends the whole event to RULE_LANE, wrapped with the
    #: rule's name: ``{"rule": name, "event": ...}`` (raises what the backend raises for a bad pattern)
    add_rule: Callable[[str, dict[str, Any], str], None]
    #: the bodies put on the lane since the last call (taken off it)
    take_lane: Callable[[], list[str]]
    #: extra cleanup
    closers: list[Callable[[], None]] = field(default_factory=list)

    def unique(self, prefix: str = "") -> str:
        return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def moto_session() -> Iterator[Any]:
    """moto with the platform's resources, for the whole module."""
    import boto3
    from moto import mock_aws

    from taskplane.local import moto_patches
    from taskplane.local.resources import create_resources

    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    moto_patches.apply()
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session, prefix="contract")
        yield session, settings
    os.environ.clear()
    os.environ.update(saved)


def _moto_backend(session: Any, settings: Any) -> Backend:
    from taskplane.adapters.admission import InflightCounters
    from taskplane.adapters.breakers import BreakerStore
    from taskplane.adapters.dead_letters import DeadLetterStore
    from taskplane.adapters.idempotency import PowertoolsIdempotency
    from taskplane.adapters.latency import LatencyStore
    from taskplane.adapters.ring_store import RingStore
    from taskplane.adapters.run_store import RunStore
    from taskplane.adapters.schedule_store import ScheduleStore
    from taskplane.adapters.task_store import TaskStore
    from taskplane.adapters.triggers import TriggerRules, TriggerStore
    from taskplane.adapters.wheel_store import WheelStore
    from taskplane.adapters.windows import WindowStore
    from taskplane.adapters.workflow_store import WorkflowStore

    ddb = session.client("dynamodb")
    sqs = session.client("sqs")
    events = session.client("events")
    wheel = WheelStore(settings.wheel_table, settings.control_table, ddb)
    lane_url = settings.queue_urls[RULE_LANE]
    lane_arn = sqs.get_queue_attributes(QueueUrl=lane_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    def add_rule(bus: str, pattern: dict[str, Any], name: str) -> None:
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        template = json.dumps({"rule": name})[:-1] + ', "event": <aws.events.event.json>}'
        events.put_targets(
            Rule=name,
            EventBusName=bus,
            Targets=[
                {
                    "Id": "lane",
                    "Arn": lane_arn,
                    "InputTransformer": {"InputPathsMap": {}, "InputTemplate": template},
                }
            ],
        )

    rules: list[tuple[str, str]] = []
    ring_tables: list[str] = []

    def make_rings() -> Any:
        # A control table of its own, made as the platform's is (hash key pk).
        name = f"contract-control-{uuid.uuid4().hex[:8]}"
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ring_tables.append(name)
        return RingStore(name, ddb)

    def drop_ring_tables() -> None:
        for name in ring_tables:
            ddb.delete_table(TableName=name)

    def tracked_add_rule(bus: str, pattern: dict[str, Any], name: str) -> None:
        add_rule(bus, pattern, name)
        rules.append((bus, name))

    def take_lane() -> list[str]:
        bodies: list[str] = []
        while True:
            messages = sqs.receive_message(QueueUrl=lane_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for m in messages:
                bodies.append(m["Body"])
                sqs.delete_message(QueueUrl=lane_url, ReceiptHandle=m["ReceiptHandle"])

    def drop_rules() -> None:
        for bus, name in rules:
            events.remove_targets(Rule=name, EventBusName=bus, Ids=["lane"])
            events.delete_rule(Name=name, EventBusName=bus)
        take_lane()

    backend = Backend(
        name="moto",
        tenant="t" + uuid.uuid4().hex[:10],
        tasks=TaskStore(settings.tasks_table, ddb, buckets=settings.task_buckets),
        wheel=wheel,
        schedules=ScheduleStore(settings.schedules_table, wheel, ddb),
        workflows=WorkflowStore(settings.workflows_table, ddb),
        runs=RunStore(settings.runs_table, ddb),
        dead_letters=DeadLetterStore(settings.tasks_table, ddb),
        breakers=BreakerStore(settings.control_table, ddb),
        inflight=InflightCounters(settings.control_table, ddb),
        trigger_store=TriggerStore(settings.schedules_table, ddb),
        trigger_rules=TriggerRules(events, sqs, settings.queue_urls),
        latency=LatencyStore(settings.control_table, ddb),
        windows=WindowStore(settings.tasks_table, ddb),
        make_rings=make_rings,
        events_client=events,
        bus=settings.event_bus,
        make_idempotency=lambda: PowertoolsIdempotency(settings.idempotency_table, ddb),
        wheel_entries=lambda shard, slot: wheel.load(shard, slot, "", None),
        add_rule=tracked_add_rule,
        take_lane=take_lane,
    )
    backend.closers.append(drop_rules)
    backend.closers.append(drop_ring_tables)
    take_lane()
    return backend


def _sqlite_backend() -> Backend:
    from taskplane.adapters.idempotency import PowertoolsIdempotency
    from taskplane.adapters.sqlite.control import SqliteBreakerStore, SqliteInflightCounters
    from taskplane.adapters.sqlite.db import Database
    from taskplane.adapters.sqlite.dead_letters import SqliteDeadLetterStore
    from taskplane.adapters.sqlite.events import (
        WHOLE_EVENT,
        SqliteEventBridge,
        SqliteEventsClient,
        SqliteTriggerRules,
    )
    from taskplane.adapters.sqlite.idempotency import SqlitePersistenceLayer
    from taskplane.adapters.sqlite.latency import SqliteLatencyStore
    from taskplane.adapters.sqlite.queues import SqliteQueues
    from taskplane.adapters.sqlite.ring import SqliteRingStore
    from taskplane.adapters.sqlite.runs import SqliteRunStore
    from taskplane.adapters.sqlite.schedules import SqliteScheduleStore
    from taskplane.adapters.sqlite.tasks import SqliteTaskStore
    from taskplane.adapters.sqlite.triggers import SqliteTriggerStore
    from taskplane.adapters.sqlite.wheel import SqliteWheelStore
    from taskplane.adapters.sqlite.windows import SqliteWindowStore
    from taskplane.adapters.sqlite.workflows import SqliteWorkflowStore

    db = Database(":memory:")
    ring_dbs: list[Any] = []

    def make_rings() -> Any:
        ring_db = Database(":memory:")
        ring_dbs.append(ring_db)
        return SqliteRingStore(ring_db)

    queues = SqliteQueues(db)
    urls = {
        name: queues.create_queue(QueueName=f"contract-{name}")["QueueUrl"]
        for name in ("high", "default", "low")
    }
    # Matched events go onto the SQLite lane queues, as the runtime wires it.
    bridge = SqliteEventBridge(
        db, lambda lane, body: queues.send_message(QueueUrl=urls[lane], MessageBody=body)
    )
    bus = "contract-events"
    bridge.create_bus(bus)

    def add_rule(bus_name: str, pattern: dict[str, Any], name: str) -> None:
        template = json.dumps({"rule": name})[:-1] + f', "event": {WHOLE_EVENT}}}'
        bridge.put_rule(bus_name, name, pattern, RULE_LANE, template)

    def take_lane() -> list[str]:
        bodies: list[str] = []
        while messages := queues.receive_message(QueueUrl=urls[RULE_LANE], MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for m in messages:
                bodies.append(m["Body"])
                queues.delete_message(QueueUrl=urls[RULE_LANE], ReceiptHandle=m["ReceiptHandle"])
        return bodies

    backend = Backend(
        name="sqlite",
        tenant="t" + uuid.uuid4().hex[:10],
        tasks=SqliteTaskStore(db),
        wheel=SqliteWheelStore(db),
        schedules=SqliteScheduleStore(db),
        workflows=SqliteWorkflowStore(db),
        runs=SqliteRunStore(db),
        dead_letters=SqliteDeadLetterStore(db),
        breakers=SqliteBreakerStore(db),
        inflight=SqliteInflightCounters(db),
        trigger_store=SqliteTriggerStore(db),
        trigger_rules=SqliteTriggerRules(bridge),
        latency=SqliteLatencyStore(db),
        windows=SqliteWindowStore(db),
        make_rings=make_rings,
        events_client=SqliteEventsClient(bridge),
        bus=bus,
        make_idempotency=lambda: PowertoolsIdempotency(persistence=lambda: SqlitePersistenceLayer(db)),
        wheel_entries=lambda shard, slot: SqliteWheelStore(db).load(shard, slot, "", None),
        add_rule=add_rule,
        take_lane=take_lane,
    )
    backend.closers.append(db.close)

    def close_ring_dbs() -> None:
        for ring_db in ring_dbs:
            ring_db.close()

    backend.closers.append(close_ring_dbs)
    return backend


@pytest.fixture(params=["moto", "sqlite"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "moto":
        session, settings = request.getfixturevalue("moto_session")
        made = _moto_backend(session, settings)
    else:
        made = _sqlite_backend()
    try:
        yield made
    finally:
        for close in made.closers:
            close()
