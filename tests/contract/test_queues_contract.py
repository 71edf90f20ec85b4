"""Queues: one behaviour on moto's SQS and on the SQLite queues (``adapters/sqlite/queues.py``), as
the lanes, the event source mapping and the holds use them: visibility, receive counts, redrive to
the DLQ after ``maxReceiveCount``, holds, delays, per-entry batch answers and depths."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from taskplane.adapters.queues import LaneMessage, Lanes

pytestmark = pytest.mark.contract


@pytest.fixture(params=["moto", "sqlite"])
def sqs(request: pytest.FixtureRequest) -> Any:
    if request.param == "moto":
        session, _ = request.getfixturevalue("moto_session")
        return session.client("sqs")
    from taskplane.adapters.sqlite.db import Database
    from taskplane.adapters.sqlite.queues import SqliteQueues

    return SqliteQueues(Database())


def make(sqs: Any, name: str, visibility_s: int = 30, dlq: str | None = None, max_receives: int = 2) -> str:
    attrs = {"VisibilityTimeout": str(visibility_s)}
    if dlq:
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
    return sqs.create_queue(QueueName=f"{name}-{time.monotonic_ns()}", Attributes=attrs)["QueueUrl"]


def receive(sqs: Any, url: str, n: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, AttributeNames=["All"], **kwargs).get(
        "Messages", []
    )


def depth(sqs: Any, url: str) -> tuple[int, int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(a["ApproximateNumberOfMessages"]),
        int(a["ApproximateNumberOfMessagesNotVisible"]),
        int(a["ApproximateNumberOfMessagesDelayed"]),
    )


def test_a_received_message_is_hidden_until_deleted_or_made_visible(sqs):
    url = make(sqs, "lane")
    sqs.send_message(QueueUrl=url, MessageBody='{"ü": 1}')
    (first,) = receive(sqs, url)
    assert first["Body"] == '{"ü": 1}' and first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert receive(sqs, url) == []
    assert depth(sqs, url) == (0, 1, 0)
    # A hold of 0 makes it visible now; received again, it counts 2 and has a new receipt
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    (second,) = receive(sqs, url)
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    # The latest receipt deletes it (an older one "might not", SQS says: no contract either way)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert depth(sqs, url) == (0, 0, 0)


def test_after_max_receives_a_message_goes_to_the_dead_letter_queue(sqs):
    dlq = make(sqs, "dlq")
    url = make(sqs, "lane", dlq=dlq, max_receives=2)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for count in ("1", "2"):
        (m,) = receive(sqs, url)
        assert m["Attributes"]["ApproximateReceiveCount"] == count
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert receive(sqs, url) == []  # a third delivery is not made: it moved
    (dead,) = receive(sqs, dlq)
    assert dead["Body"] == "poison"
    assert depth(sqs, url) == (0, 0, 0)


def test_batches_answer_per_entry_and_holds_fail_for_messages_not_in_flight(sqs):
    url = make(sqs, "lane")
    sent = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    assert sorted(s["Id"] for s in sent["Successful"]) == ["0", "1", "2"] and not sent.get("Failed")
    got = receive(sqs, url)
    assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]
    gone = got[0]
    sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": gone["ReceiptHandle"]}])
    held = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "gone", "ReceiptHandle": gone["ReceiptHandle"], "VisibilityTimeout": 60},
            {"Id": "kept", "ReceiptHandle": got[1]["ReceiptHandle"], "VisibilityTimeout": 60},
        ],
    )
    assert [s["Id"] for s in held["Successful"]] == ["kept"]
    assert [f["Id"] for f in held["Failed"]] == ["gone"]
    assert depth(sqs, url) == (0, 2, 0)


def test_delays_and_visibility_timeouts_pass_with_time(sqs):
    url = make(sqs, "lane", visibility_s=1)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    assert depth(sqs, url) == (1, 0, 1)
    (now,) = receive(sqs, url)
    assert now["Body"] == "now"
    time.sleep(1.2)  # past the delay and the visibility timeout, whatever the machine's load
    assert sorted(m["Body"] for m in receive(sqs, url)) == ["later", "now"]


def test_the_lanes_adapter_sends_holds_and_dead_letters_on_either(sqs):
    urls = {lane: make(sqs, lane) for lane in ("high", "default", "low")}
    dlq = make(sqs, "dlq")
    lanes = Lanes(urls, dlq, sqs)
    outcomes = lanes.send(
        [LaneMessage("acme", f"T{i}", 1, lane=lane) for i, lane in enumerate(["high", "low", "nope", "high"])]
    )
    assert outcomes == [None] * 4
    high = receive(sqs, urls["high"])
    assert sorted(json.loads(m["Body"])["task_id"] for m in high) == ["T0", "T3"]
    assert [json.loads(m["Body"])["task_id"] for m in receive(sqs, urls["default"])] == ["T2"]
    arn = sqs.get_queue_attributes(QueueUrl=urls["high"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert lanes.hold_many([(arn, m["ReceiptHandle"], 0) for m in high]) == [None, None]
    assert len(receive(sqs, urls["high"])) == 2  # visible again after a hold of 0
    lanes.dead_letter("acme", "T9", "exhausted")
    (dead,) = receive(sqs, dlq)
    assert json.loads(dead["Body"])["task_id"] == "T9"


def test_an_unknown_queue_is_refused(sqs):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        sqs.send_message(QueueUrl=sqs_url_of_nothing(), MessageBody="x")
    assert "NonExistentQueue" in caught.value.response["Error"]["Code"]


def sqs_url_of_nothing() -> str:
    return "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue"
