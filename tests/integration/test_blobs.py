"""Large payloads and results in the platform's bucket (domain/blobs.py) under moto.

Small values stay inline in the task item; larger ones are objects under the tenant's prefix with a
reference in the item; uploads go through presigned URLs; a target gets a large payload inline when
it fits what the target takes in one call, else a URL.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from taskplane.adapters.targets import TargetRunners
from taskplane.domain.blobs import MAX_RESULT_BYTES, upload_key
from taskplane.domain.results import RawJson, checked_json

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}


def run_until(api: Any, drain: Any, task_id: str, state: str = "SUCCEEDED", tenant: str = "acme") -> dict:
    for _ in range(50):
        drain()
        body = api("GET", f"/v1/tasks/{task_id}", tenant=tenant).body
        if body["state"] == state:
            return body
        time.sleep(0.02)
    raise AssertionError(body)


def stored(aws: Any, key: str) -> bytes:
    s3 = aws.client("s3")
    return s3.get_object(Bucket=aws.settings.blob_bucket, Key=key)["Body"].read()


def test_a_large_inline_payload_and_its_result_live_in_the_bucket(aws, api, drain):
    # Given a 300 KB payload sent inline (over the 64 KiB kept in the item)
    payload = {"rows": ["r" * 100] * 3000}
    created = api("POST", "/v1/tasks", {"target": ECHO, "payload": payload})
    # Then it is accepted with the payload in the bucket, readable through a URL
    assert created.status == 201, created.body
    task_id = created.body["task_id"]
    assert created.body["payload"] is None and created.body["payload_size"] > 64 * 1024
    assert "payload_url" in created.body
    item = aws.platform.tasks.store.get("acme", task_id)
    assert item.payload is None and item.payload_ref.key == f"t/acme/payloads/{task_id}"
    assert json.loads(stored(aws, item.payload_ref.key)) == payload
    # When the echo task runs
    done = run_until(api, drain, task_id)
    # Then the target got the payload inline, and the echoed result (as large) is in the bucket too
    assert done["result"] is None and done["result_size"] == item.payload_ref.size
    assert "result_url" in done
    result = aws.platform.tasks.store.get("acme", task_id).result_ref
    assert result.key == f"t/acme/results/{task_id}/1"
    assert json.loads(stored(aws, result.key)) == payload


def test_an_upload_is_named_by_payload_ref_and_stays_the_tenants_own(aws, api, drain):
    # Given an upload slot and a payload put at its key (what a client's PUT to upload_url does)
    slot = api("POST", "/v1/uploads")
    assert slot.status == 201, slot.body
    assert slot.body["upload_url"].startswith("http") and slot.body["method"] == "PUT"
    upload_id = slot.body["upload_id"]
    payload = {"big": "b" * 100_000}
    aws.client("s3").put_object(
        Bucket=aws.settings.blob_bucket, Key=upload_key("acme", upload_id), Body=json.dumps(payload).encode()
    )
    # When another tenant names acme's upload, and acme names it
    other = api("POST", "/v1/tasks", {"target": ECHO, "payload_ref": upload_id}, tenant="globex")
    mine = api("POST", "/v1/tasks", {"target": ECHO, "payload_ref": upload_id})
    # Then globex's is a 400 (no such upload of its own); acme's task has its own copy and runs with it
    assert other.status == 400 and other.body["error"]["details"][0]["field"] == "payload_ref", other.body
    assert mine.status == 201, mine.body
    done = run_until(api, drain, mine.body["task_id"])
    assert json.loads(stored(aws, done_ref(aws, done["task_id"]))) == payload


def done_ref(aws: Any, task_id: str) -> str:
    return aws.platform.tasks.store.get("acme", task_id).result_ref.key


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"target": ECHO, "payload_ref": "up_01M96XXXXXXXXXXXXXXXXXXXXX"}, 400, "payload_ref"),
        ({"target": ECHO, "payload": 1, "payload_ref": "up_01M96XXXXXXXXXXXXXXXXXXXXX"}, 400, "payload_ref"),
        ({"target": ECHO, "payload_ref": "../etc/passwd"}, 400, "payload_ref"),
        ({"target": ECHO, "payload": "x" * (5 * 1024 * 1024 + 1)}, 413, "payload"),
    ],
)
def test_bad_payload_refs_and_sizes_are_4xx_naming_the_field(api, body, status, field):
    reply = api("POST", "/v1/tasks", body)
    assert reply.status == status, reply.body
    assert reply.body["error"]["details"][0]["field"] == field, reply.body


def test_templates_never_name_uploads(api):
    for path, body in (
        ("/v1/schedules", {"cron": "0 * * * *", "task": {"target": ECHO, "payload_ref": "up_" + "A" * 26}}),
        (
            "/v1/triggers",
            {"event_pattern": {"source": ["s"]}, "task": {"target": ECHO, "payload_ref": "up_" + "A" * 26}},
        ),
    ):
        reply = api("POST", path, body)
        assert reply.status == 400, reply.body
        assert reply.body["error"]["details"][0]["field"].startswith("task"), reply.body


class Recorder(TargetRunners):
    """Records envelopes; answers a fixed result."""

    def __init__(self, answer: Any = None) -> None:
        super().__init__()
        self.envelopes: list[dict[str, Any]] = []
        self.answer = answer
        self.lock = threading.Lock()

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        with self.lock:
            self.envelopes.append(envelope)
        return self.answer


def test_a_payload_too_large_for_the_target_arrives_as_a_url(aws, api, drain):
    # Given an SQS target (256 KiB messages) and a 300 KB payload
    recorder = aws.platform.executor.runners = Recorder(answer={"ok": True})
    target = {"type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/tenant-q"}
    payload = {"blob": "z" * 300_000}
    task_id = api("POST", "/v1/tasks", {"target": target, "payload": payload}).body["task_id"]
    # When it runs
    run_until(api, drain, task_id)
    # Then the target got a URL and the size instead of the payload, and the URL reads the payload
    (envelope,) = recorder.envelopes
    assert envelope["payload"] is None and envelope["payload_size"] == len(
        json.dumps(payload, separators=(",", ":"))
    )
    assert envelope["payload_url"].startswith("http")
    key = aws.platform.tasks.store.get("acme", task_id).payload_ref.key
    assert key in envelope["payload_url"]


def test_a_result_over_the_limit_is_not_kept_and_says_so(aws, api, drain):
    aws.platform.executor.runners = Recorder(answer="r" * (MAX_RESULT_BYTES + 10))
    task_id = api("POST", "/v1/tasks", {"target": {"type": "lambda", "function": "f"}}).body["task_id"]
    done = run_until(api, drain, task_id)
    assert done["result"]["unkept"] is True and done["result"]["reason"] == "too large"
    assert any("not kept" in (h["detail"] or "") for h in done["history"])


def test_a_redriven_task_gets_its_own_copy_of_a_large_payload(aws, api, drain):
    # Given a task with a large payload that failed for good
    body = {"target": {"type": "builtin", "name": "fail"}, "payload": {"times": 9, "pad": "p" * 100_000}}
    body["retry"] = {"max_attempts": 1}
    old = api("POST", "/v1/tasks", body).body["task_id"]
    run_until(api, drain, old, state="FAILED")
    # When it is redriven
    (result,) = api("POST", "/v1/dead-letters/redrive", {"ids": [old]}).body["results"]
    new = result["redriven_as"]
    # Then the fresh task names its own object, a copy of the payload
    ref = aws.platform.tasks.store.get("acme", new).payload_ref
    assert ref.key == f"t/acme/payloads/{new}"
    assert json.loads(stored(aws, ref.key)) == body["payload"]


def test_a_large_event_starts_a_task_whose_payload_is_in_the_bucket(aws, api, drain):
    # Given a trigger, and an event just under the 64 KiB a detail may hold (the whole event is larger)
    tid = api("POST", "/v1/triggers", {"event_pattern": {"source": ["shop"]}, "task": {"target": ECHO}}).body[
        "trigger_id"
    ]
    detail = {"blob": "e" * 65_400}
    reply = api("POST", "/v1/events", {"events": [{"source": "shop", "detail_type": "x", "detail": detail}]})
    assert reply.status == 200 and "event_id" in reply.body["results"][0], reply.body
    # When the worker takes the event
    drain(rounds=2)
    # Then the task it started keeps the event in the bucket and echoed it whole
    items, _ = aws.platform.tasks.list("acme", limit=10)
    (task,) = [t for t in items if t.trigger_id == tid]
    assert task.payload is None and task.payload_ref is not None
    event = json.loads(stored(aws, task.payload_ref.key))
    assert event["detail"]["blob"] == detail["blob"]
    assert json.loads(stored(aws, task.result_ref.key)) == event


def test_a_large_answer_is_stored_as_its_text_without_being_built(aws, api, drain):
    # Given a target answering 600 KB of JSON (over LARGE_RESULT_BYTES: checked, never built)
    text = json.dumps([{"n": i, "note": "caf\u00e9"} for i in range(20_000)], indent=1)
    answer = checked_json(text)
    assert isinstance(answer, RawJson)
    aws.platform.executor.runners = Recorder(answer=answer)
    task_id = api("POST", "/v1/tasks", {"target": {"type": "lambda", "function": "f"}}).body["task_id"]
    # When it runs
    done = run_until(api, drain, task_id)
    # Then the bucket holds the answer's own bytes, and the task says where and how large
    assert done["result"] is None and done["result_size"] == len(text.encode())
    assert stored(aws, done_ref(aws, task_id)) == text.encode()


def test_a_large_answer_nested_too_deep_is_not_kept_and_says_so(aws, api, drain):
    deep = "[" * 70 + json.dumps(["x" * 300_000]) + "]" * 70
    aws.platform.executor.runners = Recorder(answer=checked_json(deep))
    task_id = api("POST", "/v1/tasks", {"target": {"type": "lambda", "function": "f"}}).body["task_id"]
    done = run_until(api, drain, task_id)
    assert done["result"]["unkept"] is True and done["result"]["reason"] == "too deep"
    assert "result_url" not in done


@pytest.mark.parametrize(("memory", "at_once"), [("256", 1), ("1024", 7), (None, None)])
def test_a_worker_checks_as_many_large_answers_at_once_as_its_memory_holds(aws, monkeypatch, memory, at_once):
    from taskplane import wiring

    if memory is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    gate = wiring.build(aws.settings, session=aws.session).executor.runners._gate
    assert (gate._value if gate is not None else None) == at_once
