# ruff: noqa: F811 - the fixtures are imported from workflow_fixtures
"""Two tenants, every operation of the served OpenAPI (REVIEW-METHODS.md, method 1).

acme creates one of everything (tasks due now, later and failed for good, a dead letter, a schedule,
a trigger, a workflow and a run, a published event, an idempotency key, list cursors). Then globex
calls every operation the served ``/v1/openapi.json`` lists, aimed at acme's ids, names, cursors and
keys. Each answer must be a 404 in the error shape, or globex's own (empty or fresh) data with
nothing of acme's in it; afterwards acme's things must be exactly as they were.

The walk is driven by the spec, not by a list kept beside it: an operation the table below does not
know how to aim at acme's resources fails the test, so a new route cannot ship without its probe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from workflow_fixtures import put_yaml, wait_run, wf, wf_api  # noqa: F401

pytestmark = pytest.mark.integration

SECRET = "acme-secret-7f3a"
WORKFLOW = f"""
description: {SECRET}
nodes:
  - {{id: acme_only_node, target: {{type: builtin, name: echo}}, payload: {{s: {SECRET}}}}}
"""


def drain(wf: Any, rounds: int = 5) -> None:
    """Feed what is on the lanes to the worker handler, as the event source mapping does."""
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import to_record

    worker = load_handler("worker").lambda_handler
    sqs = wf.client("sqs")
    for _ in range(rounds):
        for url in wf.settings.queue_urls.values():
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                "Messages", []
            )
            if messages:
                worker({"Records": [to_record(m, arn) for m in messages]}, LocalContext("taskplane-worker"))
                for m in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def acme_world(call: Callable[..., Any], wf: Any) -> dict[str, Any]:
    """One of everything, owned by acme; answers the ids and cursors to aim at."""
    echo = {"target": {"type": "builtin", "name": "echo"}, "payload": {"s": SECRET}}
    ids: dict[str, Any] = {}
    ids["task"] = call(
        "POST", "/v1/tasks", {**echo, "labels": {"team": SECRET}}, headers={"Idempotency-Key": "k-1"}
    ).body["task_id"]
    ids["later"] = call("POST", "/v1/tasks", {**echo, "delay_ms": 3_600_000}).body["task_id"]
    failing = {
        "target": {"type": "builtin", "name": "fail"},
        "payload": {"times": 9},
        "retry": {"max_attempts": 1},
    }
    ids["dead"] = call("POST", "/v1/tasks", failing).body["task_id"]
    drain(wf)
    assert call("GET", f"/v1/tasks/{ids['dead']}").body["state"] == "FAILED"
    ids["schedule"] = call("POST", "/v1/schedules", {"cron": "0 * * * *", "task": echo, "name": SECRET}).body[
        "schedule_id"
    ]
    ids["trigger"] = call(
        "POST",
        "/v1/triggers",
        {"event_pattern": {"source": ["acme.shop"]}, "task": {"target": echo["target"]}, "name": SECRET},
    ).body["trigger_id"]
    assert put_yaml(call, "acme-flow", WORKFLOW).status == 201
    ids["run"] = call(
        "POST", "/v1/workflows/acme-flow/runs", {"input": {"s": SECRET}}, headers={"Idempotency-Key": "k-2"}
    ).body["run_id"]
    run = wait_run(call, ids["run"])
    assert run["state"] == "SUCCEEDED", run
    assert (
        call(
            "POST",
            "/v1/events",
            {"events": [{"source": "acme.shop", "detail_type": "x", "detail": {"s": SECRET}}]},
        ).status
        == 200
    )
    drain(wf)
    # Cursors that point into acme's lists (a page of one, so there is a next page)
    ids["task_cursor"] = call("GET", "/v1/tasks", query={"limit": "1"}).body["next_cursor"]
    assert ids["task_cursor"]
    return ids


#: How to aim each operation of the spec at acme's resources: (path params, query, body, headers).
#: ``own`` operations act in the caller's own space (creating, listing): globex gets its own data.
def probes(ids: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    path = {
        "task_id": ids["later"],
        "schedule_id": ids["schedule"],
        "trigger_id": ids["trigger"],
        "name": "acme-flow",
        "run_id": ids["run"],
        "node": "acme_only_node",
    }
    echo = {"target": {"type": "builtin", "name": "echo"}, "payload": {"s": SECRET}}
    cursor = {"cursor": ids["task_cursor"], "limit": "50"}
    return {
        ("GET", "/v1/health"): {"own": True},
        ("GET", "/v1/tasks"): {"own": True, "query": cursor},
        ("POST", "/v1/tasks"): {
            "own": True,
            "body": {**echo, "labels": {"team": SECRET}},
            "headers": {"Idempotency-Key": "k-1"},
        },
        ("POST", "/v1/tasks/batch"): {"own": True, "body": {"tasks": [echo]}},
        ("GET", "/v1/tasks/{task_id}"): {"path": path},
        ("POST", "/v1/tasks/{task_id}/cancel"): {"path": path},
        ("GET", "/v1/schedules"): {"own": True, "query": cursor},
        ("POST", "/v1/schedules"): {"own": True, "body": {"cron": "5 * * * *", "task": echo}},
        ("GET", "/v1/schedules/{schedule_id}"): {"path": path},
        ("DELETE", "/v1/schedules/{schedule_id}"): {"path": path},
        ("POST", "/v1/schedules/{schedule_id}/pause"): {"path": path},
        ("POST", "/v1/schedules/{schedule_id}/resume"): {"path": path},
        ("GET", "/v1/triggers"): {"own": True},
        ("POST", "/v1/triggers"): {
            "own": True,
            "body": {"event_pattern": {"source": [{"prefix": ""}]}, "task": {"target": echo["target"]}},
        },
        ("GET", "/v1/triggers/{trigger_id}"): {"path": path},
        ("DELETE", "/v1/triggers/{trigger_id}"): {"path": path},
        ("POST", "/v1/uploads"): {"own": True},
        ("POST", "/v1/events"): {
            "own": True,
            "body": {"events": [{"source": "acme.shop", "detail_type": "x"}]},
        },
        ("GET", "/v1/workflows"): {"own": True, "query": cursor},
        ("GET", "/v1/workflows/{name}"): {"path": path, "query": {"format": "json"}},
        # globex may have a workflow of the same name: its own, a new one, not acme's
        ("PUT", "/v1/workflows/{name}"): {
            "own": True,
            "path": path,
            "raw": "nodes: [{id: g, target: {type: builtin, name: echo}}]",
            "headers": {"Content-Type": "application/yaml"},
        },
        ("PUT", "/v1/workflows/{name}/routing"): {
            "path": {**path, "name": "acme-flow-2"},
            "body": {"weights": {}},
        },
        ("GET", "/v1/workflows/{name}/runs"): {"path": path, "query": {"cursor": ids["run"]}},
        ("POST", "/v1/workflows/{name}/runs"): {
            "path": {**path, "name": "acme-flow-2"},
            "body": {"input": {}},
            "headers": {"Idempotency-Key": "k-2"},
        },
        ("GET", "/v1/runs/{run_id}"): {"path": path},
        ("GET", "/v1/runs/{run_id}/nodes/{node}"): {"path": path},
        ("POST", "/v1/runs/{run_id}/resume"): {"path": path},
        ("POST", "/v1/runs/{run_id}/cancel"): {"path": path},
        ("GET", "/v1/dead-letters"): {"own": True, "query": cursor},
        ("POST", "/v1/dead-letters/redrive"): {"own": True, "body": {"ids": [ids["dead"]]}},
        ("GET", "/v1/stats"): {"own": True},
    }


def snapshot(call: Callable[..., Any], ids: dict[str, Any]) -> dict[str, Any]:
    """acme's things as acme sees them."""
    return {
        "later": call("GET", f"/v1/tasks/{ids['later']}").body,
        "schedule": call("GET", f"/v1/schedules/{ids['schedule']}").body,
        "trigger": call("GET", f"/v1/triggers/{ids['trigger']}").body,
        "workflow": call("GET", "/v1/workflows/acme-flow").body,
        "run": call("GET", f"/v1/runs/{ids['run']}").body,
    }


def test_another_tenant_reaches_nothing_of_acmes_through_any_operation(wf, wf_api):
    def call(method: str, path: str, body: Any = None, tenant: str = "acme", **kwargs: Any) -> Any:
        return wf_api(method, path, body, tenant=tenant, **kwargs)

    ids = acme_world(call, wf)
    before = snapshot(call, ids)
    markers = [SECRET, *(str(v) for k, v in ids.items() if not k.endswith("cursor"))]
    spec = call("GET", "/v1/openapi.json").body
    table = probes(ids)
    walked = []
    served = [(m.upper(), template) for template, ops in spec["paths"].items() for m in ops]
    for key in served:
        assert key in table, f"{key} is served but the tenant walk does not probe it: add it to probes()"
    # Aimed at acme's things first, then globex's own space (where globex may create a workflow
    # named like acme's: after that, the name is globex's too).
    for key in sorted(served, key=lambda k: bool(table[k].get("own"))):
        template = key[1]
        probe = table[key]
        target = template
        for name, value in (probe.get("path") or {}).items():
            target = target.replace("{" + name + "}", str(value))
        assert not re.search(r"\{\w+\}", target), (key, target)
        reply = call(
            key[0],
            target,
            probe.get("body"),
            tenant="globex",
            query=probe.get("query"),
            headers=probe.get("headers"),
            raw_body=probe.get("raw"),
        )
        text = json.dumps(reply.body) if not isinstance(reply.body, str) else reply.body
        # A leak is anything of acme's in the answer that globex did not send itself.
        sent = json.dumps(
            [target, probe.get("query"), probe.get("body"), probe.get("headers"), probe.get("raw")]
        )
        leaked = [m for m in markers if m in text and m not in sent]
        assert reply.status < 500, (key, reply.status, reply.body)
        assert not leaked, (key, reply.status, leaked, text[:500])
        if not probe.get("own"):
            assert reply.status == 404, (key, reply.status, reply.body)
            assert reply.body["error"]["code"] == "not_found", (key, reply.body)
        walked.append(key)
    # Then every served operation was walked (and the table names none that is not served)
    assert sorted(walked) == sorted(table), set(table) ^ set(walked)
    # And acme's things are exactly as they were
    after = snapshot(call, ids)
    for name in before:
        assert after[name] == before[name], name
    redriven = call("GET", "/v1/dead-letters").body["items"]
    assert [(d["task_id"], d["status"]) for d in redriven] == [(ids["dead"], "dead")]
    # And globex's POST /v1/tasks with acme's idempotency key made globex's own task
    globex_tasks = call("GET", "/v1/tasks", tenant="globex").body["items"]
    assert globex_tasks and ids["task"] not in {t["task_id"] for t in globex_tasks}
