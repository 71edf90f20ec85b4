"""Create the platform's tables and queues (in moto for the local runtime and tests)."""

from __future__ import annotations

import json
from typing import Any

from taskplane.settings import LANES, MAX_RECEIVE_COUNT, PlatformSettings

#: Locally the lanes hide a received message this long (AWS: 6 x the worker timeout).
LOCAL_VISIBILITY_TIMEOUT_S = 960
#: Locally a lane deeper than this answers 429 (TASKPLANE_MAX_LANE_DEPTH overrides it in AWS).
LOCAL_MAX_LANE_DEPTH = 2_000


def create_resources(
    session: Any, prefix: str = "taskplane", buckets: int = 1, shards: int = 1
) -> PlatformSettings:
    """Create every table, queue and the event bus; returns the settings that point at them."""
    ddb = session.client("dynamodb")
    sqs = session.client("sqs")
    tasks_table = f"{prefix}-tasks"
    idem_table = f"{prefix}-idempotency"
    control_table = f"{prefix}-control"
    wheel_table = f"{prefix}-wheel"
    schedules_table = f"{prefix}-schedules"
    workflows_table = f"{prefix}-workflows"
    runs_table = f"{prefix}-runs"
    existing = set(ddb.list_tables()["TableNames"])
    # (table, hash key, range key or None, TTL attribute or None), as the CDK app's storage construct.
    tables = [
        (tasks_table, "pk", "sk", "expires_at"),
        (wheel_table, "pk", "sk", "expires_at"),
        (runs_table, "pk", "sk", "expires_at"),
        (schedules_table, "pk", "sk", None),
        (workflows_table, "pk", "sk", None),
        (idem_table, "id", None, None),
        (control_table, "pk", None, "expires_at"),
    ]
    for name, hash_key, range_key, ttl in tables:
        if name not in existing:
            _create_table(ddb, name, hash_key, range_key, ttl)
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_urls = {}
    for lane in LANES:
        queue_urls[lane] = sqs.create_queue(
            QueueName=f"{prefix}-{lane}",
            Attributes={
                "VisibilityTimeout": str(LOCAL_VISIBILITY_TIMEOUT_S),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                ),
            },
        )["QueueUrl"]
    # The triggers' dead-letter queue: every trigger rule's target names it (adapters/triggers.py).
    trigger_dlq_url = sqs.create_queue(QueueName=f"{prefix}-trigger-dlq")["QueueUrl"]
    trigger_dlq_arn = sqs.get_queue_attributes(QueueUrl=trigger_dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    # The platform's own event bus (tenants call it "taskplane"): events published through the
    # platform, stamped with their tenant, for the tenants' triggers.
    events = session.client("events")
    event_bus = f"{prefix}-events"
    if not any(b["Name"] == event_bus for b in events.list_event_buses()["EventBuses"]):
        events.create_event_bus(Name=event_bus)
    # The bucket of large payloads, results and node outputs.
    s3 = session.client("s3")
    blob_bucket = f"{prefix}-blobs"
    if not any(b["Name"] == blob_bucket for b in s3.list_buckets().get("Buckets", [])):
        s3.create_bucket(Bucket=blob_bucket)
    return PlatformSettings(
        tasks_table=tasks_table,
        idempotency_table=idem_table,
        control_table=control_table,
        queue_urls=queue_urls,
        dlq_url=dlq_url,
        trigger_dlq_url=trigger_dlq_url,
        trigger_dlq_arn=trigger_dlq_arn,
        task_buckets=buckets,
        wheel_table=wheel_table,
        wheel_shards=shards,
        schedules_table=schedules_table,
        workflows_table=workflows_table,
        runs_table=runs_table,
        event_bus=event_bus,
        trigger_rule_prefix=f"{prefix}-trg-",
        blob_bucket=blob_bucket,
        # The friendly local defaults of policy settings; the environment and --strict override them
        # (local/policy.py). moto scans a whole queue per call: keep local lanes lean
        # (NOTES-AWS-LOCAL.md); demos call http://localhost; any target, where AWS needs allow-lists.
        max_lane_depth=LOCAL_MAX_LANE_DEPTH,
        allow_private_http=True,
        targets_allowed_by_default=True,
    )


def create_sqlite_resources(backend: Any, session: Any, prefix: str = "taskplane") -> PlatformSettings:
    """The lanes, their DLQ and the event bus on SQLite (``wiring.SqliteBackend``), and the bucket of
    large values in moto's S3; returns the settings that point at them (the DynamoDB table names are
    kept for the settings' sake: no table is made or used). Idempotent: a database file reopened
    keeps its queues and messages."""
    queues = backend.queues
    dlq_url = queues.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    dlq_arn = queues.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_urls = {
        lane: queues.create_queue(
            QueueName=f"{prefix}-{lane}",
            Attributes={
                "VisibilityTimeout": str(LOCAL_VISIBILITY_TIMEOUT_S),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                ),
            },
        )["QueueUrl"]
        for lane in LANES
    }
    backend.lane_urls.update(queue_urls)  # where the bus's rules deliver
    # ... and where an event goes that a rule could not deliver (a rule's DeadLetterConfig on AWS)
    trigger_dlq_url = queues.create_queue(QueueName=f"{prefix}-trigger-dlq")["QueueUrl"]
    trigger_dlq_arn = queues.get_queue_attributes(QueueUrl=trigger_dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    backend.dead_letter_urls["triggers"] = trigger_dlq_url
    event_bus = f"{prefix}-events"
    backend.bridge.create_bus(event_bus)
    s3 = session.client("s3")
    blob_bucket = f"{prefix}-blobs"
    if not any(b["Name"] == blob_bucket for b in s3.list_buckets().get("Buckets", [])):
        s3.create_bucket(Bucket=blob_bucket)
    return PlatformSettings(
        tasks_table=f"{prefix}-tasks",
        idempotency_table=f"{prefix}-idempotency",
        control_table=f"{prefix}-control",
        queue_urls=queue_urls,
        dlq_url=dlq_url,
        trigger_dlq_url=trigger_dlq_url,
        trigger_dlq_arn=trigger_dlq_arn,
        wheel_table=f"{prefix}-wheel",
        schedules_table=f"{prefix}-schedules",
        workflows_table=f"{prefix}-workflows",
        runs_table=f"{prefix}-runs",
        event_bus=event_bus,
        trigger_rule_prefix=f"{prefix}-trg-",
        blob_bucket=blob_bucket,
        # The same friendly local defaults as on moto (create_resources). A SQLite lane reads its
        # depth with one indexed count, but the limit is kept so both backends admit alike.
        max_lane_depth=LOCAL_MAX_LANE_DEPTH,
        allow_private_http=True,
        targets_allowed_by_default=True,
    )


def _create_table(ddb: Any, name: str, hash_key: str, range_key: str | None, ttl: str | None) -> None:
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        KeySchema=[{"AttributeName": k, "KeyType": kind} for k, kind in keys],
    )
    if ttl:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
