"""Security: tenant isolation on every endpoint, target allow-lists, private HTTP addresses."""

from __future__ import annotations

import time

import pytest

from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.domain.allowlist import TargetPolicy
from taskplane.settings import PlatformSettings

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def test_another_tenant_gets_404_and_never_sees_names_or_counts(aws, api, drain):
    # Given acme owns a task, a failed task (dead letter) and a schedule (workflows and runs:
    # test_workflow_api.py::test_another_tenant_never_sees_a_workflow_or_its_runs)
    task = api("POST", "/v1/tasks", {**ECHO, "delay_ms": 600_000}).body["task_id"]
    failing = {
        "target": {"type": "builtin", "name": "fail"},
        "payload": {"times": 9},
        "retry": {"max_attempts": 1},
    }
    dead = api("POST", "/v1/tasks", failing).body["task_id"]
    for _ in range(20):
        drain()
        if api("GET", f"/v1/tasks/{dead}").body["state"] == "FAILED":
            break
        time.sleep(0.02)
    schedule = api("POST", "/v1/schedules", {"cron": "0 * * * *", "timezone": "UTC", "task": ECHO})
    assert schedule.status == 201, schedule.body
    sid = schedule.body["schedule_id"]
    # When globex addresses each of them by id
    probes = [
        ("GET", f"/v1/tasks/{task}", None),
        ("POST", f"/v1/tasks/{task}/cancel", None),
        ("GET", f"/v1/schedules/{sid}", None),
        ("POST", f"/v1/schedules/{sid}/pause", None),
        ("POST", f"/v1/schedules/{sid}/resume", None),
        ("DELETE", f"/v1/schedules/{sid}", None),
    ]
    # Then every answer is 404
    for method, path, body in probes:
        reply = api(method, path, body, tenant="globex")
        assert reply.status == 404, (method, path, reply.status, reply.body)
    redrive = api("POST", "/v1/dead-letters/redrive", {"ids": [dead]}, tenant="globex")
    assert redrive.body["results"][0]["error"]["code"] == "not_found"
    # And no list globex can read names acme's things or counts them
    for path in ("/v1/tasks", "/v1/schedules", "/v1/dead-letters"):
        reply = api("GET", path, tenant="globex")
        assert reply.status == 200, (path, reply.body)
        text = str(reply.body)
        assert task not in text and dead not in text and sid not in text, path
    # And acme's things are all still there, untouched
    assert api("GET", f"/v1/tasks/{task}").body["state"] == "SCHEDULED"
    assert api("GET", f"/v1/schedules/{sid}").status == 200


def test_allow_list_denies_by_default_and_allows_what_it_names(aws, api):
    # Given AWS defaults: deny without a list; acme may call one function and one host
    aws.platform.tasks.targets = TargetPolicy(
        allowlists={"acme": ["lambda:orders-*", "http:api.example.com"]}, allow_by_default=False
    )
    lam = lambda fn: {"target": {"type": "lambda", "function": fn}}  # noqa: E731
    # When acme and globex submit tasks
    ok = api("POST", "/v1/tasks", lam("orders-create"))
    other_fn = api("POST", "/v1/tasks", lam("billing-refund"))
    other_host = api("POST", "/v1/tasks", {"target": {"type": "http", "url": "https://evil.example.net/x"}})
    listed_host = api("POST", "/v1/tasks", {"target": {"type": "http", "url": "https://api.example.com/x"}})
    globex = api("POST", "/v1/tasks", lam("orders-create"), tenant="globex")
    builtin = api("POST", "/v1/tasks", ECHO, tenant="globex")
    # Then only the listed targets (and builtins) are accepted; the rest are 400 naming the target
    assert (ok.status, listed_host.status, builtin.status) == (201, 201, 201)
    for refused in (other_fn, other_host, globex):
        assert refused.status == 400
        assert refused.body["error"]["details"][0]["field"] == "target"
    assert "allow-list" in other_fn.body["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://localhost/",
    ],
)
def test_private_and_metadata_addresses_are_refused_unless_allowed(aws, api, url):
    # Given the AWS default (private HTTP not allowed)
    aws.platform.tasks.targets = TargetPolicy(allow_by_default=True, allow_private_http=False)
    # When a task names a private or metadata address / Then it is refused at the door
    reply = api("POST", "/v1/tasks", {"target": {"type": "http", "url": url}})
    assert reply.status == 400 and "private" in reply.body["error"]["message"]
    # And the dev setting lets it through
    aws.platform.tasks.targets = TargetPolicy(allow_by_default=True, allow_private_http=True)
    assert api("POST", "/v1/tasks", {"target": {"type": "http", "url": url}}).status == 201


def test_worker_refuses_a_name_that_resolves_to_the_metadata_address():
    # Given runners built with the AWS default, and a host name that resolves privately
    runners = TargetRunners(allow_private_http=PlatformSettings().allow_private_http)
    # When the worker calls it / Then it fails as ForbiddenTarget, not retryable, before connecting
    with pytest.raises(TargetFailure) as caught:
        runners.run({"type": "http", "url": "http://localhost:9/x", "method": "GET"}, {"payload": None}, 2)
    assert caught.value.error_type == "ForbiddenTarget" and not caught.value.retryable


def test_settings_default_to_deny_in_aws_and_allow_locally(aws):
    # Given the settings AWS reads from an empty environment, and the local ones
    cloud = PlatformSettings.from_env({})
    # Then AWS denies private HTTP and unlisted targets; the local runtime allows both
    assert not cloud.allow_private_http and not cloud.targets_allowed_by_default
    assert aws.settings.allow_private_http and aws.settings.targets_allowed_by_default
    assert PlatformSettings.from_env(cloud.to_env()) == cloud
